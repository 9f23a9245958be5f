"""Pilot tests of the dashboard against a fake engine that replays scripted events.

A real config and a real workspace (filled by the real CLI) back every test; only the
engine is fake, so the vault tree, the LATEST table, run details and the log tail read real
files. One test drives the real demo engine end to end. Synchronisation is always a poll
of widget state with a deadline (``until``), never a sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import orjson
import pytest
from textual.widgets import DataTable, Input, Static

from engine.config.load import load as load_config
from engine.errors import WorkspaceBusy
from engine.events import TaskProgress
from engine.run.session import open_workspace
from engine.store.lock import WorkspaceLock
from engine.store.logsink import log_path
from engine.store.workspace import Workspace
from lorch_tui.app import LorchApp
from lorch_tui.model import RunModel
from lorch_tui.screens.modals import ConfirmScreen, FilterScreen, HelpScreen, ValidateScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.plot import RunPlot
from lorch_tui.widgets.progress import ProgressPane
from lorch_tui.widgets.vault import RunDetail, VaultTree
from tests.helpers import log_events, run_cli
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


def scripted_run_ended(app: LorchApp, fake: FakeEngine) -> bool:
    """The fake's latest run is the one on screen, and it has finished (not the log replay
    of today's CLI runs, which also ends in success)."""
    return app.model.run_id == fake.run_id and app.model.status == "success"


async def ready(pilot: Any, rows: int = 3) -> None:
    """Wait for the first scan (the LATEST table has its rows and an account is selected) and,
    when today's log has lines, for their replay into the progress pane."""
    app = pilot.app
    logged = log_path(app.ws.logs).exists()
    await until(pilot, lambda: latest_table(app).row_count == rows and app.selected is not None
                and (app.model.run_id is not None or not logged), what="the first workspace scan")


async def select_via_latest(pilot: Any, extractor: str) -> None:
    """Move the LATEST table's cursor (with keys) to ``extractor``'s row."""
    app = pilot.app
    table = latest_table(app)
    table.focus()
    await pilot.pause()
    for _ in range(table.row_count):
        here = app.query_one(LatestPane).selected()
        if here == extractor:
            break
        up = table.get_row_index(extractor) < table.get_row_index(here or "")
        await pilot.press("up" if up else "down")
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


async def test_todays_last_run_is_read_back_from_the_log(populated: Setup) -> None:
    """At start-up the progress pane shows the last run of the day (the CLI's, here), with
    each task's own duration from the log, not the instant the line was read."""
    events = log_events(populated.workspace)
    last_start = max(i for i, e in enumerate(events) if e["type"] == "run_started")
    done = {e["task_id"]: e for e in events[last_start:] if e["type"] == "task_finished"}
    assert list(done) == ["extract:mail-alpha"]
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = progress_table(app)
        await until(pilot, lambda: row_keys(table) == ["extract:mail-alpha"], what="the replayed task")
        ev = done["extract:mail-alpha"]
        assert cell(table, "extract:mail-alpha", "state") == "success"
        assert cell(table, "extract:mail-alpha", "elapsed") == f"{ev['duration_s']:5.1f}s"
        assert cell(table, "extract:mail-alpha", "records") == "20"
        totals = static_text(app.query_one("#progress-totals"))
        assert totals.startswith("success: ") and f"run {events[last_start]['run_id']} (cli)" in totals


async def test_a_run_by_another_process_shows_up_live(populated: Setup) -> None:
    """cron (here: the real CLI in a subprocess) runs while the dashboard watches: its progress
    comes in from the log, and the LATEST row moves when it ends."""
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = latest_table(app)
        before = cell(table, "clinic-bravo", "LATEST run")
        cron = asyncio.create_task(asyncio.to_thread(
            run_cli, "run", "--stage", "extract", "--account", "clinic-bravo", "--config", str(populated.config)))
        await until(pilot, lambda: app.model.trigger == "cli" and "extract:clinic-bravo" in app.model.tasks,
                    timeout=60, what="the other run's progress")
        res = await cron
        assert res.returncode == 0, res.stderr
        await until(pilot, lambda: app.model.status == "success"
                    and cell(progress_table(app), "extract:clinic-bravo", "state") == "success",
                    what="the other run's end")
        await until(pilot, lambda: cell(table, "clinic-bravo", "LATEST run") not in (before, "none"),
                    what="the LATEST row to move")
        assert fake.calls == []  # none of it went through the dashboard's engine


