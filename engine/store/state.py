"""The run and task history in ``state/lorch.sqlite``: written from events, read by ``status``.

Why a database beside the JSON log: ``status``, the dashboard and scripts ask "the last run",
"the last N runs" and "how long did each stage take", which a day-by-day log answers only by
scanning it. The history is PHI-free by construction: every column is an event field
(identifiers from the config, run ids, counts, bytes, durations, codes), never anything a
tap or a record said.

Writing: :class:`StateRecorder` is an event subscriber. The bus calls subscribers
synchronously on the engine's hot path, so ``__call__`` only appends to a list; an asyncio
task writes the pending events in batches through aiosqlite (one transaction per batch),
and :meth:`StateRecorder.close` flushes the rest. A history that cannot be written (disk
full, a damaged file) is reported once on stderr and never fails the run.

Reading: plain ``sqlite3`` helpers (:func:`last_run`, :func:`history`, :func:`stage_rows`,
:func:`task_rows`) for ``status`` and scripts; they never create the database. They live in
:mod:`engine.store.history` (which imports neither asyncio nor the event models, so ``lorchestra
status`` starts fast) and are re-exported here.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiosqlite

from engine.errors import sqlite_full
from engine.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskQueued,
    TaskStarted,
    is_disk_full,
)
from engine.store.fsutil import FILE_MODE, ensure_dir
from engine.store.history import (  # the read side, re-exported: state.last_run(...) etc.
    HistoryCorrupt,
    history,
    last_run,
    open_readonly,
    run_records_sql,
    run_row,
    stage_rows,
    task_rows,
)

__all__ = ["SCHEMA", "SCHEMA_VERSION", "HistoryCorrupt", "StateRecorder", "connect", "history", "last_run",
           "open_readonly", "run_row", "stage_rows", "statement_for", "task_rows"]

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    trigger     TEXT NOT NULL,
    pipeline    TEXT NOT NULL,
    stages      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    tasks       INTEGER NOT NULL DEFAULT 0,
    succeeded   INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    cancelled   INTEGER NOT NULL DEFAULT 0,
    records     INTEGER NOT NULL DEFAULT 0,
    duration_s  REAL
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS tasks (
    run_id             TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_id            TEXT NOT NULL,
    stage              TEXT NOT NULL,
    extractor          TEXT NOT NULL,
    account            TEXT NOT NULL,
    attempt            INTEGER NOT NULL DEFAULT 0,
    status             TEXT NOT NULL,
    queued_at          TEXT,
    started_at         TEXT,
    finished_at        TEXT,
    records            INTEGER NOT NULL DEFAULT 0,
    parts              INTEGER NOT NULL DEFAULT 0,
    bytes              INTEGER NOT NULL DEFAULT 0,
    uncompressed_bytes INTEGER NOT NULL DEFAULT 0,
    duration_s         REAL,
    error_code         TEXT,
    exit_code          INTEGER,
    rejects            INTEGER NOT NULL DEFAULT 0,
    unmapped           INTEGER NOT NULL DEFAULT 0,
    vault_run          TEXT,
    latest_moved       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task_id)
);
CREATE INDEX IF NOT EXISTS tasks_extractor ON tasks (extractor, stage);
CREATE INDEX IF NOT EXISTS tasks_stage_started ON tasks (stage, started_at);
"""
"""``tasks_stage_started`` serves the dashboard's scan (the newest extract durations, every
rescan): without it that read sorted every task of the history (issue 18)."""

RUN_COLUMNS = ("run_id", "trigger", "pipeline", "stages", "started_at", "finished_at", "status",
               "tasks", "succeeded", "failed", "cancelled", "records", "duration_s")
TASK_COLUMNS = ("run_id", "task_id", "stage", "extractor", "account", "attempt", "status",
                "queued_at", "started_at", "finished_at", "records", "parts", "bytes",
                "uncompressed_bytes", "duration_s", "error_code", "exit_code", "rejects",
                "unmapped", "vault_run", "latest_moved")

Statement = tuple[str, tuple[Any, ...]]


