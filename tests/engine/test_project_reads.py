"""How the project task reads the form responses, and where the embedding model loads (issue 18).

One module-scoped `lorchestra run` (real subprocesses) over the demo's clinical system of
record and its three forms extractors, 30 records each (about 10 s); then forced projections
of that workspace with the worker's own code, each in a fresh interpreter (`python -c`), and
the results compared byte for byte (client tables, chart files, the published measurement
files).

* The measures step scores the responses the reader kept in the scratch database: with every
  form response's object file deleted, the results are unchanged (scoring from the object
  files, as before, met missing objects and scored nothing).
* When the reader did not keep them (the fallback, forced here by keeping no kind), the
  responses are read from their object files, with the same results.
* The responses scored by a forked child while the task resolves its clients
  (`engine.measures.prescore`, forced on these few with `LORCH_PRESCORE_MIN=1`) give the same
  bytes as the task's own scoring; with that child killed the task scores them itself, again
  the same bytes; no scratch file is left either way.
* The measurements are embedded in a process of their own: after a projection that had to
  index them with vectors (their account and every vector removed first), the task's own
  interpreter never loaded the model, and the measurements have vectors.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.index.store import object_path
from tests.helpers import REPO, clean_env, demo_subset_config, run_cli, wait_for

RECORDS = 30
KEEP = ("tap-dataverse", "tap-forms--outcomes", "tap-formsheets--first-visit",
        "tap-formsheets--follow-up")

PROJECT = """
import os
import signal
import sys
import time
from pathlib import Path
from engine.clients import stream
from engine.config.load import load_file
from engine.stages.project import Project
from engine.store.fsutil import secure_umask
from engine.store.workspace import Workspace
from engine.vectors import model
secure_umask()
if sys.argv[3] == "keep-none":
    stream.KEPT_KIND = "no such kind"
from engine.measures import prescore
given = []  # what the forked scorer gave: its database, or None (the task scored itself)
result = prescore.Prescorer.result
def watched(self):
    if sys.argv[3] == "kill-scorer":  # as the OOM killer would
        os.kill(self._child.pid, signal.SIGKILL)
    got = result(self)
    given.append(got is not None)
    return got
prescore.Prescorer.result = watched
if sys.argv[3] in ("slow-scorer", "fail-resolve", "kill-scorer"):  # the scorer is still at work
    # when the task ends or kills it (a scorer that already finished could not be "killed")
    score_all = prescore._score_all
    def slow(scratch, out, reg):
        Path(sys.argv[1], "scorer.pid").write_text(str(os.getpid()))
        time.sleep(60)
        return score_all(scratch, out, reg)
    prescore._score_all = slow