# -- keys that start work ------------------------------------------------------------------


@pytest.mark.parametrize(("key", "stages", "force"), [
    ("e", ["extract"], False),
    ("c", ["canonize"], True),
    ("i", ["index"], True),
    ("r", None, False),
])
async def test_stage_keys_start_that_stage_for_the_selected_account(
        populated: Setup, key: str, stages: list[str] | None, force: bool) -> None:
    app, fake = make_app(populated)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        await select_via_latest(pilot, "clinic-bravo")
        await pilot.press(key)
        await until(pilot, lambda: fake.starts(), what="a start call")
        [call] = fake.starts()
        assert (call.stages, call.accounts, call.force) == (stages, ["clinic-bravo"], force)
        what = "all" if stages is None else stages[0]
        await until(pilot, lambda: notes.find("starting", f"{what} clinic-bravo"), what="the starting note")
        # the replayed run reaches the progress pane, for that account only
        await until(pilot, lambda: scripted_run_ended(app, fake), what="the scripted run to end")
        rows = progress_table(app)
        await until(pilot, lambda: rows.row_count == (2 if stages is None else 1), what="progress rows")
        assert {app.model.tasks[k].extractor for k in app.model.tasks} == {"clinic-bravo"}


async def test_R_runs_everything(populated: Setup) -> None:
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: fake.starts(), what="a start call")
        [call] = fake.starts()
        assert (call.stages, call.accounts, call.force) == (None, None, False)
        await until(pilot, lambda: scripted_run_ended(app, fake), what="the scripted run to end")
        assert {t.extractor for t in app.model.tasks.values()} == set(NAMES)


async def test_lock_held_by_cron_is_a_notification_not_a_failure(populated: Setup) -> None:
    app, fake = make_app(populated)
    fake.start_error = WorkspaceBusy(
        f"the workspace {populated.workspace} is busy: pid 999 (lorch-tui --no-ui, since 02:15:00) holds its lock",
        hint="wait for that run to finish")
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        run_before = app.model.run_id
        await pilot.press("R")
        note = await until(pilot, lambda: notes.find("busy", "lorch-tui --no-ui"), what="the busy note")
        assert note.severity == "error" and note.title == "cannot start"
        assert "wait for that run" in note.message
        assert app.model.run_id == run_before and not fake.busy
        # the dashboard keeps working: another key still reaches the engine
        fake.start_error = None
        await pilot.press("e")
        await until(pilot, lambda: len(fake.starts()) == 2, what="the second start")
        await until(pilot, lambda: scripted_run_ended(app, fake), what="the run to end")


async def test_lock_held_by_another_process_with_the_real_engine(populated: Setup) -> None:
    """The same, with the real engine and a real lock (held here, as cron would)."""
    loaded = populated.load()
    app = LorchApp(loaded, watch=False)
    notes = Notes()
    lock = WorkspaceLock(Workspace(populated.workspace), command="lorch-tui --no-ui").acquire()
    try:
        async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
            await ready(pilot)
            await pilot.press("e")
            note = await until(pilot, lambda: notes.find("busy"), what="the busy note")
            assert "lorch-tui --no-ui" in note.message and note.severity == "error"
            assert not app.engine.busy
    finally:
        lock.release()


# -- cancel -------------------------------------------------------------------------------------


async def running(pilot: Any, fake: FakeEngine, task_id: str) -> None:
    app = pilot.app
    await until(pilot, lambda: task_id in fake.running_tasks and task_id in app.model.tasks
                and app.model.tasks[task_id].state == "running"
                and task_id in row_keys(progress_table(app)), what=f"{task_id} running")


@pytest.mark.parametrize("answer", ["y", "n"])
async def test_x_cancels_the_selected_running_task_after_confirmation(populated: Setup, answer: str) -> None:
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_via_latest(pilot, "clinic-bravo")
        await pilot.press("e")
        await running(pilot, fake, "extract:clinic-bravo")
        await pilot.press("x")
        screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                             what="the confirmation")
        assert screen.question == "Cancel extract:clinic-bravo?"
        await pilot.press(answer)
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the answer")
        if answer == "y":
            await until(pilot, lambda: fake.called("cancel"), what="the cancel call")
            assert [c.task_id for c in fake.called("cancel")] == ["extract:clinic-bravo"]
            await until(pilot, lambda: app.model.tasks["extract:clinic-bravo"].state == "cancelled",
                        what="the cancelled row")
        else:
            await settle(0.3)
            assert fake.called("cancel") == []
            assert app.model.tasks["extract:clinic-bravo"].state == "running"
            fake.release()
        await until(pilot, lambda: not fake.busy, what="the run to end")


