"""Crash consistency of the project stage: SIGKILL the real project worker before each of
its file-system steps and at random instants, and check what every reader sees.

The workspace is the bundled demo (``LORCH_DEMO_RECORDS`` records per tap) built once by a
real ``lorchestra run``. The project input then alternates between two states that give
different projections: A (no overrides) and B (an overrides file merging two clients, so
one chart folder goes away, another changes, and the way back adds it again). The worker
is the real ``python -m engine.run.worker`` given a real project ``TaskSpec``; the kill points
come from the test-only ``tests/crashshim/sitecustomize.py`` (every ``os.replace``,
``rename``, ``link``, ``unlink``, ``rmdir`` and ``fsync``; the folder exchange itself is one
``renameat2`` system call between two counted steps, and the client tables' commit is one
SQLite transaction before the first chart step).

After each kill, before any repair: each chart folder is the complete old or the complete
new one and nothing else is visible under a chart name (``invariants.chart_problems``); the
client tables read through ``engine.clients.read`` are the whole old or the whole new
projection; ``lorchestra clients list`` (a separate reader process) lists the clients of one
of them, each with a final chart-folder name. Then the next uninterrupted project run must
succeed, leave no hidden leftovers, and give the charts (byte for byte, but for the
``projected_at`` line, which is the time a chart last changed) and tables of an
uninterrupted run.

``LORCH_CRASH_PROJECT_CAP`` scales the sample of steps (default 40: every step of the demo's runs); ``..._RANDOM`` the
random kills (default 6). About a minute in all on the shared machine.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.clients.charts import is_chart_folder
from engine.config.load import load
from engine.run.plan import PROJECT_TASK_ID, project_extractor
from engine.stages.spec import TaskSpec
from tests.engine.test_crash_steps import KILLED, SHIM
from tests.helpers import REPO, clean_env, run_cli
from tests.invariants import Charts, chart_folders, chart_problems, client_tables

pytestmark = pytest.mark.crash

RECORDS = 10
CAP = int(__import__("os").environ.get("LORCH_CRASH_PROJECT_CAP", "40"))
RANDOM_KILLS = int(__import__("os").environ.get("LORCH_CRASH_PROJECT_RANDOM", "6"))


class Project:
    """The demo workspace, the two input states and a project worker runner."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ws = tmp / "ws"
        res = run_cli("run", "--demo", "--workspace", str(self.ws), env=clean_env(LORCH_DEMO_RECORDS=str(RECORDS)),
                      timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        self.cfg = load(REPO / "config" / "demo.yaml", workspace=self.ws).config
        self.overrides = tmp / "overrides.yaml"
        tables = client_tables(self.ws)
        assert tables is not None and len(tables["clients"]) >= 3
        ids = [c["client_id"] for c in tables["clients"]]
        self.states = {"A": b"version: 1\n",
                       "B": orjson.dumps({"version": 1, "merge": [[ids[0], ids[1]]]})}
        self.kills = 0
        self.extra_env: dict[str, str] = {}
        self.finished: list[dict[str, Any]] = []
        """The ``task_finished`` events of the last :meth:`worker` run."""

    def use(self, which: str) -> None:
        self.overrides.write_bytes(self.states[which])

    def spec(self, *, force: bool = False) -> bytes:
        assert self.cfg.clients is not None
        clients = self.cfg.clients.model_copy(update={"overrides": self.overrides})
        return TaskSpec(task_id=PROJECT_TASK_ID, stage="project", attempt=1, workspace=self.ws,
                        extractor=project_extractor(), index=self.cfg.stages.index,
                        clients=clients, force=force).model_dump_json().encode()

    def env(self, step: int | None) -> dict[str, str]:
        if step is None:
            return clean_env(**self.extra_env)
        return clean_env(PYTHONPATH=str(SHIM), LORCH_TEST_CRASH_STEP=str(step),
                         LORCH_TEST_CRASH_COUNT=str(self.tmp / "steps"), **self.extra_env)

    def worker(self, step: int | None = None, *, force: bool = False) -> tuple[int, int]:
        """Run one project worker; (return code, steps counted when it was not killed)."""
        count = self.tmp / "steps"
        count.unlink(missing_ok=True)
        res = subprocess.run([sys.executable, "-m", "engine.run.worker"], input=self.spec(force=force),
                             cwd=REPO, env=self.env(0 if step is None else step), capture_output=True,
                             timeout=120)
        if res.returncode == KILLED:
            self.kills += 1
        self.finished = [e for e in map(orjson.loads, res.stdout.splitlines()) if e.get("type") == "task_finished"]
        return res.returncode, int(count.read_text()) if count.exists() else -1

    def kill_after(self, delay: float) -> int:
        """Start a project worker and SIGKILL it after ``delay`` seconds; its return code."""
        proc = subprocess.Popen([sys.executable, "-m", "engine.run.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                                env=self.env(None))
        assert proc.stdin is not None
        proc.stdin.write(self.spec())
        proc.stdin.close()
        time.sleep(delay)  # the random instant is the point of this kill
        proc.kill()
        rc = proc.wait(timeout=60)
        if rc == KILLED:
            self.kills += 1
        return rc

    def state(self) -> tuple[Charts, Any]:
        return chart_folders(self.ws / "clients"), client_tables(self.ws)

    def listed(self) -> list[dict[str, Any]]:
        """``lorchestra clients list --json``: a reader in another process."""
        res = run_cli("clients", "list", "--json", "--workspace", str(self.ws))
        assert res.returncode == 0, res.stdout + res.stderr
        return [orjson.loads(line) for line in res.stdout.splitlines() if line.strip()]


def check_readers(p: Project, old: tuple[Charts, Any], new: tuple[Charts, Any], at: str) -> None:
    """Before any repair: charts, tables and the clients command see the old or the new state."""
    root = p.ws / "clients"
    assert chart_problems(root, old[0], new[0]) == [], at
    tables = client_tables(p.ws)
    assert tables in (old[1], new[1]), f"{at}: client tables of neither state"
    listed = p.listed()
    assert [c["client_id"] for c in listed] in (
        [c["client_id"] for c in old[1]["clients"]], [c["client_id"] for c in new[1]["clients"]]), at
    assert all(is_chart_folder(c["folder"]) for c in listed), f"{at}: a listed folder is no chart name"


def check_repaired(p: Project, ref: tuple[Charts, Any], at: str) -> None:
    """The next uninterrupted run: success, no leftovers, the charts and tables of a clean run."""
    rc, _ = p.worker()
    assert rc == 0, f"{at}: the project run after the kill failed"
    root = p.ws / "clients"
    hidden = [e.name for e in root.iterdir() if e.name.startswith(".")]
    assert hidden == [], f"{at}: leftovers {hidden}"
    assert p.state() == ref, f"{at}: output differs from an uninterrupted run"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("crashproject"))


@pytest.fixture(scope="module")
def refs(project: Project) -> dict[str, tuple[Charts, Any]]:
    out = {}
    for which in ("A", "B"):  # uninterrupted references
        project.use(which)
        rc, _ = project.worker(force=True)
        assert rc == 0
        out[which] = project.state()
        # the same input again: nothing changes, byte for byte (projected_at included)
        raw = chart_folders(project.ws / "clients", masked=False)
        assert project.worker(force=True)[0] == 0
        assert chart_folders(project.ws / "clients", masked=False) == raw
    assert out["A"][0] != out["B"][0] and out["A"][1] != out["B"][1]
    assert out["A"][0].keys() != out["B"][0].keys()  # a folder goes away (and comes back)
    return out


def sample(count: int) -> list[int]:
    """Every step up to CAP; else an even spread plus the last few."""
    if count <= CAP:
        return list(range(1, count + 1))
    spread = CAP - 4
    picked = {1 + (i * (count - 5)) // max(1, spread - 1) for i in range(spread)}
    return sorted(picked | set(range(count - 3, count + 1)))


def test_project_killed_at_every_step(project: Project, refs: dict[str, tuple[Charts, Any]]) -> None:
    current = "B"  # the refs fixture ends in B
    project.use("A")
    _, count = project.worker()
    assert count > 0
    project.use("B")
    assert project.worker()[0] == 0
    points = sample(count)
    for n in points:
        old, new = current, "A" if current == "B" else "B"
        project.use(new)
        rc, _ = project.worker(n)
        assert rc == KILLED, f"step {n} of {count}: the worker was not killed (rc {rc})"
        check_readers(project, refs[old], refs[new], f"step {n} of {count}")
        check_repaired(project, refs[new], f"step {n} of {count}")
        current = new
    print(f"\nproject: {len(points)} kills over {count} steps")


def test_project_killed_at_random_instants(project: Project, refs: dict[str, tuple[Charts, Any]]) -> None:
    rng = random.Random(13)
    project.use("A")
    assert project.worker()[0] == 0
    project.use("B")
    started = time.monotonic()
    assert project.worker()[0] == 0
    duration = time.monotonic() - started
    current, kills, tries = "B", 0, 0
    while kills < RANDOM_KILLS and tries < 3 * RANDOM_KILLS:  # a run that ends before its kill
        tries += 1                                           # (a quiet machine) is tried again
        old, new = current, "A" if current == "B" else "B"
        project.use(new)
        rc = project.kill_after(rng.uniform(0.05, 0.9) * duration)
        at = f"random kill {tries} (rc {rc})"
        kills += rc == KILLED
        check_readers(project, refs[old], refs[new], at)
        check_repaired(project, refs[new], at)
        current = new
    assert kills >= RANDOM_KILLS // 2, f"most random instants fell outside the worker's run ({tries} tries)"
    print(f"\nproject: {kills} random kills of {RANDOM_KILLS}")


def test_project_with_two_chart_writers_killed_at_every_step(project: Project,
                                                             refs: dict[str, tuple[Charts, Any]]) -> None:
    """The chart folders shared by the task and its forked second writer
    (engine/clients/shards.py, forced by LORCH_CHART_SHARD_MIN=1). The crash shim counts in
    both processes from the fork on: at step N the task is killed (its writer dies with it),
    or the writer is, and the task then fails (rc 1) or is killed at its own step N (each
    process does about half the folder steps, so a late N may kill no one: rc 0). Either
    way every folder is the old or the new one, and the next run repairs everything."""
    project.extra_env = {"LORCH_CHART_SHARD_MIN": "1"}
    try:
        project.use("A")
        assert project.worker()[0] == 0
        project.use("B")
        _, count = project.worker()
        assert count > 0
        current, outcomes = "B", {KILLED: 0, 1: 0, 0: 0}  # 0: this transition has fewer steps
        for n in sample(count)[:: 2]:
            old, new = current, "A" if current == "B" else "B"
            project.use(new)
            rc, _ = project.worker(n)
            assert rc in outcomes, f"step {n} of {count}: rc {rc}"
            outcomes[rc] += 1
            check_readers(project, refs[old], refs[new], f"two writers, step {n} of {count}")
            check_repaired(project, refs[new], f"two writers, step {n} of {count}")
            current = new
        assert outcomes[KILLED] > 0
        print(f"\nproject, two chart writers: {outcomes[KILLED]} task kills, {outcomes[1]} writer kills")
    finally:
        project.extra_env = {}


def test_project_cancelled_at_its_steps(project: Project, refs: dict[str, tuple[Charts, Any]]) -> None:
    """The engine's cancel (SIGTERM, engine/cancel.py: the job stops at its next progress
    report or phase) arriving at one step in three: the worker ends ``cancelled`` with
    ``CANCELLED`` (or, when no check came after that step, ``success``), never hangs or
    crashes; readers see the old or the new state, and the next run repairs everything."""
    project.use("A")
    assert project.worker()[0] == 0
    project.use("B")
    _, count = project.worker()
    assert count > 0
    project.extra_env = {"LORCH_TEST_CRASH_SIGNAL": "TERM"}
    current, outcomes = "B", {"cancelled": 0, "success": 0}
    try:
        for n in sample(count)[::3]:
            old, new = current, "A" if current == "B" else "B"
            project.use(new)
            rc, _ = project.worker(n)
            at = f"cancel at step {n} of {count}"
            assert len(project.finished) == 1, at
            status, code = project.finished[0]["status"], project.finished[0]["error_code"]
            assert (rc, status, code) in ((1, "cancelled", "CANCELLED"), (0, "success", None)), at
            outcomes[status] += 1
            check_readers(project, refs[old], refs[new], at)
            project.extra_env = {}
            check_repaired(project, refs[new], at)
            project.extra_env = {"LORCH_TEST_CRASH_SIGNAL": "TERM"}
            current = new
    finally:
        project.extra_env = {}
    assert outcomes["cancelled"] > 0
    print(f"\nproject: {outcomes['cancelled']} cancelled, {outcomes['success']} finished after the cancel")