if sys.argv[3] == "fail-resolve":
    resolve = stream.Scratch.resolve
    def failing(self, progress=None):
        deadline = time.monotonic() + 30
        while not Path(sys.argv[1], "scorer.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise OSError("the disk failed")
    stream.Scratch.resolve = failing
    job = Project(Workspace(Path(sys.argv[1])), load_file(Path(sys.argv[2])).clients, force=True)
    try:
        job.run()
    except OSError:
        pass
    pid = int(Path(sys.argv[1], "scorer.pid").read_text())
    print("scorer-gone" if not Path(f"/proc/{pid}").exists() else "scorer-alive", 0, "-")
    raise SystemExit(0)
job = Project(Workspace(Path(sys.argv[1])), load_file(Path(sys.argv[2])).clients, force=True)
assert job.run() == "success"
assert not list(Path(sys.argv[1], "vector-store").glob(".project-scratch*")), "scratch files left"
loaded = model._SHARED is not None and model._SHARED._table is not None
print("model-loaded" if loaded else "model-not-loaded", job.measures.scored if job.measures else -1,
      "prescored" if given == [True] else "scored-in-task")
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reads")
    path = demo_subset_config(tmp, KEEP)
    ws = tmp / "ws"
    res = run_cli("run", "--workspace", str(ws), "--config", str(path),
                  env=clean_env(LORCH_DEMO_RECORDS=str(RECORDS)), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return ws, path


def project(ws: Path, cfg: Path, mode: str = "normal", prescore_min: int | None = None) -> tuple[str, int]:
    """One forced projection in a fresh interpreter: (whether it loaded the model, scored)."""
    loaded, scored, _ = project_how(ws, cfg, mode, prescore_min)
    return loaded, scored


def project_how(ws: Path, cfg: Path, mode: str = "normal",
                prescore_min: int | None = None) -> tuple[str, int, str]:
    """(whether it loaded the model, scored, whether a forked scorer's outcomes were used)."""
    env = clean_env() if prescore_min is None else clean_env(LORCH_PRESCORE_MIN=str(prescore_min))
    res = subprocess.run([sys.executable, "-c", PROJECT, str(ws), str(cfg), mode], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded, scored, how = res.stdout.split()
    return loaded, int(scored), how


def results(ws: Path) -> list[str]:
    """Every client table row, and the sha256 of every chart file and measures file."""
    conn = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    out = [repr(r) for t in ("clients", "client_keys", "client_links", "client_conflicts", "client_unlinked")
           for r in sorted(conn.execute(f"SELECT * FROM {t}"))]  # noqa: S608
    conn.close()
    files = sorted(p for d in ("clients", "canonical/measures") for p in (ws / d).rglob("*") if p.is_file())
    return out + [f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.relative_to(ws)}" for p in files]


def test_responses_are_scored_from_the_scratch_database(demo: tuple[Path, Path], tmp_path: Path) -> None:
    src, cfg = demo
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    _, scored = project(ws, cfg)
    before = results(ws)
    assert scored > 0 and any("canonical/measures/scored.jsonl" in line for line in before)
    conn = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    shas = [s for (s,) in conn.execute("SELECT sha256 FROM documents WHERE kind = 'form_response'")]
    conn.close()
    assert shas
    for sha in shas:  # the canonical files still give every response to the reader
        object_path(ws / "vector-store" / "objects", sha).unlink()
    assert project(ws, cfg)[1] == scored
    assert results(ws) == before


def test_the_fallback_reads_object_files_with_the_same_results(demo: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    src, cfg = demo
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    scored = project(ws, cfg)[1]
    before = results(ws)
    assert project(ws, cfg, "keep-none")[1] == scored
    assert results(ws) == before


def test_measurements_are_embedded_outside_the_project_task(demo: tuple[Path, Path], tmp_path: Path) -> None:
    src, cfg = demo
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    db = ws / "vector-store" / "index.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM accounts WHERE source = 'measures'")  # the task must index them again
    conn.execute("DELETE FROM vectors")  # ... and embed every one
    conn.commit()
    loaded, scored = project(ws, cfg)
    assert scored > 0
    assert loaded == "model-not-loaded"
    embedded = conn.execute("SELECT count(*) FROM documents d JOIN vectors v ON v.sha256 = d.sha256 "
                            "WHERE d.source = 'measures'").fetchone()[0]
    conn.close()
    assert embedded == scored


def test_a_forked_scorer_gives_the_same_bytes(demo: tuple[Path, Path], tmp_path: Path) -> None:
    """The responses scored on the second core while the task resolves (engine.measures.prescore)
    give the tables, charts and published files of the task's own scoring; a scorer killed
    before it ends costs only time (the task scores them itself, same bytes)."""
    src, cfg = demo
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    _, scored, how = project_how(ws, cfg, prescore_min=10**9)
    assert how == "scored-in-task" and scored > 0
    alone = results(ws)
    _, again, how = project_how(ws, cfg, prescore_min=1)
    assert how == "prescored"
    assert again == scored
    assert results(ws) == alone
    _, killed, how = project_how(ws, cfg, "kill-scorer", prescore_min=1)
    assert how == "scored-in-task"
    assert killed == scored
    assert results(ws) == alone


def test_the_scorer_never_outlives_its_task(demo: tuple[Path, Path], tmp_path: Path) -> None:
    """A task that stops early (an error) kills its scorer before it returns; a task killed
    outright takes it along (the kernel's parent-death signal); the next run starts clean."""
    src, cfg = demo
    ws = tmp_path / "ws"
    shutil.copytree(src, ws)
    project_how(ws, cfg, prescore_min=10**9)
    alone = results(ws)
    assert project_how(ws, cfg, "fail-resolve", prescore_min=1)[0] == "scorer-gone"
    (ws / "scorer.pid").unlink()
    proc = subprocess.Popen([sys.executable, "-c", PROJECT, str(ws), str(cfg), "slow-scorer"], cwd=REPO,
                            env=clean_env(LORCH_PRESCORE_MIN="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pid_file = ws / "scorer.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the scorer to start")
    scorer = int(pid_file.read_text())
    assert Path(f"/proc/{scorer}").exists()
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: not Path(f"/proc/{scorer}").exists() or _zombie(scorer), 10, "the scorer to die with its task")
    pid_file.unlink()
    assert list((ws / "vector-store").glob(".project-scratch*")), "a kill leaves the scratch files..."
    assert project_how(ws, cfg, prescore_min=1)[2] == "prescored"  # ...which the next run removes
    assert results(ws) == alone


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but was not reaped yet (its parent, the task, is gone too)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
