"""Crash consistency at every commit step: SIGKILL a real stage worker before each of its
file-system steps in turn (every ``os.replace``, ``rename``, ``link``, ``unlink``, ``rmdir``
and ``fsync``), for extract, canonize and index.

The worker is the real ``python -m engine.run.worker`` given a real ``TaskSpec``; the kill point
comes from ``tests/crashshim/sitecustomize.py`` (loaded through ``PYTHONPATH``, test-only:
nothing in ``engine/`` knows about it). An uninterrupted run first counts the steps; then
each kill runs once per step (every step for canonize, an even sample plus the last ones,
where the commit happens, when a stage has more than ``CAP`` steps).

The input alternates between two vault runs of different data (A and B), so "old" and
"new" always differ. After each kill, before any repair, the readers must see the old state
or the new one: the canonical files through the reader API and through ``lorchestra verify``
(a separate reader process), the vault's LATEST, the index rows and objects. Then the next
uninterrupted run must succeed and its output be byte-identical to an uninterrupted run's
(for the vault: the same lines in the same parts; the gzip bytes of two compressions of the
same lines are not promised to match).

``LORCH_CRASH_STEP_CAP`` scales the sample (default 34 per stage); the kill count is printed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config.load import load
from engine.stages.spec import TaskSpec
from engine.store.fsutil import atomic_write_json
from tests.helpers import (
    REPO,
    account_dir,
    clean_env,
    demo_extractor,
    demo_mappings,
    run_cli,
    write_config,
)
from tests.invariants import (
    canonical_version,
    index_docs,
    index_problems,
    latest_content,
    plain_canonical_problems,
    vault_problems,
)

pytestmark = pytest.mark.crash

SHIM = REPO / "tests" / "crashshim"
CAP = int(os.environ.get("LORCH_CRASH_STEP_CAP", "34"))
KILLED = -9


class Steps:
    """One workspace with one demo account, two vault runs, and a worker runner."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ws = tmp / "ws"
        self.kills = 0
        self.cfg = self.config(seed=1)
        assert run_cli("run", "--config", str(self.cfg)).returncode == 0
        self.cfg = self.config(seed=2)
        assert run_cli("run", "--config", str(self.cfg)).returncode == 0
        self.acct = account_dir(self.ws, self.ex)
        runs = sorted(p for dt in self.acct.glob("dt=*") for p in dt.glob("run_id=*"))
        assert len(runs) == 2
        self.runs = {"A": runs[0], "B": runs[1]}

    def config(self, seed: int) -> Path:
        self.ex = demo_extractor("acct0", "gmail", records=120, seed=seed)
        return write_config(self.tmp, [self.ex], stages={"extract": {"part_max_bytes": 8192},
                                                         "canonize": {"mappings": demo_mappings()}})

    def spec(self, stage: str, *, force: bool = False) -> bytes:
        loaded = load(self.cfg)
        cfg = loaded.config
        ex = next(e for e in cfg.extractors if e.name == "acct0")
        return TaskSpec(task_id=f"{stage}:acct0", stage=stage, attempt=1, workspace=self.ws,  # type: ignore[arg-type]
                        extractor=ex, extract=cfg.stages.extract, canonize=cfg.stages.canonize,
                        force=force).model_dump_json().encode()

    def worker(self, stage: str, step: int | None = None, *, force: bool = False) -> tuple[int, int]:
        """Run one worker; (return code, steps counted) - the count only when it was not killed."""
        count = self.tmp / "steps"
        count.unlink(missing_ok=True)
        env = clean_env(PYTHONPATH=str(SHIM), LORCH_TEST_CRASH_STEP=str(step or 0),
                        LORCH_TEST_CRASH_COUNT=str(count))
        res = subprocess.run([sys.executable, "-m", "engine.run.worker"], input=self.spec(stage, force=force),
                             cwd=REPO, env=env, capture_output=True, timeout=120)
        if res.returncode == KILLED:
            self.kills += 1
        return res.returncode, int(count.read_text()) if count.exists() else -1

    def point_latest(self, which: str) -> None:
        """Move LATEST to run A or B, as a successful extract would."""
        run = self.runs[which]
        manifest = orjson.loads((run / "manifest.json").read_bytes())
        atomic_write_json(self.acct / "LATEST.json", {
            "dt": run.parent.name[3:], "run_id": run.name[7:], "updated_at": manifest["finished_at"],
            "records": manifest["records"]})

    def canon(self) -> Any:
        version, problems = canonical_version(self.ws, self.ex["source"], self.ex["account"])
        assert problems == [], problems
        return version

    def plain(self) -> tuple[bytes, bytes]:
        base = self.ws / "canonical" / self.ex["source"]
        return (base / "acct0.jsonl").read_bytes(), (base / "acct0.meta.json").read_bytes()

    def verify_ok(self) -> None:
        res = run_cli("verify", "--config", str(self.cfg))
        assert res.returncode == 0, res.stdout + res.stderr


