"""Pilot tests of the dashboard against a fake engine that replays scripted events.

A real config and a real workspace (filled by the real CLI) back every test; only the
engine is fake, so the vault tree, the LATEST table, run details and the log tail read real
files. One test drives the real demo engine end to end. Synchronisation is always a poll
of widget state with a deadline (``until``), never a sleep.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from textual.widgets import DataTable, Tree

from engine.errors import WorkspaceBusy
from engine.events import TaskProgress
from engine.logsink import log_path
from engine.workspace import Workspace, WorkspaceLock
from lorch_tui.app import LorchApp
from lorch_tui.model import RunModel
from lorch_tui.screens.modals import ConfirmScreen, FilterScreen, HelpScreen, ValidateScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.progress import ProgressPane
from lorch_tui.widgets.vault import RunDetail, VaultTree
from tests.tui.conftest import Setup
from tests.tui.dash import NAMES, Notes, cell, row_keys, settle, static_text, until
from tests.tui.fake_engine import FakeEngine, TaskPlan, finished, task_script

SIZE = (120, 35)


def make_app(setup: Setup, engine: FakeEngine | None = None, *, watch: bool = False,
             **fake: Any) -> tuple[LorchApp, FakeEngine]:
    loaded = setup.load()
    eng = engine or FakeEngine(loaded, **fake)
    return LorchApp(loaded, eng, watch=watch), eng


def latest_table(app: LorchApp) -> DataTable[Any]:
    return app.query_one("#latest-table", DataTable)


def progress_table(app: LorchApp) -> DataTable[Any]:
    return app.query_one(ProgressPane).table


def tree_extractor(app: LorchApp) -> str | None:
    node = app.query_one(VaultTree).cursor_node
    return node.data.extractor if node is not None and node.data is not None else None


async def ready(pilot: Any, rows: int = 3) -> None:
    """Wait for the first scan: the LATEST table has its rows and an account is selected."""
    app = pilot.app
    await until(pilot, lambda: latest_table(app).row_count == rows and app.selected is not None,
                what="the first workspace scan")


async def select_via_latest(pilot: Any, extractor: str) -> None:
    """Move the LATEST table's cursor (with keys) to ``extractor``'s row."""
    app = pilot.app
    latest_table(app).focus()
    await pilot.pause()
    for _ in range(latest_table(app).row_count):
        if app.query_one(LatestPane).selected() == extractor:
            break
        await pilot.press("down")
    await until(pilot, lambda: app.selected == extractor, what=f"selection of {extractor}")


# -- the screen as it opens ------------------------------------------------------------------


async def test_opens_on_the_workspace(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = latest_table(app)
        assert row_keys(table) == NAMES
        for name in NAMES:
            assert cell(table, name, "LATEST run")[:8].isdigit(), cell(table, name, "LATEST run")
            assert cell(table, name, "records") == "20"
        assert cell(table, "clinic-bravo", "canon") == "✓"
        assert cell(table, "mail-alpha", "canon") == "✗"  # extracted again after canonize
        tree = app.query_one(VaultTree)
        labels = {str(n.data.extractor): str(n.label) for n in tree._accounts.values()}  # noqa: SLF001
        assert "2 runs" in labels["mail-alpha"] and "1 run" in labels["clinic-bravo"]
        assert app.selected == "mail-alpha" and tree_extractor(app) == "mail-alpha"
        assert "mail-alpha" in static_text(app.query_one(RunDetail))
        assert app.sub_title == str(populated.workspace)
