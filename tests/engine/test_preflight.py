"""A run that canonizes refuses (exit 2) before any task starts when a mapping's transform
is missing or does not compile, or a schema is not valid JSON Schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO, demo_extractor, run_cli, write_config


def registry(tmp: Path) -> tuple[Path, Path]:
    t = shutil.copytree(REPO / "config" / "transforms", tmp / "reg" / "transforms")
    s = shutil.copytree(REPO / "config" / "schemas", tmp / "reg" / "schemas")
    return t, s


def broken_transform(t: Path, s: Path) -> str:
    (t / "email" / "gmail_to_canonical_v1.jsonata").write_text("{ \"a\": ( }")
    return "does not compile"


def missing_transform(t: Path, s: Path) -> str:
    (t / "email" / "gmail_to_canonical_v1.jsonata").unlink()
    return "is not in the registry"


def invalid_schema(t: Path, s: Path) -> str:
    (s / "email.v1.json").write_text('{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": 12}')
    return "not a valid schema"


@pytest.mark.parametrize("breakage", [broken_transform, missing_transform, invalid_schema])
def test_broken_registry_is_a_config_error_before_any_task(tmp_path: Path, breakage: object) -> None:
    t, s = registry(tmp_path)
    expected = breakage(t, s)  # type: ignore[operator]
    ex = demo_extractor("mail", "gmail", records=5)
    maps = [{"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"}]
    cfg = write_config(tmp_path, [ex], stages={"canonize": {"mappings": maps, "transforms_dir": str(t),
                                                            "schemas_dir": str(s)}})
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 2, res.stdout + res.stderr
    assert expected in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "ws" / "vault").exists(), "nothing ran"
    # extract alone does not need the registry
    assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0
