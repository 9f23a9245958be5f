"""Screenshots of the dashboard, compared with the accepted SVGs in __snapshots__/.

One class per feature; every test's docstring says what the picture must show. The scene
(tests/snapshots/scene.py) makes the pixels repeatable: fixed workspace path and run ids,
LATEST ages in whole hours or days, fixed log times, a frozen header clock and progress
clock, and a fake engine whose events are injected rather than timed. Regenerate after an
intended change with ``pytest tests/snapshots --snapshot-update`` and look at the diff.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Header

from engine.config.load import LoadedConfig
from lorch_tui.app import LorchApp
from lorch_tui.screens.modals import HelpScreen, ValidateScreen
from lorch_tui.screens.taskdetail import TaskDetailScreen
from lorch_tui.widgets.vault import RunDetail
from tests.snapshots import scene
from tests.tui.dash import cell, plain
from tests.tui.fake_engine import FakeEngine

WIDE = (120, 35)
SMALL = (80, 24)
CLOCK = "10:15:00"  # a strftime format without directives: the header clock stands still


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[scene.FrozenClock]:
    """The progress pane's clock, frozen; and the fixed scene path, held for this test."""
    frozen = scene.FrozenClock()
    monkeypatch.setattr("lorch_tui.model.time", frozen.module())
    with scene.exclusive():
        try:
            yield frozen
        finally:
            shutil.rmtree(scene.ROOT, ignore_errors=True)


def dashboard(loaded: LoadedConfig) -> tuple[LorchApp, FakeEngine]:
    fake = FakeEngine(loaded)
    return LorchApp(loaded, fake, watch=False), fake


async def poll(pilot: Pilot[Any], cond: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"snapshot set-up timed out waiting for {what}")
        await pilot.pause(0.02)


def prepared(then: Callable[[Pilot[Any]], Awaitable[None]] | None = None, rows: int = 5,
             model_run: str | None = None) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A run_before: freeze the header clock, wait for the first scan (and the log replay),
    then run ``then``."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, LorchApp)
        app.query_one(Header).time_format = CLOCK
        table = app.query_one("#latest-table", DataTable)
        await poll(pilot, lambda: table.row_count == rows and app.selected is not None, "the first scan")
        if model_run is not None:
            await poll(pilot, lambda: app.model.run_id == model_run and app.model.status != "running",
                       "the log replay, to its run_finished line")

            def errors_shown() -> bool:  # the rescan after the replay has reached the table
                return all(cell(table, name, "last error") == code for name, code in app.model.last_errors.items()
                           if name in {str(k.value) for k in table.rows})

            await poll(pilot, lambda: errors_shown() and not app._scanning and not app._scan_pending
                       and not table._updated_cells and not table._require_update_dimensions,
                       "the errors of the replay in LATEST, with the column widths they need")
            await pilot.pause(0.1)  # and the table's new column widths are laid out
        if then is not None:
            await then(pilot)

    return run_before


class TestIdle:
    def test_fresh_workspace(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see every configured account in the vault tree with 0 runs, the LATEST
        table with "none"/"never" on every row in bold yellow (stale), an empty stage
        progress pane saying "no run yet: press R ...", an empty log, and the key footer."""
        app, _ = dashboard(scene.fresh_root())
        assert snap_compare(app, terminal_size=WIDE, run_before=prepared())

    def test_populated_workspace(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see the vault tree with run counts per account (acct1-personal: 3 runs),
        LATEST rows (the two mensio accounts told apart as "mensio (dataverse)" and
        "mensio (quickbooks)") aged 3h (dataverse/mensio 2d and highlighted as stale, quickbooks
        "none"), canon ✓/✗ flags, every name and state whole, a plot of acct1-personal's
        records per run with axes under the table, the run detail of its newest run, last
        night's cron run read back from the log in the progress pane (with its
        TAP_EXIT_NONZERO failure, uncut; the totals line starting "failed: 1 failed, 3 success"
        with the run id last) and no toast for it (the log's read-back never toasts a run that
        ended before the dashboard opened; the start's toast reads the run history, which this
        scene has none of: lorch_tui/lastrun.py, tests/tui/test_last_run_notice.py), the log
        tail with an ERROR line, and
        `q quit` and `? help` first in the footer."""
        app, _ = dashboard(scene.populate())
        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(model_run=scene.CRON_RUN))


