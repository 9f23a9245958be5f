"""The app's longer actions, kept out of app.py: watching files, verifying runs, validate,
filters, and reading a cron run's progress from its log lines.

Each function takes the app and schedules workers on it; none touches a widget from a
thread except through ``call_from_thread``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from engine.configload import load
from engine.errors import ConfigError
from engine.events import Event, parse_event
from engine.fsutil import ensure_dir
from engine.inspect import RunInfo
from engine.vault.layout import read_manifest
from engine.vault.reader import verify_part
from lorch_tui.model import RunModel
from lorch_tui.screens.modals import ValidateScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.progress import ProgressPane
from lorch_tui.widgets.vault import RunDetail, VaultTree

if TYPE_CHECKING:
    from lorch_tui.app import LorchApp


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


def watch_workspace(app: LorchApp) -> None:
    """Rescan when another process changes the workspace; reload a changed config."""

    async def watcher() -> None:
        from watchfiles import awatch

        roots = [app.ws.vault, app.ws.canonical, app.ws.vector_store, app.ws.state]
        for root in roots:
            ensure_dir(root)
        config_path = app.loaded.path
        watch = [*map(str, roots), str(config_path.parent)]
        async for changes in awatch(*watch, debounce=400, step=100, recursive=True):
            paths = {Path(p) for _, p in changes}
            if config_path in paths:
                reload_config(app)
            if paths - {config_path}:
                app.request_scan()

    app.run_worker(watcher(), group="watch", exclusive=True, exit_on_error=False)


def reload_config(app: LorchApp) -> None:
    """Load the config again; on error keep the old one and say why."""
    try:
        loaded = load(app.loaded.path, app.loaded.workspace)
    except ConfigError as exc:
        app.notify(exc.render(), title="config not reloaded: the old one stays in force",
                   severity="error", timeout=15)
        return
    app.loaded = loaded
    reconfigure = getattr(app.engine, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(loaded)
    app.notify(f"config reloaded: {len(loaded.config.extractors)} extractors")
    app.request_scan()


def verify_run(app: LorchApp, extractor: str, run: RunInfo) -> None:
    """Re-hash a run's parts in a thread and show the verdict in the detail pane."""
    detail = app.query_one(RunDetail)
    detail.show(extractor, run, "checking")

    def check() -> None:
        try:
            parts = read_manifest(run.path).get("parts", [])
            problems = [p for p in (verify_part(run.path, part) for part in parts) if p]
            verdict = "verified" if not problems else f"{len(problems)} part(s): {problems[0]}"
        except (OSError, ValueError):
            verdict = "manifest unreadable"
        app.call_from_thread(detail.show, extractor, run, verdict)

    app.run_worker(check, thread=True, group="verify")


def task_to_cancel(app: LorchApp) -> str | None:
    """The progress pane's row when it has focus, else the selected account's running task."""
    running = set(app.engine.running_tasks)
    if app.focused is app.query_one(ProgressPane).table:
        task = app.query_one(ProgressPane).selected_task()
        if task in running:
            return task
    if app.selected is not None:
        row = app.model.task_of(app.selected)
        if row is not None and row.task_id in running:
            return row.task_id
    return None


def validate(app: LorchApp) -> None:
    """Run `lorchestra validate` in a subprocess and show its report in a modal."""

    async def run() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lorch_tui.cli", "validate", "--config", str(app.loaded.path),
            "--workspace", str(app.ws.root), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env={**os.environ, "COLUMNS": "100"})
        out, _ = await proc.communicate()
        await app.push_screen(ValidateScreen(proc.returncode, out.decode(errors="replace")))

    app.run_worker(run(), group="validate", exclusive=True)


def ask_filter(app: LorchApp, screen: type) -> None:
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
