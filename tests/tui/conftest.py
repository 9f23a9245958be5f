"""Fixtures for dashboard tests: a workspace filled once by the real CLI, copied per test."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.config.load import LoadedConfig, load
from tests.helpers import run_cli
from tests.tui.dash import dashboard_config


@dataclass(frozen=True)
class Setup:
    """A config file and its workspace in one test's tmp_path."""

    config: Path
    workspace: Path

    def load(self) -> LoadedConfig:
        return load(self.config)


@pytest.fixture(scope="session")
def populated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace the real CLI filled: every account extracted and canonized, and
    mail-alpha extracted once more (two runs; its canonical output is then behind)."""
    root = tmp_path_factory.mktemp("populated")
    cfg = dashboard_config(root)
    for args in (["run"], ["run", "--stage", "extract", "--account", "mail-alpha"]):
        res = run_cli(*args, "--config", str(cfg))
        assert res.returncode == 0, res.stderr
    return root / "ws"


@pytest.fixture
def populated(tmp_path: Path, populated_template: Path) -> Setup:
    """This test's own copy of the populated workspace, and a config pointing at it."""
    shutil.copytree(populated_template, tmp_path / "ws", symlinks=True)
    return Setup(dashboard_config(tmp_path), tmp_path / "ws")


@pytest.fixture
def fresh(tmp_path: Path) -> Setup:
    """A config whose workspace does not exist yet."""
    return Setup(dashboard_config(tmp_path), tmp_path / "ws")
