"""Reading the run and task history in ``state/lorch.sqlite`` (written by :mod:`engine.store.state`).

Why a module of its own: ``lorchestra status``, the dashboard's history screen and scripts
only read the history, with plain ``sqlite3``; the writer in :mod:`engine.store.state` needs
asyncio, aiosqlite and the event models, which cost a read-only command a large part of
its start-up (issue 18). These helpers never create the database and never write.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COUNTED_ORDER = ("extract", "index", "canonize", "project")
"""Which stage's task records are a run's ``records``: the first of these the run had."""

COUNTED_WORDS = {"extract": ("record", "extracted"), "index": ("record", "indexed"),
                 "canonize": ("record", "canonized"), "project": ("link", "to clients")}


def counted_stage(stages: Iterable[str] | str | None) -> str:
    """The stage whose tasks' records a run's ``records`` sums (the ``runs.stages`` column,
    comma-joined, or the planned stages): ``extract`` when the run extracted (what a full
    run has always shown); else ``index`` (documents indexed), else ``canonize`` (records
    canonized), else ``project`` (documents linked to clients). A canonize-only run counted
    its extract tasks, of which it had none: 0 in the log, the history and `status`."""
    if isinstance(stages, str):
        stages = stages.split(",")
    have = set(stages or ())
    return next((s for s in COUNTED_ORDER if s in have), "extract")


def counted_stage_sql(stages_column: str) -> str:
    """:func:`counted_stage` as an SQL expression over a ``runs.stages`` column."""
    padded = f"(',' || coalesce({stages_column}, '') || ',')"
    whens = " ".join(f"WHEN instr({padded}, ',{s},') > 0 THEN '{s}'" for s in COUNTED_ORDER)
    return f"(CASE {whens} ELSE 'extract' END)"


def run_records_sql(run: str) -> str:
    """The records of run ``run`` (a ``runs`` row alias) as its own summary counts them:
    the sum over its tasks of its :func:`counted_stage`."""
    return (f"(SELECT coalesce(sum(t.records), 0) FROM tasks t WHERE t.run_id = {run}.run_id "
            f"AND t.stage = {counted_stage_sql(f'{run}.stages')})")


def records_said(stages: Iterable[str] | str | None, n: int) -> str:
    """`1,234 records extracted`, `1 record canonized`, `12 links to clients`."""
    noun, verb = COUNTED_WORDS[counted_stage(stages)]
    return f"{n:,} {noun}{'' if n == 1 else 's'} {verb}"


def records_cell(run: dict[str, Any]) -> str:
    """A history table's records cell: `1,234` for a run that extracted (as always), else the
    count with what it counts: `120 canonized`, `120 indexed`, `12 links`."""
    stage, n = counted_stage(run.get("stages")), int(run.get("records") or 0)
    if stage == "extract":
        return f"{n:,}"
    if stage == "project":
        return f"{n:,} link{'' if n == 1 else 's'}"
    return f"{n:,} {COUNTED_WORDS[stage][1]}"


class HistoryCorrupt(Exception):
    """``state/lorch.sqlite`` exists but is not a readable SQLite database."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"the run history {path} is damaged (not a readable SQLite database)")
        self.path = path

    @property
    def hint(self) -> str:
        """How to get a working history back."""
        return (f"move it aside (mv {self.path} {self.path}.damaged); the next run starts a new "
                "history, and every earlier event is still in logs/pipeline-*.log")


class HistoryUnreadable(HistoryCorrupt):
    """``state/lorch.sqlite`` is there but could not be read now (locked by another process,
    a read-only or failing disk): not damaged, and not "no history" either."""

    def __init__(self, path: Path, reason: str, hint: str | None = None) -> None:
        Exception.__init__(self, f"the run history {path} could not be read ({reason})")
        self.path = path
        self._hint = hint

    @property
    def hint(self) -> str:
        """What to try."""
        if self._hint is not None:
            return self._hint
        return ("another process may hold it (a run, a backup, an open sqlite3 shell): try again in a "
                "moment; if it stays, check the disk and the folder's permissions")


