"""The run history in ``state/lorch.sqlite``: what real runs record, how the recorder batches,
and that nothing but event fields (no PHI) ever lands in it."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from engine.demo_taps.canary import CANARIES
from engine.events import (
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskProgress,
    TaskQueued,
    TaskStarted,
)
from engine.run.plan import IMPLEMENTED_STAGES
from engine.store import state
from engine.store.state import StateRecorder
from tests.helpers import clean_env, demo_extractor, run_cli, write_config

GMAIL_MAPPING = {"canonize": {"mappings": [
    {"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"}]}}


def db_rows(db: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def test_a_real_run_is_recorded_with_every_task(tmp_path: Path) -> None:
    exs = [demo_extractor("good", records=12), demo_extractor("bad", records=12, seed=2,
                                                              faults={"fail_after": 4, "exit_code": 3})]
    cfg = write_config(tmp_path, exs, stages=GMAIL_MAPPING)
    res = run_cli("run", "--config", str(cfg), env=clean_env(COLUMNS="200"))
    assert res.returncode == 1, res.stderr
    db = tmp_path / "ws" / "state" / "lorch.sqlite"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    [run] = db_rows(db, "SELECT * FROM runs")
    n = len(IMPLEMENTED_STAGES)
    assert (run["trigger"], run["pipeline"], run["stages"], run["status"]) == (
        "cli", "test", ",".join(IMPLEMENTED_STAGES), "failed")
    assert (run["tasks"], run["succeeded"], run["failed"], run["cancelled"]) == (2 * n, n, 1, n - 1)
    assert run["records"] == 12 + 4 and run["finished_at"] > run["started_at"] and run["duration_s"] > 0
    tasks = {t["task_id"]: t for t in db_rows(db, "SELECT * FROM tasks WHERE run_id = ?", run["run_id"])}
    assert set(tasks) == {f"{stage}:{name}" for stage in IMPLEMENTED_STAGES for name in ("good", "bad")}
    good, bad = tasks["extract:good"], tasks["extract:bad"]
    assert (good["status"], good["records"], good["attempt"], good["latest_moved"]) == ("success", 12, 1, 1)
    assert good["bytes"] > 0 and good["vault_run"].startswith("dt=") and good["duration_s"] > 0
    assert (bad["status"], bad["error_code"], bad["exit_code"], bad["records"]) == (
        "failed", "TAP_EXIT_NONZERO", 3, 4)
    assert tasks["canonize:good"]["status"] == "success" and tasks["canonize:good"]["records"] == 12
    blocked = tasks["canonize:bad"]
    assert (blocked["status"], blocked["error_code"], blocked["started_at"]) == ("cancelled", "UPSTREAM_FAILED", None)
    assert db_rows(db, "PRAGMA journal_mode")[0]["journal_mode"] == "wal"


def test_the_history_holds_no_phi(tmp_path: Path) -> None:
    exs = [demo_extractor("mail", records=10), demo_extractor("crm", tap="dataverse", records=10),
           demo_extractor("broken", records=10, faults={"fail_after": 6})]
    cfg = write_config(tmp_path, exs, stages=GMAIL_MAPPING)
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 1, res.stderr
    state_dir = tmp_path / "ws" / "state"
    blob = b"".join(p.read_bytes() for p in state_dir.iterdir() if p.is_file())
    assert b"broken" in blob and b"TAP_EXIT_NONZERO" in blob  # the history is there ...
    for canary in CANARIES:  # ... and the planted PHI is not
        assert canary.encode() not in blob, canary


def test_triggers_and_history_order(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one", records=5)])
    assert run_cli("run", "--config", str(cfg)).returncode == 0
    res = run_cli("--no-ui", "--config", str(cfg), prog="lorch_tui.tui_main")
    assert res.returncode == 0, res.stderr
    db = tmp_path / "ws" / "state" / "lorch.sqlite"
    rows = state.history(db, 10)
    assert [r["trigger"] for r in rows] == ["cron", "cli"]
    assert state.last_run(db) == rows[0]
    assert state.history(db, 1) == rows[:1]
    stages = state.stage_rows(db, rows[0]["run_id"])
    assert [s["stage"] for s in stages] == list(IMPLEMENTED_STAGES)
    assert stages[0]["records"] == 5 and stages[0]["tasks"] == 1 and stages[0]["duration_s"] > 0
    assert [t["task_id"] for t in state.task_rows(db, rows[0]["run_id"])] == [
        f"{stage}:one" for stage in IMPLEMENTED_STAGES]


def test_readers_never_create_the_database(tmp_path: Path) -> None:
    db = tmp_path / "state" / "lorch.sqlite"
    assert state.last_run(db) is None and state.history(db) == [] and state.task_rows(db, "x") == []
    assert not db.exists() and not db.parent.exists()


def _events(run_id: str, n: int) -> list[Any]:
    out: list[Any] = [RunStarted(run_id=run_id, trigger="dashboard", pipeline="p", stages=["extract"], tasks=n)]
    for i in range(n):
        out.append(TaskQueued(task_id=f"extract:e{i}", stage="extract", extractor=f"e{i}", account=f"a{i}"))
    for i in range(n):
        out.append(TaskStarted(task_id=f"extract:e{i}", stage="extract", extractor=f"e{i}", account=f"a{i}",
                               attempt=1, pid=100 + i))
        out += [TaskProgress(task_id=f"extract:e{i}", stage="extract", extractor=f"e{i}", records=r)
                for r in range(50)]
        out.append(TaskFinished(task_id=f"extract:e{i}", stage="extract", extractor=f"e{i}", account=f"a{i}",
                                status="success", records=7, duration_s=0.5))
    out.append(RunFinished(run_id=run_id, status="success", tasks=n, succeeded=n, failed=0, cancelled=0,
                           records=7 * n, duration_s=1.0))
    return out


async def test_recorder_batches_events_and_flushes_on_close(tmp_path: Path) -> None:
    db = tmp_path / "state" / "lorch.sqlite"
    rec = await StateRecorder(db, batch_delay_s=60).start()
    for event in _events("r1", 30):
        rec(event)
    await asyncio.sleep(0.1)  # the writer now waits for its batch delay: nothing is written yet
    assert state.history(db) == []
    started = asyncio.get_running_loop().time()
    await rec.close()
    assert asyncio.get_running_loop().time() - started < 10  # close cuts the batch delay short
    [run] = state.history(db)
    assert (run["run_id"], run["trigger"], run["status"], run["records"]) == ("r1", "dashboard", "success", 210)
    tasks = state.task_rows(db, "r1")
    assert len(tasks) == 30 and all(t["status"] == "success" and t["records"] == 7 for t in tasks)


async def test_recorder_writes_in_the_background(tmp_path: Path) -> None:
    db = tmp_path / "lorch.sqlite"
    rec = await StateRecorder(db, batch_delay_s=0.01).start()
    for event in _events("r2", 3)[:4]:
        rec(event)

    for _ in range(200):
        await asyncio.sleep(0.01)
        if len(state.task_rows(db, "r2")) == 3:
            break
    assert [t["status"] for t in state.task_rows(db, "r2")] == ["queued"] * 3
    await rec.close()


async def test_abandoned_runs_are_marked_by_the_next_locked_session(tmp_path: Path) -> None:
    db = tmp_path / "lorch.sqlite"
    rec = await StateRecorder(db).start()
    for event in _events("dead", 2)[:4]:  # the process died mid-run: no RunFinished
        rec(event)
    await rec.close()
    assert state.last_run(db)["status"] == "running"  # type: ignore[index]
    rec = await StateRecorder(db).start(mark_abandoned=True)
    await rec.close()
    assert state.last_run(db)["status"] == "abandoned"  # type: ignore[index]
    assert {t["status"] for t in state.task_rows(db, "dead")} == {"abandoned"}


async def test_an_abandoned_run_keeps_the_counts_of_the_tasks_that_finished(tmp_path: Path) -> None:
    db = tmp_path / "lorch.sqlite"
    rec = await StateRecorder(db).start()
    events = _events("dead", 3)
    cut = next(i for i, e in enumerate(events) if isinstance(e, TaskStarted) and e.extractor == "e1")
    for event in events[:cut + 1]:  # e0 finished, e1 running, e2 queued: then the process died
        rec(event)
    await rec.close()
    rec = await StateRecorder(db).start(mark_abandoned=True)
    await rec.close()
    [run] = state.history(db)
    assert (run["status"], run["tasks"], run["succeeded"], run["failed"], run["cancelled"], run["records"]) == (
        "abandoned", 3, 1, 0, 2, 7)
    assert [t["status"] for t in state.task_rows(db, "dead")] == ["success", "abandoned", "abandoned"]


async def test_a_broken_history_never_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lorch.sqlite"
    db.mkdir()  # not a file: cannot be opened as a database
    rec = await StateRecorder(db).start()
    for event in _events("r3", 2):
        rec(event)
    await rec.close()
    err = capsys.readouterr().err
    assert "cannot write the run history" in err and err.count("warning") == 1
    assert rec.failed


def test_a_damaged_history_file_does_not_fail_a_run(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one", records=5)])
    db = tmp_path / "ws" / "state" / "lorch.sqlite"
    db.parent.parent.mkdir(mode=0o700)
    db.parent.mkdir(mode=0o700)
    db.write_bytes(b"this is not a database" * 100)
    db.chmod(0o600)
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert "cannot write the run history" in res.stderr and "Traceback" not in res.stderr


async def test_the_last_run_is_the_last_recorded_even_after_the_clock_was_set_back(tmp_path: Path) -> None:
    """`status` ordered runs by start time: a failed run after the clock went back an hour
    started "before" the last success, and `status` named the success as the last run."""
    db = tmp_path / "lorch.sqlite"
    rec = await StateRecorder(db).start()
    first = _events("r-late", 1)
    first[0] = first[0].model_copy(update={"ts": "2026-12-13T02:15:01Z"})
    second = _events("r-early", 1)
    second[0] = second[0].model_copy(update={"ts": "2026-12-12T01:30:00Z"})
    second[-1] = second[-1].model_copy(update={"status": "failed", "succeeded": 0, "failed": 1})
    for event in first + second:
        rec(event)
    await rec.close()
    assert [r["run_id"] for r in state.history(db)] == ["r-early", "r-late"]
    assert state.last_run(db)["status"] == "failed"  # type: ignore[index]


async def test_a_killed_run_is_shown_abandoned_with_its_finished_tasks_before_any_session_marks_it(
        tmp_path: Path) -> None:
    """Right after a kill, `status --json` and the history screen said 0 of 3 (the run's own
    totals come at its end) while its tasks showed a success."""
    db = tmp_path / "lorch.sqlite"
    rec = await StateRecorder(db).start()
    events = _events("dead", 3)
    cut = next(i for i, e in enumerate(events) if isinstance(e, TaskStarted) and e.extractor == "e1")
    for event in events[:cut + 1]:
        rec(event)
    await rec.close()
    [row] = state.history(db)
    assert (row["status"], row["succeeded"]) == ("running", 0)
    from engine.store.history import as_abandoned

    shown = as_abandoned(db, row)
    assert (shown["status"], shown["tasks"], shown["succeeded"], shown["failed"], shown["cancelled"],
            shown["records"]) == ("abandoned", 3, 1, 0, 2, 7)


def _stage_run(run_id: str, stages: list[str], records: dict[str, int], *, summary: int | None) -> list[Any]:
    """A run of one task per stage (``records`` by stage); ``summary``: its RunFinished's
    records (None: the process died before it)."""
    out: list[Any] = [RunStarted(run_id=run_id, trigger="cli", pipeline="p", stages=stages, tasks=len(stages))]
    for st in stages:
        out.append(TaskQueued(task_id=f"{st}:x", stage=st, extractor="x", account="x"))
    for st in stages:
        out.append(TaskStarted(task_id=f"{st}:x", stage=st, extractor="x", account="x", attempt=1, pid=1))
        out.append(TaskFinished(task_id=f"{st}:x", stage=st, extractor="x", account="x", status="success",
                                records=records[st], duration_s=0.1))
    if summary is not None:
        out.append(RunFinished(run_id=run_id, status="success", tasks=len(stages), succeeded=len(stages),
                               failed=0, cancelled=0, records=summary, duration_s=0.5))
    return out


async def test_a_run_without_extract_counts_its_own_stage_s_records(tmp_path: Path) -> None:
    """A canonize-only run was recorded with 0 records (its summary summed extract tasks, of
    which it had none): runs an earlier version recorded so are counted again by the next
    locked session, and a killed run without extract counts its own stage, as its summary
    would have; a run that extracted keeps its extracted count."""
    from engine.store.history import as_abandoned, counted_stage, records_cell, records_said

    db = tmp_path / "lorch.sqlite"
    rec = await StateRecorder(db).start()
    for event in [*_stage_run("old-canon", ["canonize"], {"canonize": 12}, summary=0),
                  *_stage_run("old-project", ["project"], {"project": 4}, summary=0),
                  *_stage_run("full", ["extract", "canonize", "index"], {"extract": 30, "canonize": 28, "index": 27},
                              summary=30),
                  *_stage_run("dead-index", ["canonize", "index"], {"canonize": 8, "index": 9}, summary=None)]:
        rec(event)
    await rec.close()
    [dead] = [r for r in state.history(db) if r["run_id"] == "dead-index"]
    assert as_abandoned(db, dead)["records"] == 9  # what `status` shows before any session marks it
    rec = await StateRecorder(db).start(mark_abandoned=True)
    await rec.close()
    runs = {r["run_id"]: r for r in state.history(db)}
    assert {k: (r["status"], r["records"]) for k, r in runs.items()} == {
        "old-canon": ("success", 12), "old-project": ("success", 4), "full": ("success", 30),
        "dead-index": ("abandoned", 9)}
    assert [records_cell(runs[k]) for k in ("old-canon", "old-project", "full", "dead-index")] == [
        "12 canonized", "4 links", "30", "9 indexed"]
    assert records_said("canonize", 1) == "1 record canonized" and records_said("project", 4) == "4 links to clients"
    assert records_said("extract,canonize", 30) == "30 records extracted"
    assert [counted_stage(s) for s in ("canonize,project", "", None, ["index", "project"])] == [
        "canonize", "extract", "extract", "index"]
