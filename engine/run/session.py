"""One pipeline run from start to end, as every headless face performs it.

Prepare the workspace (umask 077, 0700 folders), refuse loose permissions (exit 4) unless
told not to, take the workspace lock (exit 3 when busy), attach the JSON log and the run
history (``state/lorch.sqlite``), run the plan, turn SIGINT/SIGTERM/SIGHUP into a clean cancel of
every task, and after a run that ended badly (a failed task, an engine error, a full disk, an
interrupt) call the ``on_failure`` hook: no step of the ending may raise past the next. The
dashboard uses the same pieces (:func:`open_session`, :meth:`Session.close`, :func:`notify_failure`) inside its own
event loop, so every run is logged and recorded whatever started it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.config.load import LoadedConfig
from engine.errors import PermissionProblem, WorkspaceBusy
from engine.events import ErrorCode, Trigger, now_iso
from engine.run.bus import EventBus, Subscriber
from engine.run.hooks import failure_summary, refusal_summary, run_on_failure
from engine.run.plan import Plan
from engine.run.runner import Runner, RunResult
from engine.store.fsutil import ensure_dir, open_private, secure_umask
from engine.store.lock import WorkspaceLock
from engine.store.logsink import JsonLogSink
from engine.store.state import StateRecorder
from engine.store.workspace import Workspace, check_permissions


@dataclass
class SessionResult:
    """A finished session: the run's result and whether a signal interrupted it."""

    result: RunResult
    interrupted: bool
    log_path: str
    hook_warning: str | None = None
    internal_error: str | None = None
    """The class name of an unexpected engine error that ended the run, if one did."""
    internal_error_log: str | None = None
    """The workspace file holding that error's traceback."""
    disk_full: bool = False
    """A task, the JSON log or the run history ran out of space (the face says DISK_FULL once)."""
    log_next: str | None = None
    """The next day's log file, when the run went on past midnight UTC (``log_path`` is the
    file of its start, the one ``status`` names)."""


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
        """Flush the history, close the log and release the lock (in that order).

        Never raises: a full disk or a damaged database must not keep the lock held or skip
        the summary and the on_failure hook that come after; each failing step is reported
        once on stderr by its class name.
        """
        try:
            await self.recorder.close()
        except Exception as exc:  # noqa: BLE001 - the history never fails a run
            _note("the run history could not be closed", exc)
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001
            _note("the JSON log could not be closed", exc)
        self.lock.release()


def internal_error_log(ws: Workspace) -> Path:
    """Where the traceback of an engine error that ended a run is kept (inside the workspace)."""
    return ws.diagnostics / "engine" / "internal-error.log"


def keep_traceback(ws: Workspace, errors: list[BaseException]) -> None:
    """Append the tracebacks of ``errors`` to :func:`internal_error_log` (best effort)."""
    try:
        path = internal_error_log(ws)
        ensure_dir(path.parent)
        with open_private(path, "ab") as fh:
            for exc in errors:
                fh.write(f"--- {now_iso()}\n{''.join(traceback.format_exception(exc))}".encode())
    except OSError:
        pass


