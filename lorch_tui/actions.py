"""The app's longer actions, kept out of app.py: checking the workspace, verifying runs,
validate, filters, the pager, and reading a cron run's progress from its log lines.

Each function takes the app (as a :class:`lorch_tui.host.Host`, so this module never imports
the app) and schedules workers on it; none touches a widget from a thread except through
``call_from_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from engine.errors import LorchError
from engine.events import Event, parse_event
from engine.ops.inspect import RunInfo
from engine.vault.layout import read_manifest
from engine.vault.reader import PART_NAME, verify_part
from lorch_tui.host import Host
from lorch_tui.model import RunModel
from lorch_tui.screens.modals import ValidateScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.progress import ProgressPane
from lorch_tui.widgets.vault import RunDetail, VaultTree


def foreign_events(logged: list[dict[str, Any]], model: RunModel) -> list[Event]:
    """Events of a run started elsewhere (cron), read back from the log, as models."""
    out: list[Event] = []
    for raw in logged:
        data = {k: v for k, v in raw.items() if k != "level"}
        try:
            out.append(parse_event(orjson.dumps(data)))
        except ValidationError:
            continue
    return out


def _part_name(part: dict[str, object]) -> str:
    """A part's file name as it may be shown (only a real part name, never other manifest text)."""
    name = str(part.get("file", ""))
    return name if PART_NAME.fullmatch(name) else "a part with a wrong name"