def sample(count: int) -> list[int]:
    """Every step up to CAP; else an even spread plus the last ten (the commit end)."""
    if count <= CAP:
        return list(range(1, count + 1))
    spread = CAP - 10
    picked = {1 + (i * (count - 11)) // max(1, spread - 1) for i in range(spread)}
    return sorted(picked | set(range(count - 9, count + 1)))


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> Steps:
    return Steps(tmp_path_factory.mktemp("steps"))


def test_canonize_killed_at_every_step(steps: Steps) -> None:
    ref: dict[str, tuple[bytes, bytes]] = {}
    for which in ("A", "B"):  # uninterrupted references
        steps.point_latest(which)
        rc, count = steps.worker("canonize", force=True)
        assert rc == 0 and count > 0
        ref[which] = steps.plain()
    assert ref["A"][0] != ref["B"][0]
    current = "B"
    points = sample(count)
    for n in points:
        old, new = current, "A" if current == "B" else "B"
        steps.point_latest(new)
        rc, _ = steps.worker("canonize", n)
        assert rc == KILLED, f"step {n} of {count}: the worker was not killed (rc {rc})"
        seen = steps.canon()
        assert seen is not None
        got = hashlib.sha256(ref[old][0]).hexdigest(), hashlib.sha256(ref[new][0]).hexdigest()
        assert seen.data_sha256 in got, f"step {n}: the reader saw neither the old nor the new data"
        steps.verify_ok()  # another process, reading before any repair
        rc, _ = steps.worker("canonize")
        assert rc == 0, f"step {n}: the canonize after the kill failed"
        assert steps.plain() == ref[new], f"step {n}: output differs from an uninterrupted run"
        assert plain_canonical_problems(steps.ws, "gmail", "acct0") == []
        current = new
    print(f"\ncanonize: {len(points)} kills over {count} steps")


def test_index_killed_at_every_step(steps: Steps) -> None:
    steps.point_latest("A")
    assert steps.worker("canonize")[0] == 0
    rc, count = steps.worker("index", force=True)
    assert rc == 0
    current = "A"
    points = sample(count)
    for n in points:
        old_row, _ = index_problems(steps.ws)
        old = old_row.get(("gmail", "acct0"))
        new = "A" if current == "B" else "B"
        steps.point_latest(new)
        assert steps.worker("canonize")[0] == 0
        version = steps.canon()
        rc, _ = steps.worker("index", n)
        assert rc == KILLED, f"step {n} of {count}: the worker was not killed (rc {rc})"
        rows, problems = index_problems(steps.ws)
        assert problems == [], f"step {n}: {problems}"
        row = rows.get(("gmail", "acct0"))
        assert row in (old, (version.data_sha256, version.records)), f"step {n}: index rows of neither version"
        rc, _ = steps.worker("index")
        assert rc == 0, f"step {n}: the index after the kill failed"
        rows, problems = index_problems(steps.ws)
        assert problems == [] and rows[("gmail", "acct0")][0] == version.data_sha256
        assert index_docs(steps.ws, "gmail", "acct0") == set(version.lines)
        current = new
    print(f"\nindex: {len(points)} kills over {count} steps")


def test_extract_killed_at_every_step(steps: Steps) -> None:
    steps.point_latest("B")
    rc, count = steps.worker("extract")
    assert rc == 0
    reference = latest_content(steps.acct)
    assert reference is not None
    points = sample(count)
    for n in points:
        before = latest_content(steps.acct)
        rc, _ = steps.worker("extract", n)
        assert rc == KILLED, f"step {n} of {count}: the worker was not killed (rc {rc})"
        assert vault_problems(steps.acct) == [], f"step {n}"
        now = latest_content(steps.acct)
        assert now == before or (now is not None and now[1] == reference[1]), f"step {n}: LATEST moved to a bad run"
        rc, _ = steps.worker("extract")
        assert rc == 0, f"step {n}: the extract after the kill failed"
        after = latest_content(steps.acct)
        assert after is not None and after[1] == reference[1], f"step {n}: parts differ from an uninterrupted run"
    print(f"\nextract: {len(points)} kills over {count} steps")
