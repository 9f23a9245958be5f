"""Pilot tests of how often the progress pane repaints its table under a flood (issue 18).

A changed cell makes Textual re-render the whole table, the costliest thing on screen, so
counter-only changes repaint it at most every ``COUNTERS_EVERY_S`` (the one-line totals are
rewritten on every flush); a change of shape (a task added, a state, an error code) repaints at once.
The real app, a real populated workspace and the fake engine's event flood.
"""

from __future__ import annotations

import time

import pytest

from engine.events import TaskFinished, TaskProgress
from lorch_tui.app import LorchApp
from lorch_tui.model import RunModel
from lorch_tui.widgets import progress
from lorch_tui.widgets.progress import ProgressPane
from tests.tui.conftest import Setup
from tests.tui.dash import NAMES, cell, static_text, until
from tests.tui.fake_engine import FakeEngine

SIZE = (120, 35)


def counting(pane: ProgressPane) -> dict[str, int]:
    """Count the pane's show() calls and its table repaints (wrapping the instance's methods)."""
    calls = {"show": 0, "rows": 0}
    show, rows = pane.show, pane._show_rows

    def counted_show(model: RunModel) -> None:
        calls["show"] += 1
        show(model)

    def counted_rows(model: RunModel) -> None:
        calls["rows"] += 1
        rows(model)

    pane.show = counted_show  # type: ignore[method-assign]
    pane._show_rows = counted_rows  # type: ignore[method-assign]
    return calls


def rows_running(pane: ProgressPane) -> bool:
    """Every flood task's row is on screen, running."""
    keys = {str(k.value) for k in pane.table.rows}
    return all(f"extract:{n}" in keys and cell(pane.table, f"extract:{n}", "state") == "running" for n in NAMES)


async def test_counters_repaint_the_table_at_most_4_times_a_second_then_catch_up(
        populated: Setup) -> None:
    loaded = populated.load()
    fake = FakeEngine(loaded, script=lambda eng, stages, accounts: [])
    app = LorchApp(loaded, fake, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.selected is not None and app.model.run_id is not None,
                    what="the first scan and the replay of the CLI's runs from the log")
        pane = app.query_one(ProgressPane)
        calls = counting(pane)
        began = time.monotonic()
        fake.flood(5_000, 60.0, NAMES)
        await until(pilot, lambda: calls["show"] >= 20, timeout=30, what="20 flushes during the flood")
        await fake.stop_flood()
        took = time.monotonic() - began
        shows, repaints = calls["show"], calls["rows"]
        assert repaints < shows, "every flush repainted the table"
        assert repaints <= took / progress.COUNTERS_EVERY_S + 3, (repaints, took)
        for name in NAMES:  # the table catches up with the last counts, mid-run
            want = f"{fake.flood_counts[name]:,}"
            await until(pilot, lambda n=name, w=want: cell(pane.table, f"extract:{n}", "records") == w,
                        what=f"{name}'s last count in the table")


async def test_a_state_change_repaints_at_once_a_counter_waits(populated: Setup,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "COUNTERS_EVERY_S", 3600.0)  # a counter never gets its turn here
    loaded = populated.load()
    fake = FakeEngine(loaded, script=lambda eng, stages, accounts: [])
    app = LorchApp(loaded, fake, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.selected is not None and app.model.run_id is not None,
                    what="the first scan and the replay of the CLI's runs from the log")
        fake.flood(1_000, 0.2, NAMES)
        pane = app.query_one(ProgressPane)
        await until(pilot, lambda: fake.flood_task is not None and fake.flood_task.done()
                    and app.model.run_id == fake.run_id and rows_running(pane), what="the flood's tasks on screen")
        model, first, second = app.model, NAMES[0], NAMES[1]
        app.flush()  # whatever is pending, in: from here on only this test changes the model
        shown = cell(pane.table, f"extract:{second}", "records")
        count = model.tasks[f"extract:{second}"].records
        model.apply([TaskProgress(task_id=f"extract:{second}", stage="extract", extractor=second,
                                  records=count + 7)])
        pane.show(model)
        assert cell(pane.table, f"extract:{second}", "records") == shown  # counters wait their turn
        totals = static_text(app.query_one("#progress-totals"))
        assert totals.startswith("running: ") and f"run {fake.run_id} (dashboard)" in totals
        model.apply([TaskFinished(task_id=f"extract:{first}", stage="extract", extractor=first,
                                  account=fake.account_of(first), status="success", records=5, duration_s=1.0)])
        pane.show(model)
        assert cell(pane.table, f"extract:{first}", "state") == "success"  # a state: at once
        assert cell(pane.table, f"extract:{second}", "records") == f"{count + 7:,}"  # and the rest with it
