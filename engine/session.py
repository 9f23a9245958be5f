"""One pipeline run from start to end, as every headless face performs it.

Prepare the workspace (umask 077, 0700 folders), refuse loose permissions (exit 4) unless
told not to, take the workspace lock (exit 3 when busy), attach the JSON log and the run
history (``state/lorch.sqlite``), run the plan, turn SIGINT/SIGTERM into a clean cancel of
every task, and after a failed run call the ``on_failure`` hook. The dashboard uses the same
pieces (:func:`open_session`, :meth:`Session.close`, :func:`notify_failure`) inside its own
event loop, so every run is logged and recorded whatever started it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from engine.bus import EventBus, Subscriber
from engine.configload import LoadedConfig
from engine.events import ErrorCode, Trigger
from engine.fsutil import secure_umask
from engine.hooks import failure_summary, run_on_failure
from engine.logsink import JsonLogSink
from engine.plan import Plan
from engine.runner import Runner, RunResult
from engine.state import StateRecorder
from engine.workspace import Workspace, WorkspaceLock, check_permissions


@dataclass
class SessionResult:
    """A finished session: the run's result and whether a signal interrupted it."""

    result: RunResult
    interrupted: bool
    log_path: str
    hook_warning: str | None = None
    disk_full: bool = False
    """A task, the JSON log or the run history ran out of space (the face says DISK_FULL once)."""


def open_workspace(loaded: LoadedConfig, *, skip_permissions: bool = False) -> Workspace:
    """Create the workspace securely and check its permissions (exit 4 on loose ones)."""
    secure_umask()
    ws = Workspace(loaded.workspace)
    if not skip_permissions:
        check_permissions(ws.root)
    return ws.prepare()


@dataclass
class Session:
    """The open pieces of one run: workspace, lock, event bus, JSON log and run history."""

    loaded: LoadedConfig
    ws: Workspace
    lock: WorkspaceLock
    bus: EventBus
    sink: JsonLogSink
    recorder: StateRecorder

    async def close(self) -> None:
        """Flush the history, close the log and release the lock (in that order)."""
        try:
            await self.recorder.close()
        finally:
            self.sink.close()
            self.lock.release()


async def open_session(loaded: LoadedConfig, *, skip_permissions: bool = False, wait_s: float = 0.0,
                       command: str = "lorchestra run") -> Session:
    """Check and lock the workspace, attach the JSON log and the run history to a new bus."""
    ws = open_workspace(loaded, skip_permissions=skip_permissions)
    lock = WorkspaceLock(ws, command=command).acquire(wait_s)
    try:
        sink = JsonLogSink(ws.logs)
        recorder = await StateRecorder(ws.state_db).start(mark_abandoned=True)
    except BaseException:
        lock.release()
        raise
    bus = EventBus()
    bus.subscribe(sink)
    bus.subscribe(recorder)
    return Session(loaded, ws, lock, bus, sink, recorder)


async def notify_failure(session: Session, result: RunResult, trigger: Trigger) -> str | None:
    """Run the on_failure hook if the run failed; a warning for the face if the hook did not work."""
    if not session.loaded.config.on_failure or result.summary is None or result.summary.status != "failed":
        return None
    summary = failure_summary(session.loaded, session.ws, result, str(session.sink.path), trigger)
    return await run_on_failure(session.loaded, session.ws, summary)


async def run_session(loaded: LoadedConfig, plan: Plan, *, trigger: Trigger,
                      subscribers: Iterable[Subscriber] = (), skip_permissions: bool = False,
                      wait_s: float = 0.0, command: str = "lorchestra run",
                      force: bool = False) -> SessionResult:
    """Run ``plan`` under the workspace lock with the JSON log, the history and the given subscribers."""
    session = await open_session(loaded, skip_permissions=skip_permissions, wait_s=wait_s, command=command)
    for sub in subscribers:
        session.bus.subscribe(sub)
    runner = Runner(loaded.config, session.ws, session.bus, trigger, force=force)
    interrupted = False
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        loop.create_task(runner.cancel_all())

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        result = await runner.run(plan)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await session.close()
    warning = None if interrupted else await notify_failure(session, result, trigger)
    full = session.sink.disk_full or session.recorder.disk_full or (
        result.summary is not None and result.summary.error_code == ErrorCode.DISK_FULL.value)
    return SessionResult(result, interrupted, str(session.sink.path), warning, disk_full=full)