async def test_x_from_the_latest_table_cancels_that_account_not_the_progress_cursor(populated: Setup) -> None:
    """With every account running, x on a LATEST row names that row's task."""
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        for name in NAMES:
            await running(pilot, fake, f"extract:{name}")
        await select_via_latest(pilot, "mail-alpha")  # the progress cursor sits on books-charlie
        assert app.focused is latest_table(app)
        await pilot.press("x")
        screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                             what="the confirmation")
        assert screen.question == "Cancel extract:mail-alpha?"
        await pilot.press("n")
        # from the progress pane, x takes the row under its cursor
        progress_table(app).focus()
        await pilot.press("down")
        task = app.query_one(ProgressPane).selected_task()
        await pilot.press("x")
        screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                             what="the confirmation")
        assert screen.question == f"Cancel {task}?"
        await pilot.press("y")
        await until(pilot, lambda: [c.task_id for c in fake.called("cancel")] == [task], what="the cancel")
        await until(pilot, lambda: app.model.tasks[task].state == "cancelled", what="the cancelled row")
        await fake.cancel_all()


async def test_x_without_a_running_task_says_so(populated: Setup) -> None:
    app, fake = make_app(populated)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        await pilot.press("x")
        await until(pilot, lambda: notes.find("no running task"), what="the warning")
        assert not isinstance(app.screen, ConfirmScreen) and fake.calls == []


# -- quit -------------------------------------------------------------------------------------


async def test_q_quits_at_once_when_idle(populated: Setup) -> None:
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_value == 0 and fake.calls == []


async def test_q_with_running_tasks_asks_then_cancels_them(populated: Setup) -> None:
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        for name in NAMES:
            await running(pilot, fake, f"extract:{name}")
        await pilot.press("q")
        screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                             what="the question")
        assert "A run is in progress" in screen.question
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the answer")
        assert app.return_code is None and fake.called("cancel_all") == [] and fake.busy
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await pilot.press("y")
        await until(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_value == 0
    assert len(fake.called("cancel_all")) == 1 and not fake.busy and fake.running_tasks == []


# -- validate, filter, help, focus ------------------------------------------------------------


async def test_v_shows_the_real_validate_report(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("v")
        report = await until(pilot, lambda: validate_report(app), timeout=60, what="the validate modal")
        screen = app.screen
        assert isinstance(screen, ValidateScreen)
        assert screen.code == 0, report
        assert str(populated.config) in report
        for name in NAMES:
            assert name in report
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ValidateScreen), what="the modal to close")
        # a folder others can read: validate says so (exit 4), and the modal shows it
        loose = populated.workspace / "vault"
        os.chmod(loose, 0o755)
        await pilot.press("v")
        report = await until(pilot, lambda: validate_report(app), timeout=60, what="the second report")
        assert app.screen.code == 4, report
        assert str(loose) in report


def validate_report(app: LorchApp) -> str | None:
    """The validate modal's report once it is on screen."""
    if not isinstance(app.screen, ValidateScreen):
        return None
    found = app.screen.query("#validate-report")
    return static_text(found.first()) if found else None


async def type_filter(pilot: Any, text: str) -> None:
    app = pilot.app
    pane = app.focused
    current = pane.filter_text if isinstance(pane, LogTail) else app.query_one(LatestPane).filter
    await pilot.press("slash")
    screen = await until(pilot, lambda: isinstance(app.screen, FilterScreen) and app.screen.query("#filter-input")
                         and app.screen, what="the filter prompt")
    field = screen.query_one("#filter-input", Input)
    assert field.value == current  # the prompt starts from the pane's current filter
    field.value = text  # (typing each key through Pilot is slow and tests Textual, not us)
    await pilot.press("enter")
    await until(pilot, lambda: not isinstance(app.screen, FilterScreen), what="the prompt to close")


