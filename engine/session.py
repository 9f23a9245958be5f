"""One pipeline run from start to end, as every headless face performs it.

Prepare the workspace (umask 077, 0700 folders), refuse loose permissions (exit 4) unless
told not to, take the workspace lock (exit 3 when busy), attach the JSON log, run the plan,
and turn SIGINT/SIGTERM into a clean cancel of every task. The dashboard uses the same
pieces inside its own event loop.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from engine.bus import EventBus, Subscriber
from engine.configload import LoadedConfig
from engine.events import Trigger
from engine.fsutil import secure_umask
from engine.logsink import JsonLogSink
from engine.plan import Plan
from engine.runner import Runner, RunResult
from engine.workspace import Workspace, WorkspaceLock, check_permissions


@dataclass
class SessionResult:
    """A finished session: the run's result and whether a signal interrupted it."""

    result: RunResult
    interrupted: bool
    log_path: str


def open_workspace(loaded: LoadedConfig, *, skip_permissions: bool = False) -> Workspace:
    """Create the workspace securely and check its permissions (exit 4 on loose ones)."""
    secure_umask()
    ws = Workspace(loaded.workspace)
    if not skip_permissions:
        check_permissions(ws.root)
    return ws.prepare()


async def run_session(loaded: LoadedConfig, plan: Plan, *, trigger: Trigger,
                      subscribers: Iterable[Subscriber] = (), skip_permissions: bool = False,
                      wait_s: float = 0.0, command: str = "lorchestra run",
                      force: bool = False) -> SessionResult:
    """Run ``plan`` under the workspace lock with the JSON log and the given subscribers."""
    ws = open_workspace(loaded, skip_permissions=skip_permissions)
    lock = WorkspaceLock(ws, command=command).acquire(wait_s)
    sink = JsonLogSink(ws.logs)
    bus = EventBus()
    bus.subscribe(sink)
    for sub in subscribers:
        bus.subscribe(sub)
    runner = Runner(loaded.config, ws, bus, trigger, force=force)
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
        sink.close()
        lock.release()
    return SessionResult(result, interrupted, str(sink.path))
