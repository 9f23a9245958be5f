"""Running one task attempt as a worker and relaying its events.

An :class:`~engine.run.executor.Executor` starts the worker (by default
:class:`~engine.run.executor.LocalSubprocessExecutor`: a local subprocess in its own session).
The worker gets its spec on stdin and answers with JSON-line events on stdout; each line
is validated before it reaches the bus (an invalid one becomes a BAD_EVENT warning, never
echoed). A cancel signals the worker and, after the grace period, kills its whole process
group; the worker's stderr (which could hold a traceback with data in it) goes to a file
inside the workspace. Every attempt has a wall-clock deadline (:meth:`TaskProcess.deadline_s`):
past it the worker is stopped like a cancel and the attempt ends ``timeout``, so no stage
can hold the workspace lock for ever; a worker that died because an allocation failed under
its memory cap is reported ``WORKER_OUT_OF_MEMORY``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pydantic import ValidationError

from engine.events import ErrorCode, TaskFinished, TaskStarted, TaskWarning, parse_event
from engine.limits import ran_out_of_memory
from engine.run.bus import EventBus
from engine.run.executor import EVENT_LINE_LIMIT, Executor, LocalSubprocessExecutor, WorkerHandle
from engine.stages.spec import TaskSpec
from engine.store.workspace import Workspace

__all__ = ["BACKSTOP_S", "EVENT_LINE_LIMIT", "TaskProcess"]

BACKSTOP_S = 30.0


class TaskProcess:
    """One attempt of one task in a worker started by an :class:`~engine.run.executor.Executor`."""

    def __init__(self, spec: TaskSpec, bus: EventBus, grace_s: float,
                 executor: Executor | None = None) -> None:
        self.spec = spec
        self.bus = bus
        self.grace_s = grace_s
        self.executor: Executor = executor or LocalSubprocessExecutor()
        self.worker: WorkerHandle | None = None
        self.cancelled = False
        self.timed_out = False

    @property
    def diagnostics_path(self) -> Path:
        """Where the worker's own stderr goes (inside the workspace; may hold PHI)."""
        ws = Workspace(self.spec.workspace)
        return ws.diagnostics / self.spec.stage / f"{self.spec.extractor.name}.stderr.log"

    async def run(self) -> TaskFinished:
        """Start the worker, relay its events, and return its final event."""
        started = time.monotonic()
        diag = self.diagnostics_path
        diag_offset = _size(diag)
        self.worker = await self.executor.start(self.spec, diag)
        ex = self.spec.extractor
        self.bus.emit(TaskStarted(task_id=self.spec.task_id, stage=self.spec.stage, extractor=ex.name,
                                  account=ex.account, attempt=self.spec.attempt, pid=self.worker.pid))
        final = await self._relay(self.deadline_s())
        rc = await self.worker.wait()
        if final is None:
            code, status = ErrorCode.WORKER_CRASHED, "failed"
            if self.cancelled:
                code, status = ErrorCode.CANCELLED, "cancelled"
            elif self.timed_out:
                code, status = ErrorCode.TIMEOUT, "timeout"
            elif ran_out_of_memory(diag, diag_offset):
                code = ErrorCode.WORKER_OUT_OF_MEMORY
            final = TaskFinished(task_id=self.spec.task_id, stage=self.spec.stage, extractor=ex.name,
                                 account=ex.account, attempt=self.spec.attempt, status=status,  # type: ignore[arg-type]
                                 error_code=code.value, exit_code=rc,
                                 duration_s=round(time.monotonic() - started, 3), detail_path=str(diag))
            self.bus.emit(final)
        return final

    def not_started(self, code: ErrorCode) -> TaskFinished:
        """The final event of an attempt whose worker could not be started (emitted)."""
        ex = self.spec.extractor
        final = TaskFinished(task_id=self.spec.task_id, stage=self.spec.stage, extractor=ex.name,
                             account=ex.account, attempt=self.spec.attempt, status="failed",
                             error_code=code.value)
        self.bus.emit(final)
        return final

    def deadline_s(self) -> float | None:
        """Seconds this attempt may run: an extract's ``timeout_s`` (its worker enforces it
        on the tap; this is the backstop), else the stage's ``timeout_s`` from the spec."""
        if self.spec.stage == "extract":
            return self.spec.extractor.timeout_s + self.grace_s + BACKSTOP_S
        return self.spec.limits.timeout_s

    async def _relay(self, deadline_s: float | None) -> TaskFinished | None:
        assert self.worker is not None
        final: TaskFinished | None = None
        bad = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s if deadline_s is not None else None
        while True:
            try:
                wait = None if end is None else max(0.1, end - loop.time())
                line = await asyncio.wait_for(self.worker.readline(), wait)
            except TimeoutError:
                self.timed_out = True
                await self._stop()
                break
            except ValueError:  # an over-long line: not an event
                bad += 1
                continue
            if not line:
                break
            try:
                event = parse_event(line)
            except ValidationError:
                bad += 1
                self.bus.emit(TaskWarning(task_id=self.spec.task_id, stage=self.spec.stage,
                                          extractor=self.spec.extractor.name,
                                          code=ErrorCode.BAD_EVENT.value, count=bad))
                continue
            if isinstance(event, TaskFinished):
                final = event
            self.bus.emit(event)
        return final

    async def cancel(self) -> None:
        """Ask the worker to stop (SIGTERM); kill its process group after the grace period."""
        self.cancelled = True
        if self.worker is None or not self.worker.terminate():
            return
        try:
            await asyncio.wait_for(self.worker.wait(), self.grace_s + 5)
        except TimeoutError:
            await self.kill()

    async def _stop(self) -> None:
        """Stop the worker on its deadline: SIGTERM (an index rolls back, an extract finishes
        its run as cancelled), then SIGKILL to its group after the grace period."""
        assert self.worker is not None
        if self.spec.stage != "extract" and self.worker.terminate():
            try:
                await asyncio.wait_for(self.worker.wait(), self.grace_s + 5)
                return
            except TimeoutError:
                pass
        await self.kill()

    async def kill(self) -> None:
        """Kill the worker (its whole process group) and reap it."""
        if self.worker is not None:
            await self.worker.kill()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