def statement_for(run_id: str, event: Event) -> Statement | None:
    """The SQL that records ``event`` of run ``run_id`` (None for events not kept)."""
    if isinstance(event, RunStarted):
        return ("INSERT OR IGNORE INTO runs (run_id, trigger, pipeline, stages, started_at, status, tasks) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (event.run_id, event.trigger, event.pipeline, ",".join(event.stages), event.ts, event.tasks))
    if isinstance(event, TaskQueued):
        return ("INSERT OR IGNORE INTO tasks (run_id, task_id, stage, extractor, account, status, queued_at) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (run_id, event.task_id, event.stage, event.extractor, event.account, event.ts))
    if isinstance(event, TaskStarted):
        return ("UPDATE tasks SET status = 'running', attempt = ?, started_at = COALESCE(started_at, ?) "
                "WHERE run_id = ? AND task_id = ?", (event.attempt, event.ts, run_id, event.task_id))
    if isinstance(event, TaskFinished):
        return ("UPDATE tasks SET status = ?, attempt = MAX(attempt, ?), finished_at = ?, records = ?, "
                "parts = ?, bytes = ?, uncompressed_bytes = ?, duration_s = ?, error_code = ?, "
                "exit_code = ?, rejects = ?, unmapped = ?, vault_run = ?, latest_moved = ? "
                "WHERE run_id = ? AND task_id = ?",
                (event.status, event.attempt, event.ts, event.records, event.parts, event.bytes,
                 event.uncompressed_bytes, event.duration_s, event.error_code, event.exit_code,
                 event.rejects, event.unmapped, event.vault_run, int(event.latest_moved),
                 run_id, event.task_id))
    if isinstance(event, RunFinished):
        return ("UPDATE runs SET status = ?, finished_at = ?, tasks = ?, succeeded = ?, failed = ?, "
                "cancelled = ?, records = ?, duration_s = ? WHERE run_id = ?",
                (event.status, event.ts, event.tasks, event.succeeded, event.failed, event.cancelled,
                 event.records, event.duration_s, event.run_id))
    return None


ABANDON_RUNS_SQL = """
UPDATE runs SET status = 'abandoned',
    succeeded = (SELECT count(*) FROM tasks t WHERE t.run_id = runs.run_id
                 AND t.status IN ('success', 'skipped')),
    failed = (SELECT count(*) FROM tasks t WHERE t.run_id = runs.run_id
              AND t.status IN ('failed', 'timeout')),
    records = """ + run_records_sql("runs") + """,
    cancelled = max(0, tasks - (SELECT count(*) FROM tasks t WHERE t.run_id = runs.run_id
                                AND t.status IN ('success', 'skipped', 'failed', 'timeout')))
WHERE status = 'running'
"""
"""A run still ``running`` when a locked session starts died with its process: it becomes
``abandoned`` with its counts taken from the tasks that did finish (what a run's own summary
would have said; the tasks that never ended count as cancelled), so the history does not show
0 of 6 for a run whose tasks mostly succeeded."""

RECOUNT_RUNS_SQL = ("UPDATE runs SET records = " + run_records_sql("runs")
                    + " WHERE status != 'running' AND records = 0 AND instr(',' || stages || ',', ',extract,') = 0")
"""Runs without an extract recorded before their summary counted their own stage's records
(a canonize-only run said 0 records): counted again from their tasks, once, under the lock."""


class StateRecorder:
    """Records runs and tasks from events into the history database, in batches."""

    def __init__(self, path: Path, *, batch_delay_s: float = 0.2) -> None:
        self.path = path
        self.batch_delay_s = batch_delay_s
        self.failed = False
        self.disk_full = False
        """Set when the history could not be written for lack of space (reported once, at the end)."""
        self._db: aiosqlite.Connection | None = None
        self._pending: list[Statement] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._run_of_task: dict[str, str] = {}
        self.abandoned: list[str] = []
        """Runs this start found still ``running`` and marked ``abandoned``: their process was
        killed (SIGKILL, a power cut, the OOM killer) before it could record its end or alarm."""
        self._current_run = ""

    async def start(self, *, mark_abandoned: bool = False) -> StateRecorder:
        """Open (or create) the database and start the batch writer.

        ``mark_abandoned`` turns runs still marked ``running`` into ``abandoned``: pass it
        only while holding the workspace lock, when no other writer can be mid-run.
        """
        try:
            self._db = await connect(self.path)
            if mark_abandoned:
                async with self._db.execute("SELECT run_id FROM runs WHERE status = 'running' "
                                            "ORDER BY rowid") as cur:
                    self.abandoned = [str(row[0]) for row in await cur.fetchall()]
                await self._db.execute(ABANDON_RUNS_SQL)
                await self._db.execute(RECOUNT_RUNS_SQL)
                await self._db.execute("UPDATE tasks SET status = 'abandoned' "
                                       "WHERE status IN ('queued', 'running')")
                await self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            await self._give_up(exc)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        return self

    def __call__(self, event: Event) -> None:
        """The bus subscriber: map the event to its SQL and queue it (no I/O here)."""
        if self.failed:
            return
        if isinstance(event, RunStarted):
            self._current_run = event.run_id
        elif isinstance(event, TaskQueued):
            self._run_of_task[event.task_id] = self._current_run
        task_id = getattr(event, "task_id", None)
        run_id = self._run_of_task.get(task_id, self._current_run) if task_id else self._current_run
        stmt = statement_for(run_id, event)
        if stmt is not None:
            self._pending.append(stmt)
            self._wake.set()

    async def flush(self) -> None:
        """Write every pending event now."""
        batch, self._pending = self._pending, []
        if not batch or self._db is None or self.failed:
            return
        try:
            for sql, group in _grouped(batch):
                await self._db.executemany(sql, group)
            await self._db.commit()
        except (sqlite3.OperationalError, OSError) as exc:  # a full disk, a lock: maybe passing
            if self._closing.is_set():
                await self._give_up(exc)
                return
            try:
                await self._db.rollback()
            except (sqlite3.Error, OSError):
                await self._give_up(exc)
                return
            self._pending = batch + self._pending  # kept in order, tried again with the next batch
        except sqlite3.Error as exc:
            await self._give_up(exc)

    async def close(self) -> None:
        """Flush everything still pending and close the database."""
        self._closing.set()
        self._wake.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        await self.flush()
        await self._close_db()

    async def _close_db(self) -> None:
        """Close the connection if open; a failing close loses nothing more (all is flushed)."""
        if self._db is not None:
            try:
                await self._db.close()
            except (sqlite3.Error, OSError):
                pass
            self._db = None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing.is_set():  # gather a batch; a close cuts the wait short
                try:
                    await asyncio.wait_for(self._closing.wait(), self.batch_delay_s)
                except TimeoutError:
                    pass
            self._wake.clear()
            await self.flush()
            if self._closing.is_set() and not self._pending:
                return

    async def _give_up(self, exc: BaseException) -> None:
        if is_disk_full(exc) or sqlite_full(exc):
            self.disk_full = True  # the face reports DISK_FULL once, at the end
        elif not self.failed:
            if type(exc) is sqlite3.DatabaseError:  # not OperationalError: the file itself is bad
                bad = HistoryCorrupt(self.path)
                print(f"lorchestra: warning: cannot write the run history {self.path}: it is damaged "
                      f"(not a readable SQLite database); the run goes on without it. Fix: {bad.hint}",
                      file=sys.stderr)
            else:
                print(f"lorchestra: warning: cannot write the run history {self.path} "
                      f"({type(exc).__name__}); the run goes on without it", file=sys.stderr)
        self.failed = True
        self._pending.clear()
        await self._close_db()


def _grouped(batch: list[Statement]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Consecutive statements with the same SQL, grouped for executemany (order kept)."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for sql, params in batch:
        if out and out[-1][0] == sql:
            out[-1][1].append(params)
        else:
            out.append((sql, [params]))
    return out


async def connect(path: Path) -> aiosqlite.Connection:
    """Open the history database for writing: 0600, WAL, schema in place."""
    ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    db = await aiosqlite.connect(path)
    try:
        await db.execute("PRAGMA busy_timeout = 5000")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.executescript(SCHEMA)
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.commit()
    except BaseException:
        await db.close()
        raise
    return db