async def test_slash_filters_the_latest_table_and_the_tree(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        latest_table(app).focus()
        await type_filter(pilot, "bra")
        assert row_keys(latest_table(app)) == ["clinic-bravo"]
        assert set(app.query_one(VaultTree)._accounts) == {"clinic-bravo"}  # noqa: SLF001
        await type_filter(pilot, "")
        assert row_keys(latest_table(app)) == NAMES
        assert set(app.query_one(VaultTree)._accounts) == set(NAMES)  # noqa: SLF001


async def test_slash_on_the_log_filters_by_level_and_account(populated: Setup) -> None:
    ws = Workspace(populated.workspace)
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        log = app.query_one(LogTail)
        await until(pilot, lambda: log.line_count > 5, what="the CLI run's log lines")
        # a failure written by "another process" (appended to today's log)
        with open(log_path(ws.logs), "ab") as fh:
            fh.write(orjson.dumps({"level": "error", **finished(TaskPlan(
                "extract", "books-charlie", "books-charlie", status="failed",
                error_code="TAP_EXIT_NONZERO")).model_dump(mode="json", exclude_none=True)}) + b"\n")
        await until(pilot, lambda: any("TAP_EXIT_NONZERO" in line for line in log.lines), what="the error line")
        assert any(" INFO " in line for line in log.lines)
        log.focus()
        await type_filter(pilot, "level:error")
        assert log.lines and all(" ERROR " in line for line in log.lines)
        assert any("books-charlie" in line for line in log.lines)
        await type_filter(pilot, "account:clinic")
        assert log.lines and all("clinic-bravo" in line for line in log.lines)
        await type_filter(pilot, "")
        assert any("mail-alpha" in line for line in log.lines)


async def test_tab_moves_focus_through_the_panes(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        seen = [app.focused.id if app.focused else None]
        for _ in range(5):
            await pilot.press("tab")
            seen.append(app.focused.id if app.focused else None)
        # Run detail takes focus too, so a long summary scrolls with the keys
        assert seen == ["vault", "run-detail", "latest-table", "progress-table", "log", "vault"]
        await pilot.press("shift+tab")
        assert app.focused is app.query_one(LogTail)


async def test_question_mark_opens_help(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        screen = await until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.query(Static)
                             and app.screen, what="help")
        text = static_text(screen.query_one(Static))
        for key in ("extract the selected account", "run everything", "cancel", "validate", "filter", "quit"):
            assert key in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help to close")


# -- selection ----------------------------------------------------------------------------------


async def test_moving_in_the_latest_table_moves_the_tree(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for name in ("books-charlie", "clinic-bravo"):
            await select_via_latest(pilot, name)
            await until(pilot, lambda n=name: tree_extractor(app) == n, what=f"tree cursor on {name}")
            assert app.query_one(VaultTree).cursor_node.data.kind == "account"
            assert static_text(app.query_one(RunDetail)).startswith(name)
            plot = app.query_one(RunPlot)
            assert plot.account == name and [p.records for p in plot.data] == [20]


async def test_moving_in_the_tree_moves_the_latest_table(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        tree = app.query_one(VaultTree)
        tree.focus()
        assert tree_extractor(app) == "mail-alpha"
        for _ in range(6):  # past the domain and source nodes to the next account
            await pilot.press("down")
            if tree_extractor(app) not in (None, "mail-alpha"):
                break
        assert tree_extractor(app) == "clinic-bravo"
        await until(pilot, lambda: app.query_one(LatestPane).selected() == "clinic-bravo",
                    what="the LATEST cursor")
        assert app.selected == "clinic-bravo"


async def test_highlighting_a_run_shows_its_manifest_and_enter_verifies_it(populated: Setup) -> None:
    app, _ = make_app(populated)
    acct = populated.workspace / "vault" / "email" / "gmail" / "mail-alpha"
    runs = sorted(p.name.removeprefix("run_id=") for p in acct.glob("dt=*/run_id=*"))
    assert len(runs) == 2
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        tree = app.query_one(VaultTree)
        tree.focus()
        await pilot.press("space", "down")  # expand mail-alpha, onto its newest run
        detail = app.query_one(RunDetail)
        await until(pilot, lambda: runs[1] in static_text(detail), what="the newest run's detail")
        text = static_text(detail)
        assert "status success" in text and "20 records in 1 part," in text
        assert "STATE present" in text and "not verified" in text and "messages: 20" in text
        await pilot.press("down")  # the older run
        await until(pilot, lambda: runs[0] in static_text(detail), what="the older run's detail")
        assert app.selected == "mail-alpha"
        await pilot.press("enter")
        await until(pilot, lambda: "checksums verified" in static_text(detail), what="the verdict")
        assert runs[0] in static_text(detail)


async def test_enter_on_a_tampered_run_does_not_say_verified(populated: Setup) -> None:
    app, _ = make_app(populated)
    acct = populated.workspace / "vault" / "email" / "gmail" / "mail-alpha"
    newest = sorted(acct.glob("dt=*/run_id=*"))[-1]
    part = next(newest.glob("part-*.jsonl.gz"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.query_one(VaultTree).focus()
        await pilot.press("space", "down", "enter")
        detail = app.query_one(RunDetail)
        await until(pilot, lambda: "checksums 1 part(s)" in static_text(detail), what="the verdict")
        verdict = static_text(detail).split("checksums", 1)[1].split("\n")[0]
        assert "verified" not in verdict and f"{part.name} CHECKSUM_MISMATCH" in verdict  # which part


@pytest.mark.parametrize("manifest", [{"status": "success", "records": "lots", "streams": 5},
                                      {"status": "success", "records": 20, "parts": ["part-000.jsonl.gz"]},
                                      {"status": "success", "records": 20, "parts": []}])
async def test_enter_on_a_run_with_a_manifest_verify_refuses_does_not_say_verified(
        populated: Setup, manifest: dict[str, Any]) -> None:
    """A manifest without its list of parts had nothing to re-hash, and so said "verified"
    where `lorchestra verify` says MANIFEST_INVALID."""
    app, _ = make_app(populated)
    acct = populated.workspace / "vault" / "email" / "gmail" / "mail-alpha"
    newest = sorted(acct.glob("dt=*/run_id=*"))[-1]
    (newest / "manifest.json").write_text(json.dumps(manifest))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.query_one(VaultTree).focus()
        await pilot.press("space", "down", "enter")
        detail = app.query_one(RunDetail)
        await until(pilot, lambda: "MANIFEST_INVALID" in static_text(detail), what="the verdict")
        assert "checksums verified" not in static_text(detail)


# -- scripted events -----------------------------------------------------------------------------


async def test_scripted_events_fill_the_progress_pane(populated: Setup) -> None:
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_via_latest(pilot, "clinic-bravo")
        await pilot.press("r")
        table = progress_table(app)
        totals = app.query_one("#progress-totals")
        ex, cz = "extract:clinic-bravo", "canonize:clinic-bravo"
        await until(pilot, lambda: row_keys(table) == [ex, cz], what="two rows, running first")
        assert [cell(table, k, "state") for k in (ex, cz)] == ["running", "queued"]
        assert cell(table, ex, "account") == "clinic-bravo"
        await until(pilot, lambda: cell(table, ex, "records") == "10",  # counters: at most 4 Hz
                    what="the running task's count")
        assert cell(table, ex, "progress") == "working"
        text = static_text(totals)
        assert text.startswith("running: ") and "run 20260101T000000Z-fake01 (dashboard)" in text
        assert "1 queued, 1 running" in text
        fake.release()
        await until(pilot, lambda: [cell(table, k, "state") for k in (ex, cz)] == ["success", "success"],
                    what="both tasks done")
        assert cell(table, ex, "records") == "20"
        await until(pilot, lambda: "success: 2 success · 20 records extracted" in static_text(totals),
                    what="the totals")


async def test_progress_with_a_total_shows_a_bar(populated: Setup) -> None:
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        fake.emit(*task_script("20260101T000000Z-bar", [TaskPlan("extract", "mail-alpha", "mail-alpha", hold=True,
                                                                  records=400, total=400)])[:4])
        table = progress_table(app)
        await until(pilot, lambda: "extract:mail-alpha" in row_keys(table)
                    and cell(table, "extract:mail-alpha", "progress").endswith(" 50%"), what="a half-full bar")
        assert cell(table, "extract:mail-alpha", "records") == "200"
        fake.emit(TaskProgress(task_id="extract:mail-alpha", stage="extract", extractor="mail-alpha",
                               records=400, total=400))
        await until(pilot, lambda: cell(table, "extract:mail-alpha", "progress") == "██████ 100%",
                    what="a full bar")


async def test_the_project_task_shows_its_phase_while_it_runs(populated: Setup) -> None:
    """A task of several steps (the project task) names the one it is in beside its state,
    and its bar counts that step's items; once it ended the state stands alone."""
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        tid = "project:clients"
        fake.emit(*task_script("20260101T000000Z-phase", [TaskPlan("project", "clients", "all", hold=True,
                                                                    records=0, total=None)])[:4])
        table = progress_table(app)
        await until(pilot, lambda: tid in row_keys(table) and cell(table, tid, "state") == "running",
                    what="the project task running")
        fake.emit(TaskProgress(task_id=tid, stage="project", extractor="clients", records=300, total=1200,
                               phase="resolve"))
        await until(pilot, lambda: cell(table, tid, "state") == "running · resolve"
                    and cell(table, tid, "progress").endswith(" 25%"), what="the resolve phase at 25%")
        fake.emit(TaskProgress(task_id=tid, stage="project", extractor="clients", records=0, total=None,
                               phase="tables"))
        await until(pilot, lambda: cell(table, tid, "state") == "running · tables"
                    and cell(table, tid, "progress") == "working", what="the tables phase, no count")
        fake.emit(finished(TaskPlan("project", "clients", "all", records=1200)))
        await until(pilot, lambda: cell(table, tid, "state") == "success", what="the phase gone once ended")


async def test_a_failed_task_shows_its_error_code_in_latest(populated: Setup) -> None:
    outcome = {"status": "failed"}

    def script(eng: FakeEngine, stages: list[str], accounts: list[str]) -> list[Any]:
        plans = [TaskPlan(s, a, a, status=outcome["status"], error_code="TAP_EXIT_NONZERO")
                 for a in accounts for s in stages]
        return task_script(eng.new_run_id(), plans)

    app, fake = make_app(populated, script=script)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_via_latest(pilot, "books-charlie")
        await pilot.press("e")
        table = latest_table(app)
        await until(pilot, lambda: cell(table, "books-charlie", "last error") == "TAP_EXIT_NONZERO",
                    what="the error code in LATEST")
        assert cell(table, "mail-alpha", "last error") == ""
        progress = progress_table(app)
        assert cell(progress, "extract:books-charlie", "state") == "failed"
        assert cell(progress, "extract:books-charlie", "progress") == "TAP_EXIT_NONZERO"
        assert "failed" in static_text(app.query_one("#progress-totals"))
        outcome["status"] = "success"  # a later success clears it
        await pilot.press("e")
        await until(pilot, lambda: cell(table, "books-charlie", "last error") == "", what="the error to clear")


# -- live config reload -------------------------------------------------------------------------


async def test_a_bad_config_file_keeps_the_old_config(populated: Setup) -> None:
    app, fake = make_app(populated, watch=True)
    notes = Notes()
    good = populated.config.read_text()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        before = app.loaded

        async def write_until(text: str, *words: str) -> Any:
            # the watcher may start after the first write: write again until it is noticed
            for _ in range(40):
                populated.config.write_text(text)
                for _ in range(25):
                    note = notes.find(*words)
                    if note:
                        return note
                    await pilot.pause(0.02)
            raise AssertionError(f"no notification with {words}: {notes.texts()}")

        note = await write_until("pipeline: {name: [unclosed\n", "the old one stays in force")
        assert note.severity == "error" and "invalid YAML" in note.message
        assert str(populated.config) in note.message
        assert app.loaded is before and fake.called("reconfigure") == []
        await pilot.press("e")  # the app keeps working on the old config
        await until(pilot, lambda: fake.starts(), what="the start call")
        assert fake.starts()[0].accounts == ["mail-alpha"]
        # a valid config with a fourth extractor is taken
        extra = good.replace("extractors:\n", "extractors:\n- name: sheet-delta\n  domain: ops\n  source: sheets\n"
                             "  account: sheet-delta\n  kind: demo\n  demo: {tap: sheets, records: 5, seed: 4}\n", 1)
        note = await write_until(extra, "config reloaded")
        assert "4 extractors" in note.message
        [call] = fake.called("reconfigure")
        assert call.loaded is app.loaded and len(app.loaded.config.extractors) == 4
        await until(pilot, lambda: latest_table(app).row_count == 4, what="the new LATEST row")
        await until(pilot, lambda: not fake.busy, what="the run to end")


# -- a flood of events --------------------------------------------------------------------------


class CountingModel(RunModel):
    """The app's model, counting the events folded in."""

    applied = 0

    def apply(self, events: list[Any], foreign: bool = False) -> bool:
        self.applied += len(events)
        return super().apply(events, foreign)


class ProbeApp(LorchApp):
    """Notes, each time the help key's handler runs, whether the flood was still pouring."""

    during_flood: list[bool]

    def action_help(self) -> None:
        flood = self.engine.flood_task  # type: ignore[attr-defined]
        self.during_flood.append(flood is not None and not flood.done())
        super().action_help()


async def test_a_flood_of_events_is_all_applied_and_keys_still_work(populated: Setup) -> None:
    """10k events/s for about two seconds while keys are pressed: every event reaches the
    model, the last counts reach the screen, and every key's handler ran during the flood."""
    loaded = populated.load()
    fake = FakeEngine(loaded, script=lambda eng, stages, accounts: [])
    app = ProbeApp(loaded, fake, watch=False)
    app.during_flood = []
    app.model = model = CountingModel()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        start_count = model.applied
        fake.flood(10_000, 120.0, NAMES)  # stopped below, once the keys have been pressed
        await until(pilot, lambda: fake.flood_sent > 1000, what="the flood to begin")
        presses, began = 0, time.monotonic()
        while presses < 1 or time.monotonic() - began < 1.5:
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help during the flood")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help to close")
            await pilot.press("e")
            presses += 1
        await fake.stop_flood()
        total = fake.flood_sent
        assert total > 10_000
        await until(pilot, lambda: model.applied - start_count == total, timeout=30,
                    what=f"all {total} flood events applied")
        assert app.during_flood == [True] * presses, "a key's handler ran only after the flood"
        assert len(fake.starts()) == presses  # and so did every e
        table = progress_table(app)
        for name in NAMES:
            want = fake.flood_counts[name]
            assert app.model.tasks[f"extract:{name}"].records == want
            await until(pilot, lambda n=name, w=want: cell(table, f"extract:{n}", "records") == f"{w:,}",
                        what=f"{name}'s final count on screen")


# -- the real engine ---------------------------------------------------------------------------


async def test_R_with_the_real_demo_engine_makes_every_row_fresh(fresh: Setup) -> None:
    """The real engine (demo taps as subprocesses) behind the dashboard, from an empty workspace."""
    from tests.tui.dash import dashboard_config

    cfg = dashboard_config(fresh.config.parent, records=30)
    loaded = load_config(cfg)
    open_workspace(loaded)  # as lorch-tui does before it opens the dashboard
    app = LorchApp(loaded, watch=True)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        table = latest_table(app)
        assert all(cell(table, name, "LATEST run") == "none" for name in NAMES)
        await pilot.press("R")
        await until(pilot, lambda: app.engine.busy or app.model.run_id, what=f"the run to start ({notes.texts()})")

        def fresh_rows() -> bool:
            return all(cell(table, n, "LATEST run")[:8].isdigit() and cell(table, n, "records") == "30"
                       and cell(table, n, "canon") == "✓" for n in NAMES)

        await until(pilot, fresh_rows, timeout=90, what=f"every LATEST row fresh (notes: {notes.texts()})")
        await until(pilot, lambda: not app.engine.busy and app.model.status != "running", timeout=60,
                    what="the run to end")
        assert app.model.status == "success", static_text(app.query_one("#progress-totals"))
        assert app.model.records == 30 * len(NAMES)
        assert {t.extractor for t in app.model.tasks.values()} == set(NAMES)
        assert all(t.state == "success" for t in app.model.tasks.values())
        assert all(cell(table, n, "last error") == "" for n in NAMES)
        tree = app.query_one(VaultTree)
        await until(pilot, lambda: all("1 run" in str(node.label) for node in tree._accounts.values()),  # noqa: SLF001
                    what="one run per account in the tree")
        log = app.query_one(LogTail)
        await until(pilot, lambda: any("run_finished" in line for line in log.lines), what="the log tail")


def test_a_retried_extract_counts_its_last_attempt_only() -> None:
    """Stage progress said 750 records extracted where `status` and the history said 730:
    the failed first attempt's 20 records were added to the successful second's."""
    from engine.events import RunStarted, TaskFinished, TaskStarted

    model = RunModel()

    def attempt(n: int, status: str, records: int) -> list[Any]:
        return [TaskStarted(task_id="extract:f", stage="extract", extractor="f", account="f", attempt=n, pid=1),
                TaskFinished(task_id="extract:f", stage="extract", extractor="f", account="f", status=status,
                             attempt=n, records=records, duration_s=0.1,
                             error_code="TAP_EXIT_NONZERO" if status == "failed" else None)]

    model.apply([RunStarted(run_id="r1", trigger="cli", tasks=1, stages=["extract"], pipeline="t")])
    model.apply(attempt(1, "failed", 20))
    assert (model.records, model.failed) == (20, 1)
    model.apply(attempt(2, "success", 730))
    assert (model.records, model.failed) == (730, 0)
    model.apply(attempt(3, "failed", 5))  # a task that ends failed after all counts once
    assert (model.records, model.failed) == (5, 1)


def test_the_totals_count_running_extracts_and_elapsed_time_is_the_event_s() -> None:
    """The totals line said 0 records for the whole run while the rows counted, and a second
    dashboard (or one reading a cron run) timed a task from when it read `task_started`."""
    from datetime import UTC, datetime, timedelta

    from engine.events import RunStarted, TaskFinished, TaskProgress, TaskStarted
    from lorch_tui.widgets.progress import totals_text

    model = RunModel()
    ago = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    model.apply([RunStarted(run_id="r1", trigger="cli", tasks=2, stages=["extract"], pipeline="t", ts=ago),
                 TaskStarted(task_id="extract:a", stage="extract", extractor="a", account="a", attempt=1, pid=1,
                             ts=ago),
                 TaskProgress(task_id="extract:a", stage="extract", extractor="a", records=120),
                 TaskStarted(task_id="extract:b", stage="extract", extractor="b", account="b", attempt=1, pid=2),
                 TaskFinished(task_id="extract:b", stage="extract", extractor="b", account="b", status="success",
                              attempt=1, records=7, duration_s=0.1)], foreign=True)  # read back from the log
    assert model.extracted() == 127
    assert "127 records extracted" in totals_text(model).plain
    assert 29 <= model.tasks["extract:a"].elapsed <= 60


def test_a_finished_task_s_bar_is_full_whatever_total_was_announced() -> None:
    """A demo tap's configured count is announced as the total: a task that wrote fewer
    records and succeeded showed `██░░░░ 40%`."""
    from lorch_tui.model import TaskRow
    from lorch_tui.widgets.progress import bar

    row = TaskRow("extract:first-visit", "extract", "first-visit", "first-visit", state="success", records=8, total=20)
    assert bar(row).plain == "██████ ok"
    row.state = "running"
    assert bar(row).plain.endswith(" 40%")


def test_a_run_without_extract_counts_its_own_stage_in_the_totals() -> None:
    """A `c`, `i` or `p` run said "0 records extracted" in Stage progress while the log line,
    the history and `status` counted what it canonized, indexed or linked."""
    from engine.events import RunStarted, TaskFinished, TaskProgress, TaskStarted
    from lorch_tui.widgets.progress import totals_text

    def finished(stage: str, records: int) -> TaskFinished:
        return TaskFinished(task_id=f"{stage}:a", stage=stage, extractor="a", account="a", status="success",
                            attempt=1, records=records, duration_s=0.1)

    model = RunModel()
    model.apply([RunStarted(run_id="r1", trigger="dashboard", tasks=2, stages=["canonize", "index"], pipeline="t"),
                 finished("canonize", 40), finished("index", 39)])
    assert "39 records indexed" in totals_text(model).plain  # as the log line: the last stage's
    model.apply([RunStarted(run_id="r2", trigger="dashboard", tasks=1, stages=["project"], pipeline="t"),
                 TaskStarted(task_id="project:clients", stage="project", extractor="clients", account="all",
                             attempt=1, pid=1),
                 TaskProgress(task_id="project:clients", stage="project", extractor="clients", records=12)])
    assert "12 links to clients" in totals_text(model).plain  # a running task's live count
    model.apply([RunStarted(run_id="r3", trigger="dashboard", tasks=2, stages=["extract", "canonize"], pipeline="t"),
                 finished("extract", 50), finished("canonize", 48)])
    assert "50 records extracted" in totals_text(model).plain  # a run that extracts, as always