class TestRunning:
    def test_mid_run(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see the stage progress pane of a dashboard run: two extract rows
        "running" on top (acct1-personal with a 59% bar, ben-mensio "working"), the
        intake-log extract and canonize rows "success", two queued rows below, and the totals
        line "run 20260105T101500Z-d4b9f0 (dashboard) running: 2 queued, 2 running, 2 success"."""
        app, fake = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            clock.now = 1000.0
            fake.emit(*scene.mid_run_events())
            await poll(pilot, lambda: app.model.run_id == scene.LIVE_RUN and len(app.model.tasks) == 6
                       and app.query_one("#progress-table", DataTable).row_count == 6, "the mid-run rows")
            clock.now = 1012.5  # 12.5 s later: elapsed and rates move once, then stay
            table = app.query_one("#progress-table", DataTable)
            await poll(pilot, lambda: cell(table, "extract:tap-gmail--acct1-personal", "elapsed") == " 12.5s",
                       "the elapsed times")

        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(go, model_run=scene.CRON_RUN))


class TestFailedTask:
    def test_failed_extract(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see the dataverse/mensio account selected (tree and LATEST), its run
        detail saying "status failed (TAP_EXIT_NONZERO)", the progress pane with one "failed"
        extract row showing TAP_EXIT_NONZERO whole, the totals "... (dashboard) failed: 1
        failed", TAP_EXIT_NONZERO in the LATEST row's "last error" column, and a red toast
        "run 20260105T101500Z-d4b9f0 failed" saying enter on the red row explains why."""
        app, fake = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            table = app.query_one("#latest-table", DataTable)
            table.focus()
            await pilot.press("down", "down")
            await poll(pilot, lambda: app.selected == "tap-dataverse--mensio", "the selection")
            fake.emit(*scene.failed_run_events())
            await poll(pilot, lambda: app.model.status == "failed" and app.model.run_id == scene.LIVE_RUN
                       and cell(table, "tap-dataverse--mensio", "last error") == "TAP_EXIT_NONZERO",
                       "the failure in LATEST")

        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(go, model_run=scene.CRON_RUN))


class TestHelp:
    def test_help_screen(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see the help modal over the dashboard: "lorchestra dashboard: keys",
        one line per key (e, c, i, r, R, x, X, v, /, s, f n N, [ ], enter, l d, H, z, tab,
        ctrl+p, ?, q) in a scrollable box, and a Close button."""
        app, _ = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            await pilot.press("question_mark")
            await poll(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.query("#help-close"),
                       "the help screen")

        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(go, model_run=scene.CRON_RUN))


class TestRunDetail:
    def test_verified_run(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see acct1-personal expanded in the vault tree with its three runs (newest
        first), the cursor on run 20260105T021500Z, and the run detail pane showing
        "status success", "214 records in 1 part", "STATE present", "checksums verified"
        (green) and "messages: 214"."""
        app, _ = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            await pilot.press("space", "down", "enter")
            detail = app.query_one(RunDetail)
            await poll(pilot, lambda: "checksums verified" in plain(detail.content), "the checksum verdict")

        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(go, model_run=scene.CRON_RUN))


class TestValidateModal:
    def test_validate_report(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see the validate modal with its verdict line in colour and the checklist
        printed by the real `lorchestra validate` for /tmp/lorch-snapshot/pipeline.yaml."""
        app, _ = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            await pilot.press("v")
            await poll(pilot, lambda: isinstance(app.screen, ValidateScreen)
                       and app.screen.query("#validate-report"), "the validate report", timeout=60)

        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(go, model_run=scene.CRON_RUN))


class TestSmallTerminal:
    def test_80x24(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see, at 80x24 with the vault focused, the vault tree and run detail wide
        and the LATEST and Stage progress panes collapsed to a strip on the right, six log
        lines, and a footer that starts with `q quit` and `? help`; nothing overlaps."""
        app, _ = dashboard(scene.populate())
        assert snap_compare(app, terminal_size=SMALL, run_before=prepared(model_run=scene.CRON_RUN))

    def test_80x24_latest_focused(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see, at 80x24 with the LATEST table focused, the right half wide: all
        five LATEST rows with whole account names (no plot at this height), the
        Stage progress rows of the cron run with TAP_EXIT_NONZERO uncut, the vault collapsed
        to a strip on the left, and `q quit` and `? help` in the footer."""
        app, _ = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            app.query_one("#latest-table", DataTable).focus()
            await pilot.pause(0.1)

        assert snap_compare(app, terminal_size=SMALL, run_before=prepared(go, model_run=scene.CRON_RUN))


class TestLargeTerminal:
    def test_200x50(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see every pane roomy at 200x50: the vault tree with whole run labels
        (run id, status, records, parts, size, ratio), the LATEST table with every column
        whole, a tall plot of acct1-personal's records per run with its axes and values, the
        stage progress of the cron run, and a long log tail."""
        app, _ = dashboard(scene.populate())
        assert snap_compare(app, terminal_size=(200, 50), run_before=prepared(model_run=scene.CRON_RUN))


class TestTaskDetail:
    def test_failed_task_detail(self, snap_compare: Any, clock: scene.FrozenClock) -> None:
        """You should see the task detail modal of extract:tap-dataverse--mensio: state failed,
        error TAP_EXIT_NONZERO with its meaning, exit code 1, attempts 1, duration 1.3s,
        40 records, the tap stderr path inside the vault run folder, no diagnostics file, the
        note that these files may hold PHI and open only in $PAGER, and a footer with l and d."""
        app, fake = dashboard(scene.populate())

        async def go(pilot: Pilot[Any]) -> None:
            fake.emit(*scene.failed_run_events())
            table = app.query_one("#progress-table", DataTable)
            await poll(pilot, lambda: app.model.run_id == scene.LIVE_RUN and app.model.status == "failed"
                       and table.row_count == 1, "the failed run")
            table.focus()
            await pilot.press("enter")
            await poll(pilot, lambda: isinstance(app.screen, TaskDetailScreen), "the task detail")

        assert snap_compare(app, terminal_size=WIDE, run_before=prepared(go, model_run=scene.CRON_RUN))
