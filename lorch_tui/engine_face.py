"""The dashboard's handle on the engine: start runs, cancel tasks, hand over events in batches.

:class:`LiveEngine` runs the real :class:`engine.run.runner.Runner` inside the app's event loop;
tests swap in a fake with the same surface that replays scripted events. Events are only
appended to a list here (no message per event); the app swaps the list out on its flush
timer and applies the batch at once.

Nothing here blocks the event loop: the workspace permission walk (seconds on a large
workspace) runs in a thread, and the engine counts as busy from the moment a start is asked
for, so a second key cannot start a second run and quitting waits for the start to settle.
The runner and the session machinery are imported on the first start (by then the
workspace check, which runs after the first paint, has usually loaded them), so they do
not delay the first paint.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from engine.config.load import LoadedConfig
from engine.errors import LorchError
from engine.events import Event
from engine.run.plan import build_plan

if TYPE_CHECKING:
    from engine.run.runner import Runner


class EngineFace(Protocol):
    """What the dashboard needs from an engine."""

    @property
    def busy(self) -> bool:
        """True while a run started here is in progress."""

    @property
    def running_tasks(self) -> list[str]:
        """Task ids with a live worker."""

    def drain(self) -> list[Event]:
        """Every event received since the last call, oldest first."""

    async def start(self, stages: list[str] | None, accounts: list[str] | None, *, force: bool = False) -> None:
        """Start a run in the background (raises LorchError when it cannot start)."""

    async def cancel(self, task_id: str) -> bool:
        """Cancel one task."""

    async def cancel_all(self) -> None:
        """Cancel every task of the current run and wait for them."""

    def notes(self) -> list[str]:
        """Warnings of how runs ended since the last call (the on_failure hook failed or
        timed out), each once; PHI-free."""

    @property
    def alarm_running(self) -> bool:
        """True while a finished run's on_failure hook runs (the engine is still busy)."""


class LiveEngine:
    """The real engine inside the app's loop."""

    def __init__(self, loaded: LoadedConfig, *, skip_permissions: bool = False) -> None:
        self.loaded = loaded
        self.skip_permissions = skip_permissions
        self._pending: list[Event] = []
        self._runner: Runner | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = False
        self._notes: list[str] = []
        self._alarm = False

    def notes(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes

    @property
    def alarm_running(self) -> bool:
        return self._alarm and self.busy

    def reconfigure(self, loaded: LoadedConfig) -> None:
        """Use a reloaded config for the next run."""
        self.loaded = loaded

    @property
    def busy(self) -> bool:
        return self._starting or (self._task is not None and not self._task.done())

    @property
    def running_tasks(self) -> list[str]:
        return self._runner.running if self._runner and self.busy else []

    def _receive(self, event: Event) -> None:
        self._pending.append(event)  # always the current list: drain swaps it

    def drain(self) -> list[Event]:
        batch, self._pending = self._pending, []
        return batch

    async def start(self, stages: list[str] | None, accounts: list[str] | None, *, force: bool = False) -> None:
        if self.busy:
            raise LorchError("a run is already in progress; wait for it or cancel it (x)")
        # imported on the first start, not before the dashboard's first paint
        from engine.run.runner import Runner
        from engine.run.session import keep_traceback, notify_failure, open_session, open_workspace

        self._starting = True
        try:
            plan = build_plan(self.loaded.config, stages, accounts)
            # the permission walk reads every inode of the workspace: never on the event loop
            await asyncio.to_thread(open_workspace, self.loaded, skip_permissions=self.skip_permissions)
            session = await open_session(self.loaded, skip_permissions=True, command="lorch-tui dashboard")
        finally:
            self._starting = False
        session.bus.subscribe(self._receive)
        runner = Runner(self.loaded.config, session.ws, session.bus, "dashboard", force=force)
        self._runner = runner

        async def go() -> None:
            internal: str | None = None
            try:
                result = await runner.run(plan)
            except Exception as exc:  # noqa: BLE001 - still recorded, and the hook still runs
                runner.errors.append(exc)
                await runner.cancel_all()
                result = runner.abandon(plan)
            finally:
                if runner.errors:
                    internal = type(runner.errors[0]).__name__
                    keep_traceback(session.ws, runner.errors)
                await session.close()  # flushes the history, closes the log, releases the lock
            self._alarm = True
            try:
                warning = await notify_failure(session, result, "dashboard", interrupted=runner.cancelled_all,
                                               internal_error=internal)
            finally:
                self._alarm = False
            if warning:  # a hook that failed must not go unseen: it was only printed to stderr
                self._notes.append(warning)

        self._task = asyncio.get_running_loop().create_task(go())

    async def cancel(self, task_id: str) -> bool:
        return await self._runner.cancel(task_id) if self._runner else False

    async def cancel_all(self) -> None:
        while self._starting:  # a start in flight: let it settle, then cancel what it started
            await asyncio.sleep(0.02)
        if self._runner is not None:
            await self._runner.cancel_all()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
