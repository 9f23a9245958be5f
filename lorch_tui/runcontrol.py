"""Run control for the dashboard: starting a run, cancelling a task or the run, and quitting.

Kept out of ``app.py`` so the app composes panes and routes keys while the rules of a run's
life from the dashboard live in one place: one run at a time, a start that returns the key at
once (the engine starts in a worker), a confirmation before anything is cancelled, and one way
out for every quit (``q``, ``ctrl+q``, the palette's Quit, an unmount): ask when a run is in
progress, cancel, reap, record.

:class:`RunControl` is composed by the app and takes it as a :class:`lorch_tui.host.Host`, so
this module never imports the app (no import cycle); the app's ``action_*`` methods stay on
the app and delegate here.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import signal
from typing import Any

from engine.errors import LorchError
from lorch_tui import actions
from lorch_tui.host import Host
from lorch_tui.scan import lock_holder
from lorch_tui.screens.modals import ConfirmScreen
from lorch_tui.widgets.progress import ProgressPane

HANG_UP = (signal.SIGHUP, signal.SIGTERM)
"""Signals that end the dashboard with nobody to ask: cancel, record, exit 130."""
ABANDON_AFTER_S = 2.0
"""How long a foreign run shown as running may go without a live process or lock before it is
called abandoned (its last log lines are read meanwhile)."""
REAP_TIMEOUT_S = 60
"""How long an unmount waits for a cancelled run to be reaped and recorded."""


def mute_terminal(app: Any) -> None:
    """Drop every later write to the terminal, and what is queued for it.

    When the terminal closes (SIGHUP) Textual's writer thread dies on the first write to it,
    and its queue of 30 screens fills while the app keeps painting the run's cancel: the main
    thread then blocked in ``Queue.put`` for ever, the cancel never ended, the workspace lock
    stayed held and the nightly cron run found the workspace busy. Textual's driver and its
    writer thread are private: read with ``getattr``, so another Textual version only loses
    this safety, never the quit."""
    driver = getattr(app, "_driver", None)
    if driver is None:
        return
    driver.write = lambda data: None
    pending = getattr(getattr(driver, "_writer_thread", None), "_queue", None)
    if isinstance(pending, queue.Queue):  # room for the stop that closing the driver puts
        with contextlib.suppress(queue.Empty):
            while True:
                pending.get_nowait()


class RunControl:
    """Starts, cancels and ends the dashboard's runs; holds whether a quit is under way."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.quitting = False
        """A quit is asking or cancelling: a second quit key does nothing meanwhile."""
        self._hup_loop: asyncio.AbstractEventLoop | None = None
        self.starting = False
        """A start was asked for and its worker has not handed it to the engine yet."""

    def start(self, stages: list[str] | None, accounts: list[str] | None, what: str) -> None:
        """Say at once that the run is starting; start it in a worker (the key returns now)."""
        app = self.app
        if app.engine.alarm_running:
            app.notify("the last run's on_failure hook is still running (at most its timeout); start "
                       "again when it has ended", title="cannot start yet", severity="warning")
            return
        if app.engine.busy or self.starting:
            app.notify("a run is already in progress; wait for it, or cancel it (x one task, X the run)",
                       title="cannot start", severity="warning")
            return
        app.notify(f"starting: {what}")
        app.query_one(ProgressPane).starting(what)
        self.starting = True  # a second key before the worker below runs is the same run

        async def go() -> None:
            try:
                await app.engine.start(stages, accounts, force=stages is not None and "extract" not in stages)
            except LorchError as exc:
                app.query_one(ProgressPane).show(app.model)
                app.notify(exc.render(), title="cannot start", severity="error", timeout=15, markup=False)
                return
            finally:
                self.starting = False
            await asyncio.sleep(0)  # the run's first step: RunStarted and its queued tasks
            app.flush()  # on screen now, not up to a tick of the 15 Hz timer later

        app.run_worker(go(), group="start")

    def cancel_task(self) -> None:
        """Cancel the selected running task, after asking."""
        app = self.app
        task = actions.task_to_cancel(app)
        if task is None:
            app.notify(actions.why_nothing_to_cancel(app), severity="warning", markup=False)
            return

        async def answer(yes: bool | None) -> None:
            if yes:
                await app.engine.cancel(task)
                app.notify(f"cancelling {task}")

        app.push_screen(ConfirmScreen(f"Cancel {task}?"), answer)

    def cancel_run(self) -> None:
        """Cancel every task of the run in progress, after asking."""
        app = self.app
        if not app.engine.busy:
            app.notify(actions.why_nothing_to_cancel(app), severity="warning", markup=False)
            return

        async def answer(yes: bool | None) -> None:
            if yes:
                app.notify("cancelling the whole run...")
                await app.engine.cancel_all()

        app.push_screen(ConfirmScreen("Cancel the whole run (every task)?"), answer)

    async def quit(self) -> None:
        """Quit; ask first when a run is in progress, then cancel it, reap it and record it."""
        app = self.app
        if self.quitting:
            return
        if not app.engine.busy:
            app.exit(0)
            return
        if app.engine.alarm_running:  # the run is over: nothing to ask, only the alarm to let finish
            self.quitting = True
            app.notify("the last run's on_failure hook is still running: quitting when it ends")
            await app.engine.cancel_all()  # cancels nothing now; waits for the hook
            app.exit(0)
            return

        async def answer(yes: bool | None) -> None:
            self.quitting = False
            if yes:
                self.quitting = True
                app.notify("cancelling running tasks...")
                await app.engine.cancel_all()
                app.exit(0)

        self.quitting = True
        app.push_screen(ConfirmScreen("A run is in progress. Cancel it and quit?"), answer)

    def watch_hang_up(self) -> None:
        """Cancel, record and quit (exit 130) when the terminal closes under the dashboard
        (SIGHUP: a closed window, a dropped ssh session) or it is told to stop (SIGTERM):
        either killed the process, leaving the run "running" in the history, the on_failure
        hook uncalled and the terminal in the alternate screen."""
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            if sig == signal.SIGHUP:  # no terminal to paint on: stop painting before anything else
                mute_terminal(self.app)
            loop.create_task(self.hang_up())
        try:
            for sig in HANG_UP:
                loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            return
        self._hup_loop = loop

    async def hang_up(self) -> None:
        """The terminal is gone: nobody to ask. Cancel the run, then quit with 130."""
        self.quitting = True
        if self.app.engine.busy:
            await self.app.engine.cancel_all()
        self.app.exit(130)

    def unwatch_hang_up(self) -> None:
        """Give the signals back (the app is ending; a test process runs many apps)."""
        loop, self._hup_loop = self._hup_loop, None
        if loop is not None and not loop.is_closed():
            for sig in HANG_UP:
                loop.remove_signal_handler(sig)

    def watch_foreign(self, holder: str | None) -> None:
        """After a scan: a run of another process shown as running, with no live holder of
        the lock, is checked again shortly (its last log lines may still be on their way)."""
        if self.app.model.status == "running" and not self.app.engine.busy and holder is None:
            self.app.set_timer(ABANDON_AFTER_S, self._check_abandoned)

    def _check_abandoned(self) -> None:
        """Its process is gone (killed: no end in the log) and the lock is free: say so, and
        stop showing it as running for ever."""
        app = self.app
        if app.model.status != "running" or app.engine.busy or lock_holder(app.ws) is not None:
            return
        run_id = app.model.run_id
        app.model.abandon()
        app.query_one(ProgressPane).show(app.model)
        if run_id in app.runs_said:  # said at start, from the history (lorch_tui.lastrun)
            return
        app.runs_said.add(str(run_id))
        app.notify(f"run {run_id} ended without finishing (its process was killed); its unfinished "
                   "tasks are abandoned, and the next run records them so", title="run abandoned",
                   severity="warning", timeout=15, markup=False)

    async def reap(self) -> None:
        """The last way out (an error, a test harness, anything that skipped q): still cancel,
        reap and record the run, so no worker outlives the loop and no run stays `running`."""
        self.unwatch_hang_up()
        if self.app.engine.busy:
            try:
                await asyncio.wait_for(self.app.engine.cancel_all(), timeout=REAP_TIMEOUT_S)
            except TimeoutError:
                pass
