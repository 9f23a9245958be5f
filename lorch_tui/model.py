"""The dashboard's picture of the current run, folded from events (plain Python, no widgets).

Events arrive in batches; :meth:`RunModel.apply` folds a batch into per-task rows and run
totals, and reports whether anything visible changed so the widgets refresh once per
flush at most. The same model folds events read back from the log of a cron run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.events import (
    ErrorCode,
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskProgress,
    TaskQueued,
    TaskRetry,
    TaskStarted,
    TaskWarning,
)
from engine.store.history import counted_stage

ACTIVE = ("queued", "running", "retrying")


def started_at(ts: str) -> float:
    """The ``time.monotonic()`` reading of an event's wall-clock ``ts``: a dashboard that reads
    another process's run (a cron run, a second dashboard) from the log counts the elapsed time
    from when the task started, not from when it read the line (it showed 9.6 s and twice the
    rate for a task 18.4 s old). Never in the future; a ``ts`` that does not parse is now."""
    try:
        when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return time.monotonic()
    if when.tzinfo is None:  # a hand-written line without a zone: the log's times are UTC
        when = when.replace(tzinfo=UTC)
    return time.monotonic() - max(0.0, (datetime.now(UTC) - when).total_seconds())


@dataclass
class TaskRow:
    """One task of the current run as the progress pane shows it."""

    task_id: str
    stage: str
    extractor: str
    account: str
    state: str = "queued"
    records: int = 0
    total: int | None = None
    attempt: int = 0
    started: float | None = None
    ended: float | None = None
    error_code: str | None = None
    warnings: dict[str, int] = field(default_factory=dict)
    """Each warning code the task raised, with its count (the last one said)."""
    phase: str | None = None
    """The step a task of several steps is in (the project task's), while it runs."""
    pid: int | None = None
    last: TaskFinished | None = None
    """The task's final event (exit code, counts, paths), once it ended."""

    @property
    def elapsed(self) -> float:
        """Seconds since the task started (frozen once it ended)."""
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Records per second so far."""
        e = self.elapsed
        return self.records / e if e > 0.05 else 0.0


@dataclass
class RunModel:
    """Tasks and totals of the run being watched."""

    run_id: str | None = None
    trigger: str | None = None
    status: str = "idle"
    tasks: dict[str, TaskRow] = field(default_factory=dict)
    records: int = 0
    failed: int = 0
    last_errors: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    counted: str = "extract"
    """The stage whose tasks' records :attr:`records` sums: ``extract`` for a run that
    extracts, else its last stage's (a `c`, `i` or `p` run said "0 records extracted" while
    the log and `status` counted what it canonized, indexed or linked)."""
    _counted: dict[str, int] = field(default_factory=dict)
    """Records of each counted task's last attempt, as counted in :attr:`records`."""
    _failed: set[str] = field(default_factory=set)
    """Tasks whose last attempt failed, as counted in :attr:`failed`."""
    _foreign: bool = False
    """Whether the batch being applied was read back from the log (:meth:`apply`)."""

    def apply(self, events: list[Event], foreign: bool = False) -> bool:
        """Fold a batch of events in; True when something changed. ``foreign``: read back from
        the log (a cron run, another dashboard's), so a start is timed from the event's ``ts``
        (:func:`started_at`), not from when this dashboard read it."""
        self._foreign = foreign
        for ev in events:
            self._apply_one(ev)
        return bool(events)

    def _start(self, ts: str) -> float:
        return started_at(ts) if self._foreign else time.monotonic()

    def _apply_one(self, ev: Event) -> None:
        if isinstance(ev, RunStarted):
            self.run_id, self.trigger, self.status = ev.run_id, ev.trigger, "running"
            self.tasks.clear()
            self.records = self.failed = 0
            self.counted = counted_stage(ev.stages)
            self._counted.clear()
            self._failed.clear()
            self.started, self.ended = self._start(ev.ts), None
        elif isinstance(ev, TaskQueued):
            self.tasks[ev.task_id] = TaskRow(ev.task_id, ev.stage, ev.extractor, ev.account)
        elif isinstance(ev, TaskStarted):
            row = self._row(ev.task_id, ev.stage, ev.extractor, ev.account)
            row.state, row.attempt, row.records, row.phase = "running", ev.attempt, 0, None
            row.started, row.ended, row.error_code = self._start(ev.ts), None, None
            row.pid, row.last = ev.pid, None
        elif isinstance(ev, TaskProgress):
            row = self._row(ev.task_id, ev.stage, ev.extractor, "")
            row.records, row.total, row.phase = ev.records, ev.total, ev.phase
        elif isinstance(ev, TaskWarning):
            self._row(ev.task_id, ev.stage, ev.extractor, "").warnings[ev.code] = ev.count
        elif isinstance(ev, TaskRetry):
            row = self._row(ev.task_id, ev.stage, ev.extractor, "")
            row.state, row.error_code = "retrying", ev.error_code
        elif isinstance(ev, TaskFinished):
            self._finish(ev)
        elif isinstance(ev, RunFinished):
            self.status, self.ended = ev.status, time.monotonic()

    def extracted(self) -> int:
        """Records of the counted stage so far (:attr:`counted`: extracted, for a run that
        extracts): the finished tasks' (:attr:`records`) with a running task's live count in
        place of its earlier attempt's (the totals line said 0 for the whole run while the
        rows counted)."""
        running = [(t, r) for t, r in self.tasks.items() if r.stage == self.counted and r.state == "running"]
        return self.records + sum(r.records - self._counted.get(t, 0) for t, r in running)

    def ran_out_of_space(self, ev: RunFinished) -> bool:
        """Whether the run that ``ev`` ends stopped on a full disk (the run's code or a task's)."""
        full = ErrorCode.DISK_FULL.value
        return ev.error_code == full or (
            ev.run_id == self.run_id and any(r.error_code == full for r in self.tasks.values()))

    def _finish(self, ev: TaskFinished) -> None:
        row = self._row(ev.task_id, ev.stage, ev.extractor, ev.account)
        row.state, row.records, row.error_code = ev.status, ev.records, ev.error_code
        row.attempt, row.last = max(row.attempt, ev.attempt), ev
        row.ended = time.monotonic()
        if row.started is None or ev.duration_s:
            # the worker's own wall time is the truth: a batch replayed from a log (a cron
            # run, or today's runs at start-up) has TaskStarted and TaskFinished together
            row.started = row.ended - ev.duration_s
        if ev.stage == self.counted:  # one count a task: a retried attempt's records were counted again
            self.records += ev.records - self._counted.get(ev.task_id, 0)
            self._counted[ev.task_id] = ev.records
        failed = ev.status in ("failed", "timeout")
        if failed != (ev.task_id in self._failed):
            self.failed += 1 if failed else -1
            (self._failed.add if failed else self._failed.discard)(ev.task_id)
        if ev.error_code and ev.status != "cancelled":
            self.last_errors[ev.extractor] = ev.error_code
        elif ev.status == "success":
            self.last_errors.pop(ev.extractor, None)

    def abandon(self) -> None:
        """The run being watched ended without a word (its process was killed: the lock is
        free and it never logged its end): its unfinished tasks are abandoned, as the next
        run records them in the history."""
        self.status = "abandoned"
        self.ended = time.monotonic()
        for row in self.tasks.values():
            if row.state in ACTIVE:
                row.state, row.ended = "abandoned", self.ended

    def _row(self, task_id: str, stage: str, extractor: str, account: str) -> TaskRow:
        row = self.tasks.get(task_id)
        if row is None:
            row = self.tasks[task_id] = TaskRow(task_id, stage, extractor, account)
        return row

    def ordered(self) -> list[TaskRow]:
        """Running first, then finished, then queued (queued tasks below)."""
        rank = {"running": 0, "retrying": 0}
        return sorted(self.tasks.values(),
                      key=lambda r: (rank.get(r.state, 2 if r.state == "queued" else 1), r.task_id))

    def counts(self) -> dict[str, int]:
        """Tasks per state."""
        out: dict[str, int] = {}
        for row in self.tasks.values():
            out[row.state] = out.get(row.state, 0) + 1
        return out

    def task_of(self, extractor: str) -> TaskRow | None:
        """The active task of an extractor, if any."""
        for row in self.tasks.values():
            if row.extractor == extractor and row.state in ("running", "retrying"):
                return row
        return None