def verify_run(app: Host, extractor: str, run: RunInfo) -> None:
    """Re-hash a run's parts in a thread and show the verdict in the detail pane."""
    detail = app.query_one(RunDetail)
    detail.show(extractor, run, "checking")

    def check() -> None:
        try:
            manifest = read_manifest(run.path)
            parts = manifest.get("parts")
            # what `lorchestra verify` refuses is never "verified" here (a manifest without a
            # list of parts, or with entries that are not parts, had nothing to re-hash)
            if not isinstance(parts, list) or not all(isinstance(p, dict) and _part_name(p) == p.get("file")
                                                      for p in parts):
                raise ValueError("MANIFEST_INVALID")
            if manifest.get("status") == "success" and not parts and manifest.get("records"):
                raise ValueError("MANIFEST_INVALID")  # records, and no part holding them
            problems = [(_part_name(part), code) for part in parts if (code := verify_part(run.path, part))]
            verdict = "verified" if not problems else (
                f"{len(problems)} part(s): {problems[0][0]} {problems[0][1]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        except (OSError, ValueError, AttributeError):
            verdict = "manifest unreadable (MANIFEST_INVALID: `lorchestra verify` names it)"
        app.call_from_thread(detail.show, extractor, run, verdict)

    app.run_worker(check, thread=True, group="verify")


def check_workspace(app: Host, skip_permissions: bool, done: Callable[[str | None], None]) -> None:
    """Create the workspace and check its permissions in a thread (a walk over every inode:
    seconds on a large workspace); then call ``done`` on the loop with the problem, if any."""

    def check() -> None:
        from engine.run.session import (
            open_workspace,  # the session machinery: after the first paint
        )

        try:
            open_workspace(app.loaded, skip_permissions=skip_permissions)
        except LorchError as exc:
            app.call_from_thread(done, exc.render())
            return
        app.call_from_thread(done, None)

    app.run_worker(check, thread=True, group="workspace-check")


async def open_in_pager(app: Any, path: Path | None, what: str) -> None:
    """Show ``path`` in ``$PAGER`` (``less`` if unset) with the dashboard suspended.

    The file may hold PHI, which is why it is shown only here, on request, and never in a pane.
    The pager is awaited, not waited for: the event loop goes on while it is open, so a run
    keeps starting its next tasks (a blocking wait held every queued task, and a cron run
    behind the workspace lock, for as long as the pager was open). Repaints are batched
    until the dashboard has the terminal back. Run it as a worker (the app's own messages
    are not held either).
    """
    if path is None:
        app.notify(f"there is no {what.removeprefix('the ')} for this task", severity="warning")
        return
    if not path.is_file():
        app.notify(f"{what} is not there (any more): {path}", severity="warning", markup=False)
        return
    try:
        pager = shlex.split(os.environ.get("PAGER") or "less") or ["less"]
    except ValueError:  # unbalanced quotes in $PAGER
        pager = ["less"]
    if shutil.which(pager[0]) is None:  # checked before the screen is handed over: a pager that
        app.notify(f"cannot start $PAGER ({pager[0]}): not found; the file is {path}",  # fails
                   severity="error", timeout=15, markup=False)  # inside suspend() froze the app
        return
    if getattr(app, "pager_open", False):  # a key queued while the pager had the terminal
        return
    app.pager_open = True
    try:
        await _page(app, pager, path, what)
    finally:
        app.pager_open = False


async def _page(app: Any, pager: list[str], path: Path, what: str) -> None:
    """The pager run with the dashboard suspended (see :func:`open_in_pager`)."""
    from textual.app import SuspendNotSupported

    failed: OSError | None = None
    cancelled = False
    try:
        # no search history of the pager in the home folder: a search for a name is PHI
        env = {**os.environ, "LESSHISTFILE": "-", "LESSHISTSIZE": "0"}
        with app.batch_update(), app.suspend():  # no repaint while the pager has the terminal
            try:  # an error must not leave the block: Textual resumes the screen only on a normal exit
                proc = await asyncio.create_subprocess_exec(*pager, str(path), env=env)
                try:
                    await proc.wait()
                except asyncio.CancelledError:  # the app is ending: the pager goes, the screen comes back
                    cancelled = True
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(proc.wait(), 2)
            except OSError as exc:
                failed = exc
    except SuspendNotSupported:
        app.notify(f"this terminal cannot hand over to $PAGER; read {what} at {path}",
                   severity="warning", timeout=15, markup=False)
    except OSError as exc:
        failed = exc
    if failed is not None:
        app.notify(f"cannot start $PAGER ({pager[0]}): {failed.strerror}; the file is {path}",
                   severity="error", timeout=15, markup=False)
    if cancelled:
        raise asyncio.CancelledError


def task_to_cancel(app: Host) -> str | None:
    """The progress pane's row when it has focus, else the selected account's running task
    (a task waiting to retry counts: cancelling it ends the wait)."""
    running = set(app.engine.running_tasks)
    if app.engine.busy:
        running |= {t for t, row in app.model.tasks.items() if row.state == "retrying"}
    if app.focused is app.query_one(ProgressPane).table:
        task = app.query_one(ProgressPane).selected_task()
        if task in running:
            return task
    if app.selected is not None:
        row = app.model.task_of(app.selected)
        if row is not None and row.task_id in running:
            return row.task_id
    return None


def why_nothing_to_cancel(app: Any) -> str:
    """Why ``x`` found nothing to cancel: a run of another process (named), or no running task."""
    holder = app.snapshot.lock_holder if app.snapshot is not None else None
    if not app.engine.busy and holder:
        pid = holder.split()[1]
        return (f"the run in progress belongs to {holder}, not to this dashboard: stop it there "
                f"(X or q in a dashboard, Ctrl-C in a terminal), or with `kill -INT {pid}` (it "
                "cancels cleanly)")
    if app.engine.busy:
        return "no running task selected: move to a running row in Stage progress, or X cancels the whole run"
    return "no running task to cancel: nothing is running"


def validate(app: Host) -> None:
    """Run `lorchestra validate` in a subprocess and show its report in a modal."""

    async def run() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lorch_tui.cli", "validate", "--config", str(app.loaded.path),
            "--workspace", str(app.ws.root), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "100"})
        out, _ = await proc.communicate()
        await app.push_screen(ValidateScreen(proc.returncode, out.decode(errors="replace")))

    app.notify("validating the config and the workspace...", timeout=3)  # it takes a few seconds
    app.run_worker(run(), group="validate", exclusive=True)


def ask_filter(app: Host, screen: type) -> None:
    """Ask for a filter for the focused pane (log tail, LATEST table or vault tree)."""
    focused = app.focused
    log = app.query_one(LogTail)
    latest = app.query_one(LatestPane)
    if focused is log:
        pane, current, hint = "log", log.filter_text, "level:error account:acct1 words"

        def apply(text: str | None) -> None:
            if text is not None:
                log.set_filter(text)
    else:
        pane, current, hint = "accounts", latest.filter, "part of an extractor name"

        def apply(text: str | None) -> None:
            if text is not None:
                latest.set_filter(text)
                app.query_one(VaultTree).filter_accounts(text)

    app.push_screen(screen(pane, current, hint), apply)
