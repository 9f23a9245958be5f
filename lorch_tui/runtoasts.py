"""The toasts the dashboard raises as a run's events come in, each said once.

Split from :mod:`lorch_tui.app` (which composes the panes and routes events) because what
is said to a person about a run is its own concern: a run that ended without success (with
the CLI's ``DISK_FULL`` words when the disk ran out, read in a thread since they measure the
free space), and a positive critical item (PHQ-9 item 9) that no chart shows. A run's end is
said once per run id (``runs_said``, shared with :mod:`lorch_tui.lastrun` and
:mod:`lorch_tui.runcontrol`); the critical item once per run. It takes the app as a
:class:`lorch_tui.host.Host`, so it never imports ``lorch_tui.app`` (no import cycle).
"""

from __future__ import annotations

from engine.errors import disk_full
from engine.events import RunFinished
from lorch_tui.host import Host


class RunToasts:
    """The run's toasts, composed by the app (``LorchApp.toasts``)."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.critical_said: set[str | None] = set()
        """Runs whose critical-item toast was said."""

    def critical_unlinked(self, count: int) -> None:
        """A positive item 9 (self-harm) that is in no chart: said until dismissed, once a run."""
        app = self.app
        run = app.model.run_id
        if run in self.critical_said:
            return
        self.critical_said.add(run)
        app.notify(f"{count} questionnaire response(s) with a positive critical item (PHQ-9 item 9) "
                   "are linked to no client, so no chart shows them: `lorchestra clients unlinked` "
                   "lists them, a `link:` override puts each in its chart",
                   title="critical item unlinked", severity="error", timeout=30, markup=False)
        # the Stage progress title keeps saying it (CRITICAL UNLINKED n) after the toast goes

    def run_ended(self, ev: RunFinished) -> None:
        """A run that did not succeed: failed, cancelled, or out of disk space (once per run)."""
        app = self.app
        if ev.run_id in app.runs_said:
            return
        app.runs_said.add(ev.run_id)
        if app.model.ran_out_of_space(ev):
            self.disk_full(ev.run_id)
        elif ev.status == "failed":
            app.notify(f"{ev.failed} of {ev.tasks} task(s) failed. In Stage progress, enter on a "
                       "red row explains why.", title=f"run {ev.run_id} failed", severity="error",
                       timeout=20, markup=False)
        else:
            app.notify(f"{ev.cancelled} of {ev.tasks} task(s) cancelled", title=f"run {ev.run_id} {ev.status}",
                       severity="warning", timeout=8, markup=False)

    def disk_full(self, run_id: str) -> None:
        """One toast with the CLI's DISK_FULL message (it reads the free space: in a thread)."""
        app = self.app

        def say() -> None:
            text = disk_full(app.loaded.workspace).render()
            app.call_from_thread(app.notify, text, title=f"run {run_id} failed: the disk is full",
                                 severity="error", timeout=30, markup=False)

        app.run_worker(say, thread=True, exclusive=False, group="disk-full")
