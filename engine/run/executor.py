"""How a task attempt's worker is started: the runner seam of the engine.

:class:`engine.run.task.TaskProcess` drives one attempt (events, deadline, cancel) and asks an
:class:`Executor` only to start the worker and hand back a :class:`WorkerHandle`: a stream
of event lines, a way to ask it to stop, a way to kill it, and its exit code. The contract
with the worker is the same everywhere: the :class:`~engine.stages.spec.TaskSpec` as JSON on
its stdin, PHI-free JSON-line events on its stdout, exit code 0 or 1, and its stderr (which
may hold PHI) kept inside the workspace.

:class:`LocalSubprocessExecutor` (the default) runs ``python -m engine.run.worker`` as a child
process in its own session, which gets SIGTERM if the engine dies, holds the workspace
lock's descriptors, and appends its stderr to the diagnostics file. How a batch-service
executor maps onto the same handle is in ``docs/cloud-migration.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path
from typing import Protocol

from engine.events import now_iso
from engine.stages.spec import TaskSpec
from engine.store.fsutil import atomic_write_bytes, ensure_dir, open_private
from engine.store.lock import held_lock_fds

EVENT_LINE_LIMIT = 16 * 1024 * 1024
"""The longest event line a worker may write (a longer one is skipped as a bad event)."""


class WorkerHandle(Protocol):
    """One running worker, as the engine sees it."""

    @property
    def pid(self) -> int:
        """An id of the worker for events (a process id locally)."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit code once the worker has ended, else None."""
        ...

    async def readline(self) -> bytes:
        """The next event line (with its newline); ``b""`` when the stream ends.

        Raises ValueError for a line over :data:`EVENT_LINE_LIMIT` (the line is skipped).
        """
        ...

    def terminate(self) -> bool:
        """Ask the worker to stop cleanly (SIGTERM); False when it is already gone."""
        ...

    async def kill(self) -> None:
        """Stop the worker and everything it started at once, and reap it."""
        ...

    async def wait(self) -> int:
        """Wait for the worker to end; return its exit code."""
        ...


class Executor(Protocol):
    """Starts task workers."""

    async def start(self, spec: TaskSpec, diagnostics: Path) -> WorkerHandle:
        """Start the worker of ``spec`` (its spec already delivered); its stderr goes to
        ``diagnostics``, a file inside the workspace. Raises OSError when it cannot start."""
        ...


DIAGNOSTICS_MAX_BYTES = 1 << 20
"""A task's diagnostics file is appended to by every attempt of every run; past this size
its older half goes (the file grew without bound under a nightly cron)."""


def keep_small(path: Path, limit: int = DIAGNOSTICS_MAX_BYTES) -> None:
    """Cut a diagnostics file past ``limit`` down to its newer half, at a line start."""
    try:
        if path.stat().st_size <= limit:
            return
        with open(path, "rb") as fh:
            fh.seek(-(limit // 2), 2)
            tail = fh.read()
    except OSError:
        return
    cut = tail.find(b"\n--- attempt ")
    tail = tail[cut + 1:] if cut >= 0 else tail[tail.find(b"\n") + 1:]
    with contextlib.suppress(OSError):
        atomic_write_bytes(path, b"--- (older attempts removed: the file passed 1 MiB)\n" + tail)


def _term_with_parent() -> None:
    """In the worker: get SIGTERM (a clean cancel) if the engine dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


class LocalProcessHandle:
    """A worker running as a local child process (its own session and process group)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, once reaped."""
        return self.proc.returncode

    async def readline(self) -> bytes:
        """One line of the worker's stdout."""
        assert self.proc.stdout is not None
        return await self.proc.stdout.readline()

    def terminate(self) -> bool:
        """SIGTERM to the worker (it stops its own children)."""
        if self.proc.returncode is not None:
            return False
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    async def kill(self) -> None:
        """SIGKILL to the worker's whole process group, then reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await self.proc.wait()

    async def wait(self) -> int:
        """The worker's exit code."""
        return await self.proc.wait()


class LocalSubprocessExecutor:
    """Runs each worker as ``python -m engine.run.worker`` on this machine."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable

    async def start(self, spec: TaskSpec, diagnostics: Path) -> LocalProcessHandle:
        """Spawn the worker, write its spec on stdin and close it."""
        ensure_dir(diagnostics.parent)
        keep_small(diagnostics)
        with open_private(diagnostics, "ab") as err:
            err.write(f"--- attempt {spec.attempt} of {spec.task_id} at {now_iso()}\n".encode())
            err.flush()
            proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "engine.run.worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                start_new_session=True, preexec_fn=_term_with_parent, limit=EVENT_LINE_LIMIT,
                pass_fds=held_lock_fds(spec.workspace),  # the worker holds the workspace lock until it exits
            )
        assert proc.stdin is not None
        proc.stdin.write(spec.model_dump_json().encode())
        try:
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker died at once: its exit code tells
        proc.stdin.close()
        return LocalProcessHandle(proc)
