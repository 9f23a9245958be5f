"""The dashboard under a damaged run history, and when it crashes: no local value is shown.

Textual's own crash report prints every frame's local variables, the config with its
extractors' ``env`` (API tokens) among them; the dashboard prints one line instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from lorch_tui.app import LorchApp
from lorch_tui.screens.history import HistoryScreen
from tests.helpers import run_cli
from tests.tui.conftest import Setup
from tests.tui.dash import cell, static_text, until
from tests.tui.fake_engine import FakeEngine

SIZE = (120, 35)
SECRET = "sk-live-canary-secretvalue"
SHOWN = SECRET.upper()  # the local's value: in no source line a traceback may quote


async def test_a_damaged_run_history_does_not_stop_the_dashboard(populated: Setup) -> None:
    (populated.workspace / "state" / "lorch.sqlite").write_bytes(b"xx" * 600)
    loaded = populated.load()
    app = LorchApp(loaded, FakeEngine(loaded), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.query_one("#latest-table", DataTable).row_count == 3,
                    what="the first workspace scan")
        await pilot.press("H")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen)
                    and "is damaged" in static_text(app.screen.query_one("#history-title", Static)),
                    what="the history screen to say the file is damaged")
    assert app.return_code in (0, None)


class Crashing(LorchApp):
    """The dashboard with one action that fails while a secret is a local value."""

    def action_boom(self) -> None:
        token = {"env": {"API_TOKEN": SECRET.upper()}}  # noqa: F841 - a local no report may show
        raise RuntimeError("boom")


@pytest.mark.parametrize("verbose", [False, True])
async def test_a_crash_shows_no_local_value(populated: Setup, verbose: bool,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    loaded = populated.load()
    app = Crashing(loaded, FakeEngine(loaded), watch=False, verbose=verbose)
    with pytest.raises(RuntimeError, match="boom"):
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.query_one("#latest-table", DataTable).row_count == 3,
                        what="the first workspace scan")
            app.call_later(app.action_boom)
            await pilot.pause(0.5)
    out, err = capfd.readouterr()
    text = out + err
    assert app.return_code == 1
    assert SHOWN not in text
    assert ("RuntimeError" in text) and (("action_boom" in text) == verbose), text
    assert verbose or "internal error (RuntimeError)" in text


def test_a_workspace_that_is_a_file_is_refused_before_the_dashboard_opens(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    res = run_cli("--workspace", str(tmp_path / "afile"), prog="lorch_tui.tui_main", timeout=60)
    assert res.returncode == 2 and "is a file" in res.stderr and "Traceback" not in res.stderr, res.stderr


async def test_a_damaged_latest_is_shown_as_damaged_not_as_never_extracted(populated: Setup) -> None:
    latest = next(populated.workspace.glob("vault/*/*/mail-alpha/LATEST.json"))
    latest.write_text("garbage{")
    loaded = populated.load()
    app = LorchApp(loaded, FakeEngine(loaded), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one("#latest-table", DataTable)
        await until(pilot, lambda: table.row_count == 3, what="the first workspace scan")
        assert cell(table, "mail-alpha", "LATEST run") == "damaged"
        assert cell(table, "clinic-bravo", "LATEST run") not in ("damaged", "none")
