"""The last run, said when the dashboard opens: cron ran it at night, and it did not succeed.

A run that ends while the dashboard is open raises a toast (``RunToasts.run_ended``); a
run that ended before (last night's cron run failed, was cancelled, or its process was
killed) raised none, and showed only in the Stage progress totals. At start, one thread reads
the newest run of the run history (``state/lorch.sqlite``: the same source and the same
reading as the History screen and ``lorchestra status``, a ``running`` run whose process is
gone counting as ``abandoned``) and, when it did not succeed, says so once, in the words of
the live toast. Nothing for a success, a run still going, no history, or a history that
cannot be read now (damaged or locked: ``H`` and ``status`` say why; a toast on every start
would only repeat it). Only PHI-free fields are read: run id, trigger, start time, counts and
error codes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.store.history import HistoryCorrupt, task_rows
from lorch_tui.host import Host
from lorch_tui.scan import newest_runs

Severity = Literal["information", "warning", "error"]
CODES_SHOWN = 3
"""At most this many distinct error codes of the failed tasks in the toast."""


@dataclass(frozen=True)
class LastRunNote:
    """What the toast says about the last run."""

    run_id: str
    title: str
    message: str
    severity: Severity
    timeout: float


def started_said(value: object) -> str:
    """`2026-11-30 02:15 UTC` from the history's ISO start (UTC, with a Z)."""
    text = str(value or "")
    return f"{text[:16].replace('T', ' ')} UTC" if len(text) >= 16 and text[10:11] == "T" else text or "?"


def failed_codes(db: Path, run_id: str) -> list[str]:
    """The distinct error codes of a run's failed tasks (codes only), or [] if unreadable."""
    try:
        rows = task_rows(db, run_id)
    except (HistoryCorrupt, sqlite3.DatabaseError):
        return []
    codes: list[str] = []
    for r in rows:
        code = r.get("error_code")
        if r.get("status") in ("failed", "timeout") and code and code not in codes:
            codes.append(str(code))
    return codes


def note_for(run: dict[str, Any], codes: list[str] | None = None) -> LastRunNote | None:
    """The toast for a run of the history that did not succeed, or None (success, running)."""
    status = str(run.get("status") or "")
    if status in ("success", "running", ""):
        return None
    run_id = str(run["run_id"])
    head = f"the last run ({run.get('trigger') or '?'}, started {started_said(run.get('started_at'))})"
    tasks, failed = int(run.get("tasks") or 0), int(run.get("failed") or 0)
    cancelled, succeeded = int(run.get("cancelled") or 0), int(run.get("succeeded") or 0)
    said = f" ({', '.join(codes[:CODES_SHOWN])}{', ...' if len(codes) > CODES_SHOWN else ''})" if codes else ""
    if status == "failed":
        return LastRunNote(run_id, f"run {run_id} failed",
                           f"{head} failed: {failed} of {tasks} task(s) failed{said}. In Stage progress, "
                           "enter on a red row explains why; H shows the history.", "error", 30)
    if status == "cancelled":
        return LastRunNote(run_id, f"run {run_id} cancelled",
                           f"{head} was cancelled: {cancelled} of {tasks} task(s) cancelled. "
                           "H shows the history.", "warning", 15)
    if status == "abandoned":
        return LastRunNote(run_id, f"run {run_id} abandoned",
                           f"{head} did not finish: its process ended without recording its end (killed, "
                           f"or the machine went down); {succeeded} of {tasks} task(s) succeeded, {failed} "
                           f"failed{said}. The next run records it as abandoned and does what it left "
                           "undone. H shows the history.", "error", 30)
    return LastRunNote(run_id, f"run {run_id} {status}", f"{head} ended {status}. H shows the history.",
                       "warning", 15)


def last_run_note(db: Path) -> LastRunNote | None:
    """The toast for the newest run of the history at ``db``, or None. Never raises for a
    missing, damaged or locked history (the thread it runs in must not fail the app)."""
    try:
        rows = newest_runs(db, 1)
        if isinstance(rows, HistoryCorrupt) or not rows:
            return None
        run = rows[0]
        codes = failed_codes(db, str(run["run_id"])) if run.get("status") in ("failed", "abandoned") else []
        return note_for(run, codes)
    except (OSError, sqlite3.Error, KeyError, ValueError, TypeError):
        return None


def say_last_run(app: Host, told: set[str]) -> Any:
    """Read the last run in a thread, then toast it once unless ``told`` already holds its id
    (it ended while the dashboard was open and was said then). Returns the worker."""
    db = app.ws.state_db

    def show(note: LastRunNote | None) -> None:
        if note is None or note.run_id in told:
            return
        told.add(note.run_id)
        app.notify(note.message, title=note.title, severity=note.severity, timeout=note.timeout, markup=False)

    def read() -> None:
        note = last_run_note(db)
        if note is not None:
            try:
                app.call_from_thread(show, note)
            except RuntimeError:  # the app ended meanwhile: nobody to tell
                pass

    return app.run_worker(read, thread=True, group="last-run", name="last run", exit_on_error=False)
