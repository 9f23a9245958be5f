"""The last run said at start: cron ran the pipeline at night and it did not succeed.

Only runs that ended while the dashboard was open raised a toast; last night's failure (or
cancel, or killed process) showed only in the Stage progress totals. Now the dashboard reads
the newest run of the run history in a thread after the first paint and says it once, in the
words of the live toast. Real populated workspace and real history database (the runs added
by the engine's own recorder); synchronisation is a poll with a deadline, never a sleep.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.events import Event, RunFinished, RunStarted, TaskFinished, TaskQueued, TaskStarted
from engine.store.history import HistoryCorrupt, HistoryUnreadable
from engine.store.logsink import JsonLogSink
from engine.store.state import StateRecorder
from lorch_tui import lastrun, scan
from lorch_tui.app import LorchApp
from tests.tui.conftest import Setup
from tests.tui.dash import NAMES, Notes, until
from tests.tui.fake_engine import FakeEngine

SIZE = (120, 35)
NIGHT = "2026-11-30T02:15:07.250Z"
RUN = "20261130T021507Z-cron01"


def make_app(setup: Setup) -> LorchApp:
    loaded = setup.load()
    return LorchApp(loaded, FakeEngine(loaded), watch=False)


def night(status: str | None, *, failed: int = 0, cancelled: int = 0) -> list[Event]:
    """A cron run of the three accounts' extracts at 02:15: mail-alpha ends ``failed`` with a
    code when ``failed``; the run ends with ``status`` (None: killed, no end recorded)."""
    evs: list[Event] = [RunStarted(run_id=RUN, trigger="cron", pipeline="t", stages=["extract"], tasks=3, ts=NIGHT)]
    for name in NAMES:
        tid = f"extract:{name}"
        evs += [TaskQueued(task_id=tid, stage="extract", extractor=name, account=name, ts=NIGHT),
                TaskStarted(task_id=tid, stage="extract", extractor=name, account=name, attempt=1, pid=4242,
                            ts=NIGHT)]
    evs.append(TaskFinished(task_id=f"extract:{NAMES[1]}", stage="extract", extractor=NAMES[1],
                            account=NAMES[1], status="success", records=12, ts=NIGHT))
    if failed:
        evs.append(TaskFinished(task_id=f"extract:{NAMES[0]}", stage="extract", extractor=NAMES[0],
                                account=NAMES[0], status="failed", error_code="TAP_EXIT_NONZERO",
                                exit_code=1, ts=NIGHT))
    if status is not None:
        evs.append(RunFinished(run_id=RUN, status=status, tasks=3, succeeded=3 - failed - cancelled,  # type: ignore[arg-type]
                               failed=failed, cancelled=cancelled, records=12, duration_s=42.0, ts=NIGHT))
    return evs


async def record(setup: Setup, events: list[Event]) -> None:
    """Add a run to the workspace's history with the engine's own recorder (it is the newest)."""
    rec = await StateRecorder(setup.workspace / "state" / "lorch.sqlite").start()
    for ev in events:
        rec(ev)
    await rec.close()


def dead_lock_holder(setup: Setup) -> None:
    """The lock file names a process that is gone (cron's run was killed -9)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (setup.workspace / "state" / "lock").write_text(f"{dead.stdout.strip()} 1764468907 lorch-tui --no-ui\n")


async def checked(pilot: Any) -> None:
    """Wait until the start's history read has ended (and its toast, if any, is on screen)."""
    app = pilot.app
    await until(pilot, lambda: getattr(app, "last_run_check", None) is not None and app.last_run_check.is_finished,
                what="the last run's check")
    await pilot.pause()  # the call it made from its thread, if any, runs on the loop


def about_last_run(notes: Notes) -> list[Any]:
    return [n for n in notes.items if "the last run" in n.message or RUN in n.title]


async def test_last_nights_failed_run_is_said_at_start(populated: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    await record(populated, night("failed", failed=1, cancelled=1))
    threads: list[str] = []
    real = lastrun.last_run_note

    def spy(db: Path) -> Any:
        threads.append(threading.current_thread().name)
        return real(db)

    monkeypatch.setattr(lastrun, "last_run_note", spy)
    notes = Notes()
    app = make_app(populated)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        note = await until(pilot, lambda: notes.find("the last run", "failed"), what="the failed run's toast")
        assert note.message == ("the last run (cron, started 2026-11-30 02:15 UTC) failed: 1 of 3 task(s) failed "
                                "(TAP_EXIT_NONZERO). In Stage progress, enter on a red row explains why; "
                                "H shows the history.")
        assert note.title == f"run {RUN} failed" and note.severity == "error"
        assert threads and threading.main_thread().name not in threads  # read off the event loop
        assert not any(name in f"{note.title} {note.message}" for name in NAMES)  # run id, counts, codes only
        await checked(pilot)
        assert len(about_last_run(notes)) == 1, notes.texts()


async def test_a_killed_run_is_said_abandoned_once(populated: Setup) -> None:
    """Killed -9 at night: the history still says `running` and no live process holds the lock.
    Its log lines are read back too, so the progress pane's own "run abandoned" check also
    sees it: one toast, not two."""
    events = night(None, failed=1)
    await record(populated, events)
    sink = JsonLogSink(populated.workspace / "logs")
    for ev in events:
        sink(ev)
    sink.close()
    dead_lock_holder(populated)
    notes = Notes()
    app = make_app(populated)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        note = await until(pilot, lambda: notes.find("the last run", "did not finish"), what="the abandoned toast")
        assert note.title == f"run {RUN} abandoned" and note.severity == "error"
        assert note.message.startswith("the last run (cron, started 2026-11-30 02:15 UTC) did not finish: its "
                                       "process ended without recording its end")
        assert "1 of 3 task(s) succeeded, 1 failed (TAP_EXIT_NONZERO)" in note.message
        assert "The next run records it as abandoned" in note.message
        await until(pilot, lambda: app.model.run_id == RUN and app.model.status == "abandoned", timeout=15,
                    what="the progress pane calling the read-back run abandoned")
        await checked(pilot)
        assert len(about_last_run(notes)) == 1, notes.texts()
        assert notes.find("run abandoned") is None, notes.texts()


async def test_a_cancelled_last_run_is_a_warning(populated: Setup) -> None:
    await record(populated, night("cancelled", cancelled=2))
    notes = Notes()
    app = make_app(populated)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        note = await until(pilot, lambda: notes.find("the last run", "cancelled"), what="the cancelled toast")
        assert note.message == ("the last run (cron, started 2026-11-30 02:15 UTC) was cancelled: 2 of 3 task(s) "
                                "cancelled. H shows the history.")
        assert note.severity == "warning" and note.title == f"run {RUN} cancelled"


async def test_nothing_is_said_for_a_successful_last_run(populated: Setup) -> None:
    await record(populated, night("success"))
    notes = Notes()
    app = make_app(populated)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await checked(pilot)
        assert about_last_run(notes) == [], notes.texts()


async def test_nothing_is_said_for_a_run_still_going(populated: Setup) -> None:
    """cron is running now (a live process holds the lock): nothing ended, nothing to say."""
    import os

    await record(populated, night(None))
    (populated.workspace / "state" / "lock").write_text(f"{os.getppid()} 1764468907 lorch-tui --no-ui\n")
    notes = Notes()
    app = make_app(populated)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await checked(pilot)
        assert about_last_run(notes) == [], notes.texts()


async def test_nothing_is_said_without_history(fresh: Setup) -> None:
    notes = Notes()
    app = make_app(fresh)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await checked(pilot)
        assert about_last_run(notes) == [], notes.texts()


async def test_a_damaged_history_is_no_crash_and_no_toast(populated: Setup) -> None:
    db = populated.workspace / "state" / "lorch.sqlite"
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    notes = Notes()
    app = make_app(populated)
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await checked(pilot)
        assert app.last_run_check.error is None
        assert about_last_run(notes) == [], notes.texts()
    assert isinstance(scan.newest_runs(db, 1), HistoryCorrupt)


def test_a_locked_history_is_no_crash(populated: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Locked between the open and the query (a backup, an sqlite3 shell holding it)."""
    db = populated.workspace / "state" / "lorch.sqlite"

    def locked(path: Path, limit: int = 10) -> list[dict[str, Any]]:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(scan, "history", locked)
    assert isinstance(scan.newest_runs(db, 1), HistoryUnreadable)
    assert lastrun.last_run_note(db) is None


def test_the_notes_words() -> None:
    base = {"run_id": "r1", "trigger": "cron", "started_at": NIGHT, "tasks": 36, "succeeded": 35, "failed": 1,
            "cancelled": 0}
    assert lastrun.note_for({**base, "status": "success"}) is None
    assert lastrun.note_for({**base, "status": "running"}) is None
    failed = lastrun.note_for({**base, "status": "failed"})
    assert failed is not None and failed.message == (
        "the last run (cron, started 2026-11-30 02:15 UTC) failed: 1 of 36 task(s) failed. In Stage progress, "
        "enter on a red row explains why; H shows the history.")
    many = lastrun.note_for({**base, "status": "failed"}, ["A", "B", "C", "D"])
    assert many is not None and "(A, B, C, ...)" in many.message
    assert lastrun.started_said("garbage") == "garbage" and lastrun.started_said(None) == "?"