def _note(what: str, exc: BaseException) -> None:
    try:
        print(f"lorchestra: warning: {what} ({type(exc).__name__})", file=sys.stderr)
    except OSError:
        pass


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What stops a run cleanly (cancel, record, summary, on_failure hook, exit 130): Ctrl-C,
``kill``, and the terminal or ssh session closing under it (SIGHUP killed the engine with
exit 129: no hook, no summary, the history left "running")."""


async def _lock(ws: Workspace, command: str, wait_s: float) -> WorkspaceLock:
    """The workspace lock, waiting up to ``wait_s`` in the event loop: Ctrl-C (asyncio's own
    handler) and SIGTERM stop the wait at once, as an interrupt (exit 130), and the wait is
    said once on stderr (a cron log then shows why a run started late)."""
    if wait_s <= 0:
        return WorkspaceLock(ws, command=command).acquire(0.0)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def on_term() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    def waiting(holder: str) -> None:
        _say(f"{command.split()[0] if command else 'lorchestra'}: the workspace lock is held by {holder}; "
             f"waiting up to {wait_s:g} s "
             "for it (Ctrl-C stops)")

    for sig in STOP_SIGNALS[1:]:  # SIGINT: asyncio's own handler
        loop.add_signal_handler(sig, on_term)
    try:
        return await WorkspaceLock(ws, command=command).acquire_waiting(wait_s, waiting)
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None  # the faces' interrupt: exit 130, nothing started
        raise
    finally:
        for sig in STOP_SIGNALS[1:]:
            loop.remove_signal_handler(sig)


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


async def open_session(loaded: LoadedConfig, *, skip_permissions: bool = False, wait_s: float = 0.0,
                       command: str = "lorchestra run") -> Session:
    """Check and lock the workspace, attach the JSON log and the run history to a new bus."""
    ws = open_workspace(loaded, skip_permissions=skip_permissions)
    lock = await _lock(ws, command, wait_s)
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


def ended_badly(result: RunResult, interrupted: bool = False, abandoned: list[str] | None = None) -> bool:
    """Whether a run calls for the on_failure hook: anything but a run whose every task
    succeeded or skipped (a failed task, an internal error, a full disk, an interrupt), or
    one that found earlier runs killed before they could alarm (``abandoned``)."""
    return bool(abandoned) or interrupted or result.summary is None or result.summary.status != "success"


async def notify_failure(session: Session, result: RunResult, trigger: Trigger, *,
                         interrupted: bool = False, internal_error: str | None = None) -> str | None:
    """Run the on_failure hook if the run ended badly; a warning for the face if the hook did
    not work. Never raises: whatever broke the run must not also silence its alarm."""
    abandoned = session.recorder.abandoned
    if not session.loaded.config.on_failure or not ended_badly(result, interrupted, abandoned):
        return None
    try:
        first = session.sink.first_path or session.sink.path  # the run's start day: `status` names it too
        summary = failure_summary(session.loaded, session.ws, result, str(first), trigger)
        summary["log_next"] = str(session.sink.path) if session.sink.path != first else None
        summary["interrupted"] = interrupted
        summary["internal_error"] = internal_error
        summary["abandoned_runs"] = abandoned
        return await run_on_failure(session.loaded, session.ws, summary)
    except Exception as exc:  # noqa: BLE001 - reported to the face, never raised
        return f"the on_failure hook could not be run ({type(exc).__name__})"


async def _alert_refused(loaded: LoadedConfig, exit_code: int, trigger: Trigger) -> str | None:
    try:
        return await run_on_failure(loaded, None, refusal_summary(loaded, exit_code, trigger))
    except Exception as exc:  # noqa: BLE001 - the refusal is what the face reports
        return f"the on_failure hook could not be run ({type(exc).__name__})"


async def run_session(loaded: LoadedConfig, plan: Plan, *, trigger: Trigger,
                      subscribers: Iterable[Subscriber] = (), skip_permissions: bool = False,
                      wait_s: float = 0.0, command: str = "lorchestra run",
                      force: bool = False) -> SessionResult:
    """Run ``plan`` under the workspace lock with the JSON log, the history and the given
    subscribers. A run refused before it begins (busy: exit 3; unsafe workspace: exit 4) calls
    the on_failure hook too (:func:`engine.run.hooks.refusal_summary`), then raises."""
    try:
        session = await open_session(loaded, skip_permissions=skip_permissions, wait_s=wait_s, command=command)
    except (WorkspaceBusy, PermissionProblem) as exc:
        if loaded.config.on_failure:
            warning = await _alert_refused(loaded, int(exc.exit_code), trigger)
            if warning:
                _say(f"{command.split()[0] if command else 'lorchestra'}: warning: {warning}")
        raise
    for sub in subscribers:
        session.bus.subscribe(sub)
    runner = Runner(loaded.config, session.ws, session.bus, trigger, force=force)
    interrupted = False
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        loop.create_task(runner.cancel_all())

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    internal: str | None = None
    try:
        result = await runner.run(plan)
    except Exception as exc:  # noqa: BLE001 - the run is still recorded, summarised and alarmed
        runner.errors.append(exc)
        await runner.cancel_all()  # no worker (holding the lock) outlives the session
        result = runner.abandon(plan)
    finally:
        if runner.errors:
            internal = type(runner.errors[0]).__name__
            keep_traceback(session.ws, runner.errors)
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        await session.close()
    warning = await notify_failure(session, result, trigger, interrupted=interrupted, internal_error=internal)
    full = session.sink.disk_full or session.recorder.disk_full or (
        result.summary is not None and result.summary.error_code == ErrorCode.DISK_FULL.value)
    first, last = session.sink.first_path or session.sink.path, session.sink.path
    return SessionResult(result, interrupted, str(first), warning, internal,
                         str(internal_error_log(session.ws)) if internal else None, disk_full=full,
                         log_next=str(last) if last != first else None)
