"""Running one task attempt as a worker subprocess and relaying its events.

The worker gets its spec on stdin and answers with JSON-line events on stdout; each line
is validated before it reaches the bus (an invalid one becomes a BAD_EVENT warning, never
echoed). The worker starts in its own session so that a cancel can signal it and, after
the grace period, kill its whole process group; the worker's stderr (which could hold a
traceback with data in it) goes to a file inside the workspace.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from engine.bus import EventBus
from engine.events import ErrorCode, TaskFinished, TaskStarted, TaskWarning, parse_event
from engine.fsutil import ensure_dir, open_private
from engine.stages.spec import TaskSpec
from engine.workspace import Workspace, held_lock_fds

EVENT_LINE_LIMIT = 16 * 1024 * 1024
BACKSTOP_S = 30.0


def _term_with_parent() -> None:
    """In the worker: get SIGTERM (a clean cancel) if the engine dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class TaskProcess:
    """One attempt of one task in a worker subprocess."""

    def __init__(self, spec: TaskSpec, bus: EventBus, grace_s: float) -> None:
        self.spec = spec
        self.bus = bus
        self.grace_s = grace_s
        self.proc: asyncio.subprocess.Process | None = None
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
        ensure_dir(diag.parent)
        with open_private(diag, "ab") as err:
            err.write(f"--- attempt {self.spec.attempt} of {self.spec.task_id}\n".encode())
            err.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "engine.worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                start_new_session=True, preexec_fn=_term_with_parent, limit=EVENT_LINE_LIMIT,
                pass_fds=held_lock_fds(),  # the worker holds the workspace lock until it exits
            )
        ex = self.spec.extractor
        self.bus.emit(TaskStarted(task_id=self.spec.task_id, stage=self.spec.stage, extractor=ex.name,
                                  account=ex.account, attempt=self.spec.attempt, pid=self.proc.pid))
        assert self.proc.stdin is not None
        self.proc.stdin.write(self.spec.model_dump_json().encode())
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        deadline = ex.timeout_s + self.grace_s + BACKSTOP_S if self.spec.stage == "extract" else None
        final = await self._relay(deadline)
        rc = await self.proc.wait()
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
        assert self.proc is not None and self.proc.stdout is not None
        final: TaskFinished | None = None
        bad = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s if deadline_s is not None else None
        while True:
            try:
                wait = None if end is None else max(0.1, end - loop.time())
                line = await asyncio.wait_for(self.proc.stdout.readline(), wait)
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
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(self.proc.wait(), self.grace_s + 5)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        """SIGKILL the worker's whole process group and reap it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await self.proc.wait()
