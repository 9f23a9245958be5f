"""Running one task attempt as a worker and relaying its events.

An :class:`~engine.executor.Executor` starts the worker (by default
:class:`~engine.executor.LocalSubprocessExecutor`: a local subprocess in its own session).
The worker gets its spec on stdin and answers with JSON-line events on stdout; each line
is validated before it reaches the bus (an invalid one becomes a BAD_EVENT warning, never
echoed). A cancel signals the worker and, after the grace period, kills its whole process
group; the worker's stderr (which could hold a traceback with data in it) goes to a file
inside the workspace.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pydantic import ValidationError

from engine.bus import EventBus
from engine.events import ErrorCode, TaskFinished, TaskStarted, TaskWarning, parse_event
from engine.executor import EVENT_LINE_LIMIT, Executor, LocalSubprocessExecutor, WorkerHandle
from engine.stages.spec import TaskSpec
from engine.workspace import Workspace

__all__ = ["BACKSTOP_S", "EVENT_LINE_LIMIT", "TaskProcess"]

BACKSTOP_S = 30.0


class TaskProcess:
    """One attempt of one task in a worker started by an :class:`~engine.executor.Executor`."""

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
        self.worker = await self.executor.start(self.spec, diag)
        ex = self.spec.extractor
        self.bus.emit(TaskStarted(task_id=self.spec.task_id, stage=self.spec.stage, extractor=ex.name,
                                  account=ex.account, attempt=self.spec.attempt, pid=self.worker.pid))
        deadline = ex.timeout_s + self.grace_s + BACKSTOP_S if self.spec.stage == "extract" else None
        final = await self._relay(deadline)
        rc = await self.worker.wait()
        if final is None:
            code, status = ErrorCode.WORKER_CRASHED, "failed"
            if self.cancelled:
                code, status = ErrorCode.CANCELLED, "cancelled"
            elif self.timed_out:
                code, status = ErrorCode.TIMEOUT, "timeout"
            final = TaskFinished(task_id=self.spec.task_id, stage=self.spec.stage, extractor=ex.name,
                                 account=ex.account, attempt=self.spec.attempt, status=status,  # type: ignore[arg-type]
                                 error_code=code.value, exit_code=rc,
                                 duration_s=round(time.monotonic() - started, 3), detail_path=str(diag))
            self.bus.emit(final)
        return final

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
                await self.kill()
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

    async def kill(self) -> None:
        """Kill the worker (its whole process group) and reap it."""
        if self.worker is not None:
            await self.worker.kill()
