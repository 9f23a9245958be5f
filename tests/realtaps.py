"""Helpers of the real-tap integration tests: cached tool venvs as fixtures, configs, runs.

Each tool (a tap, a target, Meltano) is a session fixture that builds or reuses its venv
(:mod:`tests.tapvenvs`); if PyPI is unreachable the test skips and says so.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.helpers import run_cli
from tests.tapvenvs import RegistryUnreachable, ToolVenv, tool_venv

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "singer"
BUILD_TIMES: dict[str, float] = {}


def venv_or_skip(name: str, version: str) -> ToolVenv:
    """The cached venv of ``name==version``; skip the test if PyPI cannot be reached."""
    try:
        tv = tool_venv(name, version)
    except RegistryUnreachable as exc:
        pytest.skip(str(exc))
    if tv.seconds_to_build is not None:
        BUILD_TIMES[f"{name}-{version}"] = tv.seconds_to_build
    return tv


def write_json(path: Path, obj: Any) -> Path:
    """Write a JSON file (a tap's or target's config); return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(obj))
    return path


def extractor(name: str, command: list[str], **settings: Any) -> dict[str, Any]:
    """A `kind: singer` extractor entry (domain test, source = name unless given)."""
    entry: dict[str, Any] = {"name": name, "domain": "test", "source": settings.pop("source", name),
                             "account": settings.pop("account", name), "kind": "singer",
                             "command": command, "timeout_s": 240}
    entry.update(settings)
    return entry


def config(tmp: Path, extractors: list[dict[str, Any]], **top: Any) -> Path:
    """Write the pipeline config (workspace tmp/ws)."""
    cfg = {"pipeline": {"name": "real-taps", "version": "1"}, "workspace": str(tmp / "ws"),
           "extractors": extractors, **top}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def extract(cfg: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`lorchestra extract NAME --config CFG ...` in a subprocess."""
    return run_cli("extract", name, "--config", str(cfg), *extra, timeout=280)


def singer_case(tmp: Path, case: str) -> tuple[Path, Path]:
    """Copy the hand-written ``case.singer`` into a folder of its own (tap-singer-jsonl reads
    every ``*.singer*`` file of a folder in no set order); fill in the BATCH folder, whose
    ``.gz`` files are compressed here from the plain fixtures. Returns (folder, batch dir)."""
    folder = tmp / f"in-{case}"
    batch_dir = tmp / "batches"
    folder.mkdir()
    batch_dir.mkdir(exist_ok=True)
    for src in (FIXTURES / "batches").glob("*.jsonl"):
        shutil.copy(src, batch_dir / src.name)
        (batch_dir / f"{src.name}.gz").write_bytes(gzip.compress(src.read_bytes()))
    text = (FIXTURES / f"{case}.singer").read_text().replace("@BATCH_DIR@", str(batch_dir))
    (folder / f"{case}.singer").write_text(text)
    return folder, batch_dir


def vault_lines(run: Path) -> list[dict[str, Any]]:
    """Every RECORD line of a run's parts, in order (other Singer messages left out)."""
    out: list[dict[str, Any]] = []
    for part in sorted(run.glob("part-*.jsonl.gz")):
        out += [msg for msg in (orjson.loads(line) for line in gzip.decompress(part.read_bytes()).splitlines())
                if msg.get("type", "RECORD") == "RECORD"]
    return out