def _not_a_file(path: Path) -> HistoryUnreadable | None:
    """Why ``path`` cannot be the history though something is there (a folder, a FIFO, a
    socket, a dangling link, a folder that may not be searched), or None when it is a regular
    file or nothing is there at all (no history yet). A folder there read as "none recorded
    yet", exit 0, while every run warned it could not write the history."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not path.is_symlink():
            return None  # no history yet
        return HistoryUnreadable(path, "a symbolic link to a file that does not exist",
                                 f"remove the link (rm {path}) or point it at the history file")
    except OSError as exc:  # no permission to search the folder, a disk error
        return HistoryUnreadable(path, exc.strerror or type(exc).__name__,
                                 f"check the permissions of {path.parent} and the disk")
    if stat.S_ISREG(mode):
        return None
    what = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else \
        "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
    return HistoryUnreadable(path, f"it is {what}, not a file",
                             f"move it aside (mv {path} {path}.aside); the next run starts a new history, "
                             "and every earlier event is still in logs/pipeline-*.log")


def open_readonly(path: Path) -> sqlite3.Connection | None:
    """A read-only connection, or None when there is no history yet (no file, or a file
    without the tables yet); :class:`HistoryCorrupt` when the file is not a database and
    :class:`HistoryUnreadable` when it cannot be read now (locked: it said "no run yet") or
    is no file at all (a folder, a FIFO: they said "no run yet" too)."""
    odd = _not_a_file(path)
    if odd is not None:
        raise odd
    if not path.exists():
        return None
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        if conn is not None:
            conn.close()
        if "no such table" in str(exc):  # created, no run recorded yet
            return None
        raise HistoryUnreadable(path, str(exc)) from None
    except sqlite3.DatabaseError:  # "file is not a database", "disk image is malformed"
        if conn is not None:
            conn.close()
        raise HistoryCorrupt(path) from None
    return conn


def _rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    conn = open_readonly(path)
    if conn is None:
        return []
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def history(path: Path, limit: int = 10) -> list[dict[str, Any]]:
    """The newest ``limit`` runs, newest first (every column of ``runs``): in the order they
    were recorded, not by their start time (after the clock was set back, a failed run
    started "earlier" than the last success and `status` named the success as the last run)."""
    return _rows(path, "SELECT * FROM runs ORDER BY rowid DESC LIMIT ?", (limit,))


def as_abandoned(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """A ``running`` run whose process is gone, as the next locked session will record it:
    ``abandoned``, with the counts of the tasks that did finish (its own totals are written at
    its end, so the row said 0 of 6 while its tasks showed 3 successes)."""
    stage = counted_stage(run.get("stages"))
    rows = _rows(path, """
        SELECT sum(status IN ('success', 'skipped')) AS ok, sum(status IN ('failed', 'timeout')) AS bad,
               coalesce(sum(CASE WHEN stage = ? THEN records END), 0) AS records
        FROM tasks WHERE run_id = ?""", (stage, run["run_id"]))
    got = rows[0] if rows else {}
    ok, bad = int(got.get("ok") or 0), int(got.get("bad") or 0)
    tasks = int(run.get("tasks") or 0)
    return {**run, "status": "abandoned", "succeeded": ok, "failed": bad, "records": int(got.get("records") or 0),
            "cancelled": max(0, tasks - ok - bad)}


def last_run(path: Path) -> dict[str, Any] | None:
    """The newest run, or None."""
    rows = history(path, 1)
    return rows[0] if rows else None


def run_row(path: Path, run_id: str) -> dict[str, Any] | None:
    """One run by id, or None."""
    rows = _rows(path, "SELECT * FROM runs WHERE run_id = ?", (run_id,))
    return rows[0] if rows else None


def task_rows(path: Path, run_id: str) -> list[dict[str, Any]]:
    """Every task of a run (every column of ``tasks``), by stage order then task id."""
    return _rows(path, "SELECT * FROM tasks WHERE run_id = ? ORDER BY "
                       "CASE stage WHEN 'extract' THEN 0 WHEN 'canonize' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, task_id",
                 (run_id,))


def stage_rows(path: Path, run_id: str) -> list[dict[str, Any]]:
    """Per stage of a run: task counts, records, bytes, wall time and summed task time.

    ``duration_s`` is the stage's wall time, from its first task's start to its last
    task's end (retries included); ``task_s`` is the sum of its tasks' own durations.
    """
    return _rows(path, """
        SELECT stage,
               COUNT(*) AS tasks,
               SUM(status IN ('success', 'skipped')) AS succeeded,
               SUM(status IN ('failed', 'timeout')) AS failed,
               SUM(status NOT IN ('success', 'skipped', 'failed', 'timeout')) AS cancelled,
               SUM(records) AS records,
               SUM(bytes) AS bytes,
               ROUND((julianday(MAX(finished_at)) - julianday(MIN(started_at))) * 86400.0, 3)
                   AS duration_s,
               ROUND(SUM(COALESCE(duration_s, 0)), 3) AS task_s
        FROM tasks WHERE run_id = ?
        GROUP BY stage
        ORDER BY CASE stage WHEN 'extract' THEN 0 WHEN 'canonize' THEN 1 WHEN 'index' THEN 2 ELSE 3 END
    """, (run_id,))
