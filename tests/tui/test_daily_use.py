"""Pilot tests of the dashboard as a daily tool (issue 17): no freezes, failures explained,
readable at every size, and the k9s/lazygit comforts (palette, history, find, sort, plot).

Real config, real workspace filled by the real CLI, and where it matters the real engine
(a real failing tap, a real permission walk made slow on purpose). Synchronisation is a
poll with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

import engine.run.session
from engine.errors import disk_full
from engine.events import RunStarted, TaskStarted
from engine.store.logsink import log_path
from lorch_tui import watch
from lorch_tui.app import LorchApp
from lorch_tui.screens.history import HistoryScreen
from lorch_tui.screens.modals import ConfirmScreen, FilterScreen
from lorch_tui.screens.taskdetail import TaskDetailScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.plot import RunPlot
from lorch_tui.widgets.progress import ProgressPane
from tests.helpers import demo_extractor, write_config
from tests.tui.conftest import Setup
from tests.tui.dash import MAPPINGS, Notes, cell, row_keys, static_text, until
from tests.tui.fake_engine import FakeEngine, Script, TaskPlan, task_script

SIZE = (120, 35)


def make_app(setup: Setup, **fake: Any) -> tuple[LorchApp, FakeEngine]:
    loaded = setup.load()
    eng = FakeEngine(loaded, **fake)
    return LorchApp(loaded, eng, watch=False), eng


def alone_with(make: Callable[[], Widget]) -> type[App[None]]:
    """An app holding one widget, to test that widget by itself."""
    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield make()
    return One


async def ready(pilot: Any, rows: int = 3) -> None:
    app = pilot.app
    logged = log_path(app.ws.logs).exists()
    await until(pilot, lambda: app.query_one("#latest-table", DataTable).row_count == rows
                and app.selected is not None and (app.model.run_id is not None or not logged),
                what="the first workspace scan")


def slow_permission_walk(monkeypatch: pytest.MonkeyPatch, seconds: float) -> dict[str, float]:
    """Make the workspace permission walk take ``seconds`` (a 300,000-file workspace), in
    whatever thread it runs; record when it ran."""
    real = engine.run.session.check_permissions
    seen: dict[str, float] = {}

    def slow(root: Path, limit: int = 20) -> None:
        seen["start"] = time.monotonic()
        time.sleep(seconds)
        real(root, limit)
        seen["end"] = time.monotonic()

    monkeypatch.setattr(engine.run.session, "check_permissions", slow)
    return seen


# -- freezes and hangs ------------------------------------------------------------------------


async def test_ctrl_q_during_a_run_asks_then_cancels_and_quits(populated: Setup) -> None:
    """ctrl+q takes the q path: a question first, and only yes cancels (every task) and quits."""
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: fake.running_tasks, what="running tasks")
        await pilot.press("ctrl+q")
        screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                             what="the quit question")
        assert "A run is in progress" in screen.question
        await pilot.press("ctrl+q")  # a second ctrl+q does not stack a second question
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="the answer")
        assert fake.busy and not fake.called("cancel_all")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await pilot.press("y")
        await until(pilot, lambda: fake.called("cancel_all") and not fake.busy, what="the cancel")
    assert app.return_value == 0
    assert all(fake._statuses[t] == "cancelled" for t in fake._statuses if t.startswith("extract:"))


@pytest.mark.parametrize("sig", ["SIGHUP", "SIGTERM"])
async def test_a_closed_terminal_cancels_the_run_records_it_and_quits(populated: Setup, sig: str) -> None:
    """SIGHUP (the window closed, the ssh session dropped) or SIGTERM killed the dashboard:
    the run stayed `running` in the history and no hook ran. Now nobody is asked: cancel,
    record, exit 130."""
    import os
    import signal

    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: fake.running_tasks, what="running tasks")
        assert app.run_control._hup_loop is not None, "the handler is in place (else the signal ends pytest)"
        os.kill(os.getpid(), getattr(signal, sig))
        await until(pilot, lambda: fake.called("cancel_all") and not fake.busy, what="the cancel")
    assert app.return_value == 130
    assert all(fake._statuses[t] == "cancelled" for t in fake._statuses if t.startswith("extract:"))
    assert app.run_control._hup_loop is None, "the signals are given back when the app ends"


async def test_the_palette_quit_takes_the_q_path_too(populated: Setup) -> None:
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: fake.running_tasks, what="running tasks")
        await app.action_quit()  # what Textual's own Quit (palette, ctrl+q) calls
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the quit question")
        assert app.is_running


async def test_a_run_starts_visibly_at_once_while_the_permission_walk_runs(
        populated: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real engine: the walk takes 4 s in a thread; the key answers within 100 ms and
    the app keeps ticking (another key works) while it runs; then the run really happens."""
    loaded = populated.load()
    app = LorchApp(loaded, watch=False)
    notes = Notes()
    stamps: dict[str, float] = {}

    def hook(message: Message) -> None:
        notes.hook(message)
        if isinstance(message, events.Key) and message.key == "e":
            stamps.setdefault("key", time.monotonic())
        if isinstance(message, Notify) and "starting" in message.notification.message:
            stamps.setdefault("toast", time.monotonic())

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await ready(pilot)
        await app.workers.wait_for_complete()  # the first scan's work is done: a steady state
        await pilot.pause(0.2)  # and its repaint
        seen = slow_permission_walk(monkeypatch, 4)
        before = app.model.run_id
        await pilot.press("e")
        note = await until(pilot, lambda: notes.find("starting", "extract"), timeout=1, what="the toast")
        assert stamps["toast"] - stamps["key"] < 0.1, "the start was not visible within 100 ms"
        assert "checking the workspace" in static_text(app.query_one("#progress-totals", Static))
        assert note is not None and "end" not in seen
        await pilot.press("question_mark")  # the UI is alive while the walk runs
        await until(pilot, lambda: app.screen.__class__.__name__ == "HelpScreen", timeout=1,
                    what="help during the walk")
        assert "end" not in seen
        await pilot.press("escape")
        await pilot.press("R")  # a second start while the first is starting is refused, said so
        await until(pilot, lambda: notes.find("already in progress"), timeout=1, what="the refusal")
        await until(pilot, lambda: app.model.run_id != before and app.model.status == "success",
                    timeout=60, what="the real run to end")
        assert "end" in seen


async def test_first_paint_comes_before_the_workspace_check(
        populated: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = slow_permission_walk(monkeypatch, 1.5)
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        # the panes are there and the LATEST table fills while the walk still runs
        await ready(pilot)
        assert "end" not in seen
        await until(pilot, lambda: "end" in seen and app.watch_state == "" and app.workspace_problem is None,
                    what="the check to end")


async def test_a_workspace_that_fails_the_check_is_said_and_runs_are_refused(populated: Setup) -> None:
    os.chmod(populated.workspace, 0o755)
    app, fake = make_app(populated)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        note = await until(pilot, lambda: notes.find("workspace check failed"), what="the check")
        assert note.severity == "error" and "others can read" in note.message
        assert "WORKSPACE CHECK FAILED" in app.sub_title
        os.chmod(populated.workspace, 0o700)  # fixed: the next run's own start check passes
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: "WORKSPACE CHECK FAILED" not in app.sub_title, what="the header to clear")


async def test_the_watcher_watches_only_state_and_the_config_file(populated: Setup) -> None:
    app, _ = make_app(populated)
    assert watch.watched_paths(app) == [populated.workspace / "state", populated.config.parent]


async def test_a_config_edit_is_noticed_without_watching_the_vault(populated: Setup) -> None:
    """A big unrelated tree next to the config is not watched; an edit of the config is."""
    for i in range(200):
        (populated.config.parent / "big" / f"d{i}").mkdir(parents=True)
    loaded = populated.load()
    fake = FakeEngine(loaded)
    app = LorchApp(loaded, fake, watch=True)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        await until(pilot, lambda: app.watch_state == "live", what="the watcher")
        text = populated.config.read_text().replace("version: '1'", "version: '2'")
        deadline = time.monotonic() + 20
        while not fake.called("reconfigure") and time.monotonic() < deadline:
            populated.config.write_text(text)  # the watcher may start after the first write
            await pilot.pause(0.5)
        assert fake.called("reconfigure")
        await until(pilot, lambda: app.title.endswith(" 2"), what="the header to show the new version")


async def test_a_watcher_failure_is_reported(populated: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "inotify watch limit reached")
        yield  # an async generator, like watchfiles.awatch

    monkeypatch.setattr(watch, "awatch", broken)
    loaded = populated.load()
    app = LorchApp(loaded, FakeEngine(loaded), watch=True)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        note = await until(pilot, lambda: notes.find("live refresh stopped"), what="the report")
        assert "inotify watch limit reached" in note.message and note.severity == "error"
        assert "live refresh OFF" in app.sub_title


# -- failures explained -------------------------------------------------------------------------


@pytest.fixture
def failing(tmp_path: Path) -> Setup:
    """One account whose tap writes 5 records, then exits with code 3."""
    exs = [demo_extractor("bad-mail", "gmail", records=20, seed=3, retries=0, timeout_s=60,
                          faults={"fail_after": 5, "exit_code": 3})]
    cfg = write_config(tmp_path, exs, stages={"canonize": {"mappings": MAPPINGS[:1]}})
    return Setup(cfg, tmp_path / "ws")


async def test_a_failed_tap_is_toasted_and_explained_in_the_task_detail(failing: Setup) -> None:
    loaded = failing.load()
    app = LorchApp(loaded, watch=False)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot, rows=1)
        await pilot.press("e")
        note = await until(pilot, lambda: notes.find("failed", "enter"), timeout=60, what="the failed toast")
        assert note.severity == "error" and "run " in (note.title or "")
        table = app.query_one(ProgressPane).table
        assert cell(table, "extract:bad-mail", "progress") == "TAP_EXIT_NONZERO"  # never cut
        table.focus()
        await pilot.pause()
        table.move_cursor(row=table.get_row_index("extract:bad-mail"))
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, TaskDetailScreen) and app.screen,
                             what="the task detail")
        text = static_text(screen.query_one("#task-detail", Static))
        assert "TAP_EXIT_NONZERO" in text and "non-zero code" in text  # the code and its meaning
        assert "exit code  3" in text and "attempts  1" in text
        assert "records  5" in text
        assert screen.stderr is not None and screen.stderr.is_file()
        assert str(screen.stderr) in text and screen.stderr.name == "tap.stderr.log"
        assert "may hold PHI" in text
        # the pager needs a real terminal: headless, the app says where the file is instead
        await pilot.press("l")
        note = await until(pilot, lambda: notes.find("$PAGER"), what="the pager note")
        assert str(screen.stderr) in note.message
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TaskDetailScreen), what="back")


def _disk_full_script(fake: FakeEngine, stages: list[str], accounts: list[str]) -> Script:
    """mail-alpha runs out of space; the others succeed."""
    return task_script(fake.new_run_id(), [
        TaskPlan("extract", a, fake.account_of(a), status="failed" if a == "mail-alpha" else "success",
                 error_code="DISK_FULL" if a == "mail-alpha" else None) for a in accounts])


def _disk_full_toasts(notes: Notes) -> list[Notification]:
    return [n for n in notes.items if "DISK_FULL" in n.message or "disk is full" in (n.title or "")]


async def test_a_run_that_fills_the_disk_says_so_in_one_error_toast(populated: Setup) -> None:
    """A task ending DISK_FULL: one error toast naming the workspace, with the CLI's words
    (space left, what to do), instead of the generic failed-run toast."""
    app, fake = make_app(populated, script=_disk_full_script)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        await pilot.press("R")
        note = await until(pilot, lambda: notes.find("DISK_FULL"), what="the disk-full toast")
        assert note.severity == "error"
        assert note.title == f"run {fake.run_id} failed: the disk is full"
        assert f"the file system of {populated.workspace} is full (" in note.message
        assert " free of " in note.message and "free space" in note.message  # how much, and what to do
        free = re.compile(r"\((?:[^)]* free of [^)]*|free space unknown)\)")  # may change meanwhile
        assert free.sub("()", note.message) == free.sub("()", disk_full(populated.workspace).render())
        await until(pilot, lambda: not fake.busy, what="the run to end")
        await pilot.pause(0.3)  # nothing else may follow: one toast, not a second failed-run toast
    assert len(_disk_full_toasts(notes)) == 1
    assert notes.find("task(s) failed") is None


async def test_a_run_level_disk_full_without_a_task_code_is_said_too(populated: Setup) -> None:
    """The log or the state database ran out (no task carries the code): the same toast."""
    app, fake = make_app(populated)
    fake.run_error_code = "DISK_FULL"
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        await pilot.press("e")
        note = await until(pilot, lambda: notes.find("DISK_FULL"), what="the disk-full toast")
        assert note.severity == "error" and str(populated.workspace) in note.message
        assert all(row.error_code != "DISK_FULL" for row in app.model.tasks.values())
        await pilot.pause(0.3)
    assert len(_disk_full_toasts(notes)) == 1 and notes.find("task(s) failed") is None


async def test_x_on_a_run_of_another_process_names_its_pid(populated: Setup) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (populated.workspace / "state" / "lock").write_text(f"{sleeper.pid} 2026-01-01T00:00:00Z lorch-tui --no-ui\n")
        app, fake = make_app(populated)
        notes = Notes()
        async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
            await ready(pilot)
            await until(pilot, lambda: app.snapshot and app.snapshot.lock_holder, what="the lock holder")
            app.model.apply([RunStarted(run_id="20260101T000000Z-cron01", trigger="cron", pipeline="t",
                                        stages=["extract"], tasks=1)])
            await pilot.press("x")
            note = await until(pilot, lambda: notes.find(f"pid {sleeper.pid}"), what="the pid")
            assert f"kill -INT {sleeper.pid}" in note.message
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_the_progress_cursor_stays_on_its_task_when_rows_re_sort(populated: Setup) -> None:
    """x acts on the task the user sees: a queued row that starts moves up, the cursor with it."""
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: len(fake.running_tasks) == 3, what="three running tasks")
        pane = app.query_one(ProgressPane)
        pane.table.focus()
        await pilot.pause()
        queued = next(k for k in row_keys(pane.table) if cell(pane.table, k, "state") == "queued")
        pane.table.move_cursor(row=pane.table.get_row_index(queued))
        await pilot.pause()
        before = pane.table.get_row_index(queued)
        fake.emit(TaskStarted(task_id=queued, stage=queued.split(":")[0], extractor=queued.split(":")[1],
                              account=queued.split(":")[1], attempt=1, pid=4300))
        await until(pilot, lambda: cell(pane.table, queued, "state") == "running", what="the row to start")
        assert pane.table.get_row_index(queued) < before  # it moved up...
        assert pane.selected_task() == queued  # ...and the cursor went with it
        await pilot.press("x")
        screen = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen,
                             what="the question")
        assert screen.question == f"Cancel {queued}?"
        await pilot.press("n")


async def test_X_cancels_the_whole_run_after_asking(populated: Setup) -> None:
    app, fake = make_app(populated, hold=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: len(fake.running_tasks) == 3, what="three running tasks")
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: fake.called("cancel_all") and not fake.busy, what="the cancel")


# -- readable at every size ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (120, 35), (200, 50)])
async def test_every_size_keeps_q_and_help_and_shows_every_row(populated: Setup, size: tuple[int, int]) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        footer = app.query_one(Footer)

        def shown() -> set[str]:
            return {k.key for k in footer.query("FooterKey") if k.region.width > 0 and k.region.right <= size[0]}

        await until(pilot, lambda: {"q", "question_mark"} <= shown(), what=f"q and ? in the footer: {shown()}")
        table = app.query_one("#latest-table", DataTable)
        await until(pilot, lambda: table.region.height >= 1 + 3,
                    what=f"LATEST to show its three rows (height {table.region.height})")
        # no account name or state is cut: columns are as wide as their content
        widths = {c.key.value: c.get_render_width(table) for c in table.columns.values()}
        assert widths["account"] >= len("books-charlie") and widths["last error"] >= len("error")


async def test_progress_columns_grow_with_their_content(populated: Setup) -> None:
    """A row added as `queued` and updated to `success` widens its column: no `succes`."""
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("R")
        await until(pilot, lambda: app.model.run_id == fake.run_id and app.model.status == "success",
                    what="the scripted run")
        await pilot.pause(0.2)
        table = app.query_one(ProgressPane).table
        widths = {c.key.value: c.get_render_width(table) - 2 * table.cell_padding for c in table.columns.values()}
        assert widths["state"] >= len("success") and widths["progress"] >= len("██████ ok")


async def test_z_maximises_the_focused_pane_and_z_restores(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.query_one(LogTail).focus()
        await pilot.press("z")
        assert app.screen.maximized is app.query_one(LogTail)
        await pilot.press("z")
        assert app.screen.maximized is None


async def test_narrow_terminal_collapses_the_half_without_focus(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.query_one("#latest-table").focus()
        await pilot.pause(0.1)
        assert app.query_one("#left").region.width < app.query_one("#right").region.width
        app.query_one("#vault").focus()
        await pilot.pause(0.1)
        assert app.query_one("#left").region.width > app.query_one("#right").region.width


# -- surprising behaviour -----------------------------------------------------------------------


async def test_filter_matches_the_account_and_shows_in_the_border(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.query_one("#latest-table").focus()
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen), what="the filter")
        await pilot.press(*"quickbooks", "enter")  # a source, not part of any extractor name
        table = app.query_one("#latest-table", DataTable)
        await until(pilot, lambda: row_keys(table) == ["books-charlie"], what="the filtered rows")
        assert "filter: quickbooks" in str(app.query_one(LatestPane).border_title)
        assert cell(table, "books-charlie", "account") == "books-charlie"  # unique: no source needed


async def test_two_accounts_of_the_same_name_are_told_apart_and_both_filtered(tmp_path: Path) -> None:
    exs = [demo_extractor("dv", "dataverse", account="mensio"), demo_extractor("qb", "quickbooks", account="mensio"),
           demo_extractor("mail", "gmail")]
    setup = Setup(write_config(tmp_path, exs), tmp_path / "ws")
    app, _ = make_app(setup)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = app.query_one("#latest-table", DataTable)
        assert cell(table, "dv", "account") == "mensio (dataverse)"
        assert cell(table, "qb", "account") == "mensio (quickbooks)"
        assert cell(table, "mail", "account") == "mail"
        app.query_one(LatestPane).set_filter("mensio")  # the account, in no extractor's name
        await until(pilot, lambda: row_keys(table) == ["dv", "qb"], what="both mensio rows")


async def test_clearing_the_log_filter_follows_the_tail_again(populated: Setup) -> None:
    """With a day's log of some length (a reviewer's 1,700 lines), clearing a filter left the
    view where the filtered, shorter content had ended: off the bottom, and new lines then
    went by unseen. The filter typed as a person does, through `/`."""
    logs = sorted((populated.workspace / "logs").glob("pipeline-*.log"))
    day = logs[-1].read_bytes()
    logs[-1].write_bytes(day * max(2, 1700 // max(1, day.count(b"\n"))))
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        log = app.query_one(LogTail)
        await until(pilot, lambda: log.line_count > 1000, what="the long day's lines")
        log.focus()
        await pilot.press("slash", *"level:error", "enter")
        await until(pilot, lambda: "filter: level:error" in str(log.border_title), what="the filter")
        await pilot.press("slash", "ctrl+u", "enter")
        await until(pilot, lambda: log.filter_text == "", what="the filter cleared")
        await pilot.pause(0.2)
        assert log.is_vertical_scroll_end and log.line_count > log.size.height
        with logs[-1].open("ab") as fh:  # the run goes on: the pane shows its new lines
            fh.write(day.splitlines(keepends=True)[-1])
        count = log.line_count
        await until(pilot, lambda: log.line_count > count, timeout=10, what="the new line")
        await pilot.pause(0.2)
        assert log.is_vertical_scroll_end


async def test_the_log_follows_the_tail_after_a_resize(populated: Setup) -> None:
    """After a resize the Log pane stayed on old lines while the run went on (Textual's Log
    follows only a view already at the bottom)."""
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        log = app.query_one(LogTail)
        assert log.line_count > log.size.height
        await pilot.resize_terminal(SIZE[0] - 20, SIZE[1] - 5)
        await pilot.pause(0.2)
        log.add([{"ts": "2026-11-30T12:00:00Z", "level": "info", "type": "task_started", "task_id": f"extract:t{i}"}
                 for i in range(5)])
        await until(pilot, lambda: log.is_vertical_scroll_end, what="the log at its tail")
        assert "extract:t4" in log.lines[-1]


def test_a_log_line_with_fields_of_other_types_renders_not_raises() -> None:
    """One hand-edited line (`"records": "x"`) stopped the dashboard at start-up."""
    from lorch_tui.widgets.logtail import render

    text = render({"level": "error", "type": "task_finished", "task_id": 5, "records": "x", "ts": "bad",
                   "duration_s": "slow"})
    assert "task_finished" in text and "unreadable" in text
    assert render({"ts": 123, "type": None}).split()[-1] == "None"


async def test_palette_has_the_apps_actions(populated: Setup) -> None:
    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for want in ("Run everything", "Rerun the selected account", "Cancel the whole run",
                     "Validate", "Run history", "Quit lorchestra"):
            assert want in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Run everything")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: fake.starts(), what="the palette to start a run")
        assert fake.starts()[0].accounts is None


async def test_palette_holds_every_key_s_action_and_the_panes_own(populated: Setup) -> None:
    """The palette lacked `p` (the project stage) and the panes' keys (sort, find, the log's
    days): every entry's action exists on its pane, and a pane's entry acts on that pane."""
    import re

    from lorch_tui.commands import ENTRIES

    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for action, _, _, pane in ENTRIES:
            target = app.query_one(pane) if pane else app
            assert hasattr(target, f"action_{re.sub(r'[(].*', '', action)}"), (action, pane)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Run the project stage", "Sort LATEST", "Sort Stage progress", "Find in the log",
                "Log: the previous day"} <= set(commands)
        latest = app.query_one("#latest")
        before = latest.sort_by  # type: ignore[attr-defined]
        await commands["Sort LATEST"].callback()
        await until(pilot, lambda: latest.sort_by != before, what="LATEST sorted by the next column")  # type: ignore[attr-defined]


# -- what k9s, lazygit and Dagster users expect ----------------------------------------------


async def test_history_screen_lists_runs_and_their_tasks(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("H")
        screen = await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen,
                             what="the history")
        runs = screen.query_one("#history-runs", DataTable)
        tasks = screen.query_one("#history-tasks", DataTable)
        await until(pilot, lambda: runs.row_count == 2 and tasks.row_count, what="the runs and tasks")
        newest = row_keys(runs)[0]
        assert row_keys(tasks) == ["extract:mail-alpha"]  # the newest run extracted mail-alpha only
        await pilot.press("down")
        await until(pilot, lambda: tasks.row_count == 9, what="the older run's nine tasks")
        assert newest != row_keys(runs)[1]
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HistoryScreen), what="back")


async def test_a_canonize_only_run_shows_its_records_in_the_log_and_the_history(populated: Setup) -> None:
    """A canonize-only run showed 0 records in the dashboard's log line and History screen
    (the run's count summed its extract tasks, of which it had none) while its own summary
    said "N records canonized". The run here is a real one, by cron (another process, real
    workers, the real history database) while the dashboard is open; its events reach the
    dashboard as a cron run's do: through the log."""
    import asyncio

    import orjson

    from tests.helpers import run_cli
    from tests.tui.dash import EXTRACTORS

    app, fake = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        res = await asyncio.to_thread(run_cli, "run", "--stage", "canonize", "--config", str(populated.config))
        assert res.returncode == 0, res.stderr
        # the count from the canonical files themselves, not from any event
        n = sum(len((populated.workspace / "canonical" / tap / f"{name}.jsonl").read_bytes().splitlines())
                for name, tap, _ in EXTRACTORS)
        assert n > 0 and f"3/3 tasks ok, 0 failed, 0 cancelled, {n} records canonized in" in res.stdout
        logged = [orjson.loads(line) for line in log_path(app.ws.logs).read_bytes().splitlines()]
        run_id = next(e["run_id"] for e in reversed(logged) if e["type"] == "run_started")
        log = app.query_one(LogTail)
        line = await until(pilot, lambda: next((ln for ln in log.lines if "run_finished" in ln and run_id in ln),
                                               None), what="the run's run_finished line")
        assert f" {n:,} rec " in line, line
        assert app.model.run_id == run_id and not fake.starts()  # read back as a cron run's, not started here
        await pilot.press("H")
        screen = await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen,
                             what="the history")
        runs = screen.query_one("#history-runs", DataTable)
        await until(pilot, lambda: runs.row_count == 3, what="the three runs")
        assert row_keys(runs)[0] == run_id
        assert cell(runs, run_id, "records") == f"{n:,} canonized"
        # the runs that extracted still show their extracted records, as before
        assert [cell(runs, k, "records") for k in row_keys(runs)[1:]] == ["20", "60"]


async def test_sort_latest_and_progress_by_column(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        table = app.query_one("#latest-table", DataTable)
        assert row_keys(table) == ["mail-alpha", "clinic-bravo", "books-charlie"]  # config order
        table.focus()
        await pilot.press("s")  # by account
        await until(pilot, lambda: row_keys(table) == ["books-charlie", "clinic-bravo", "mail-alpha"],
                    what="sorted by account")
        assert "by account" in str(app.query_one(LatestPane).border_subtitle)
        progress = app.query_one(ProgressPane)
        progress.table.focus()
        await pilot.press("s", "s")  # stage, then account
        assert progress.sort_by == "account"
        keys = row_keys(progress.table)
        accounts = [cell(progress.table, k, "account") for k in keys]
        assert accounts == sorted(accounts)


async def test_log_find_with_n_and_N_and_earlier_days(populated: Setup) -> None:
    logs = populated.workspace / "logs"
    earlier = logs / "pipeline-2020-01-01.log"
    earlier.write_text('{"ts":"2020-01-01T10:00:00.000Z","level":"info","type":"run_started",'
                       '"run_id":"20200101T100000Z-old001","trigger":"cron","pipeline":"t",'
                       '"stages":["extract"],"tasks":1}\n')
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        log = app.query_one(LogTail)
        log.focus()
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen), what="the find box")
        await pilot.press(*"task_finished", "enter")
        await until(pilot, lambda: log.match >= 0, what="a match")
        hits = log.matches()
        assert len(hits) >= 2 and log.match == hits[-1]
        await pilot.press("N")
        assert log.match == hits[-2]
        await pilot.press("n")
        assert log.match == hits[-1]
        assert f"{len(hits)}/{len(hits)}" in str(log.border_subtitle)
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: any("old001" in line for line in log.lines), what="the earlier day")
        assert log.pinned and "pipeline-2020-01-01.log" in str(log.border_title)
        run_id = app.model.run_id
        await pilot.pause(0.3)
        assert app.model.run_id == run_id  # an earlier day is read, not replayed as a live run
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: not log.pinned, what="back to today")


async def test_plot_shows_records_and_durations_per_run(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=(200, 50)) as pilot:
        await ready(pilot)
        latest = app.query_one("#latest-table", DataTable)
        latest.focus()
        await pilot.pause()
        latest.move_cursor(row=latest.get_row_index("mail-alpha"))
        plot = app.query_one(RunPlot)
        await until(pilot, lambda: plot.account == "mail-alpha" and len(plot.data) == 2, what="the plot")
        assert [p.records for p in plot.data] == [20, 20]
        assert all(p.duration_s is not None and p.duration_s > 0 for p in plot.data)
        assert plot.region.height >= 6


def test_the_pager_keeps_no_search_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search in `less` (/Canarywhistle) was saved to ~/.lesshst, outside the workspace.
    The pager is a real process here, given a script as $PAGER that records what it got."""
    import contextlib

    from lorch_tui.actions import open_in_pager

    seen = tmp_path / "seen.txt"
    script = tmp_path / "pager.sh"
    script.write_text(f'#!/bin/sh\necho "$LESSHISTFILE|$LESSHISTSIZE|$1" > {seen}\n')
    script.chmod(0o700)
    monkeypatch.setenv("PAGER", str(script))
    shown = tmp_path / "tap.stderr.log"
    shown.write_text("stderr\n")

    class Terminal:  # the one thing a headless test has not: a terminal to hand over
        notes: list[str] = []

        def suspend(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

        def batch_update(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

        def notify(self, message: str, **_: Any) -> None:
            self.notes.append(message)

    asyncio.run(open_in_pager(Terminal(), shown, "the tap's stderr"))
    assert seen.read_text().strip() == f"-|0|{shown}"


def test_the_run_goes_on_while_the_pager_is_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pager was waited for with the event loop blocked: no queued task started (and a cron
    run waited behind the lock) until the pager closed. Now it is awaited: other coroutines
    (the engine's runner is one) go on meanwhile, repaints batched until the screen is back.
    A real pager process that stays open a while; a coroutine ticking beside it."""
    import contextlib
    from collections.abc import Iterator

    from lorch_tui.actions import open_in_pager

    script = tmp_path / "pager.sh"
    script.write_text("#!/bin/sh\nsleep 1\n")
    script.chmod(0o700)
    monkeypatch.setenv("PAGER", str(script))
    shown = tmp_path / "tap.stderr.log"
    shown.write_text("stderr\n")
    order: list[str] = []

    class Terminal:
        @contextlib.contextmanager
        def suspend(self) -> Iterator[None]:
            order.append("suspend")
            yield
            order.append("resume")

        @contextlib.contextmanager
        def batch_update(self) -> Iterator[None]:
            order.append("batch")
            yield
            order.append("repaint")

        def notify(self, message: str, **_: Any) -> None:
            order.append(message)

    async def both() -> int:
        pager = asyncio.create_task(open_in_pager(Terminal(), shown, "the tap's stderr"))
        ticks = 0
        while not pager.done():
            await asyncio.sleep(0.05)
            ticks += 1
        await pager
        return ticks

    ticks = asyncio.run(both())
    assert ticks >= 10, f"the loop ran {ticks} times while the pager was open"
    assert order == ["batch", "suspend", "resume", "repaint"], order  # resumed before the repaint

    # a second open while one is shown (a key queued meanwhile) starts no second pager, and an
    # app ending while the pager is open stops it and gets the screen back
    order.clear()
    script.write_text(f"#!/bin/sh\necho $$ >> {tmp_path / 'pagers.txt'}\nexec sleep 30\n")

    async def twice_then_cancel() -> None:
        term = Terminal()
        first = asyncio.create_task(open_in_pager(term, shown, "the tap's stderr"))
        await asyncio.sleep(0.3)
        await open_in_pager(term, shown, "the tap's stderr")  # returns at once
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    started = time.monotonic()
    asyncio.run(twice_then_cancel())
    assert time.monotonic() - started < 10, "the pager was stopped, not waited for"
    assert (tmp_path / "pagers.txt").read_text().count("\n") == 1  # one pager only
    assert order == ["batch", "suspend", "resume", "repaint"], order


async def test_a_failing_on_failure_hook_is_shown_not_swallowed(tmp_path: Path) -> None:
    """The real engine: the hook's warning was printed to a stderr Textual swallows, so a
    broken alarm went unseen in the dashboard."""
    from engine.config.load import load

    ex = demo_extractor("bad", "gmail", records=5, faults={"fail_after": 2})
    cfg = write_config(tmp_path, [ex], on_failure=[sys.executable, "-c", "import sys; sys.exit(5)"])
    app = LorchApp(load(str(cfg)), watch=False)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("R")
        note = await until(pilot, lambda: notes.find("on_failure", "exited with code 5"), timeout=60,
                           what="the hook's warning")
        assert note.severity == "warning"
        await until(pilot, lambda: not app.engine.busy, timeout=30, what="the run's end")


async def test_two_quick_presses_of_r_start_one_run_and_say_so(populated: Setup) -> None:
    """Both presses passed the busy check before the first start reached the engine: two
    "starting" toasts, then a "cannot start" error."""
    app, fake = make_app(populated, hold=True)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        # two keys handled before the first start's worker ran (a fast double press)
        app.run_control.start(None, None, "every account")
        app.run_control.start(None, None, "every account")
        await until(pilot, lambda: fake.running_tasks, what="running tasks")
        starts = [n for n in notes.items if n.message.startswith("starting")]
        assert len(starts) == 1 and len(fake.called("start")) == 1, notes.texts()
        assert notes.find("a run is already in progress") is not None
        assert not any(n.severity == "error" for n in notes.items), notes.texts()


async def test_a_killed_run_of_another_process_is_called_abandoned(populated: Setup) -> None:
    """A cron run killed -9 left its tasks `running` on screen for ever (elapsed ticking) while
    the header showed no lock holder and `X` said nothing was running."""
    app, _ = make_app(populated)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        app.model.apply([RunStarted(run_id="20260101T000000Z-cron02", trigger="cron", pipeline="t",
                                    stages=["extract"], tasks=1),
                         TaskStarted(task_id="extract:mail-alpha", stage="extract", extractor="mail-alpha",
                                     account="mail-alpha", attempt=1, pid=4242)])
        assert app.snapshot is not None and app.snapshot.lock_holder is None  # nobody holds the lock
        app.request_scan()
        note = await until(pilot, lambda: notes.find("run abandoned"), timeout=10, what="the verdict")
        assert "20260101T000000Z-cron02" in note.message
        assert app.model.status == "abandoned" and app.model.tasks["extract:mail-alpha"].state == "abandoned"
        assert cell(app.query_one(ProgressPane).table, "extract:mail-alpha", "state") == "abandoned"


async def test_last_nights_run_is_shown_before_todays_first_run(populated: Setup) -> None:
    """The panes were rebuilt from today's log only (named by the UTC day): a 02:15 cron run
    east of UTC fell on the day before, and the morning check showed "no run yet"."""
    from datetime import UTC, datetime, timedelta

    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await until(pilot, lambda: app.model.run_id is not None, what="today's run")
        want = (app.model.run_id, sorted(app.model.tasks), app.model.records)
    assert want[1], "the populated workspace's run has tasks to show"
    today = log_path(populated.workspace / "logs")
    today.rename(log_path(populated.workspace / "logs", datetime.now(UTC) - timedelta(days=1)))
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await until(pilot, lambda: app.model.run_id is not None, what="last night's run")
        assert (app.model.run_id, sorted(app.model.tasks), app.model.records) == want


async def test_history_calls_a_killed_run_abandoned_as_status_does(tmp_path: Path) -> None:
    """The history screen showed a run whose process was SIGKILLed as `running` for good,
    while `lorchestra status` said `abandoned` (no live process holds the workspace lock)."""
    from engine.events import RunStarted as Started
    from engine.store.state import StateRecorder

    db = tmp_path / "state" / "lorch.sqlite"
    rec = await StateRecorder(db).start()
    rec(Started(run_id="killed-run", trigger="cron", pipeline="p", stages=["extract"], tasks=1))
    await rec.close()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (db.parent / "lock").write_text(f"{dead.stdout.strip()} 2026-11-30T00:00:00Z lorch-tui --no-ui\n")

    class One(App[None]):
        def on_mount(self) -> None:
            self.push_screen(HistoryScreen(db))

    async def shown_status() -> str:
        app = One()
        async with app.run_test(size=(120, 30)) as pilot:
            runs = await until(pilot, lambda: isinstance(app.screen, HistoryScreen)
                               and app.screen.query_one("#history-runs", DataTable).row_count == 1
                               and app.screen.query_one("#history-runs", DataTable), what="the run")
            return str(runs.get_row_at(0)[2])

    assert "abandoned" in await shown_status()
    (db.parent / "lock").write_text(f"{os.getpid()} 2026-11-30T00:00:00Z lorch-tui\n")  # held: running
    assert "running" in await shown_status()


def test_a_pager_that_cannot_start_never_leaves_the_dashboard_suspended(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """$PAGER unset without `less` installed, or a broken one: the OSError left Textual's
    suspend() block, which then never resumed the screen (frozen dashboard, run stalled, lock
    held). Now a missing pager is said before suspending, and a failing one inside it."""
    import contextlib
    from collections.abc import Iterator

    from lorch_tui.actions import open_in_pager

    shown = tmp_path / "tap.stderr.log"
    shown.write_text("stderr\n")

    class Terminal:
        def __init__(self) -> None:
            self.notes: list[str] = []
            self.entered = self.left_cleanly = 0

        @contextlib.contextmanager
        def suspend(self) -> Iterator[None]:
            self.entered += 1
            yield  # an exception thrown in here is what Textual does not recover from
            self.left_cleanly += 1

        def batch_update(self) -> contextlib.AbstractContextManager[None]:
            return contextlib.nullcontext()

        def notify(self, message: str, **_: Any) -> None:
            self.notes.append(message)

    missing = Terminal()
    monkeypatch.setenv("PAGER", str(tmp_path / "no-such-pager"))
    asyncio.run(open_in_pager(missing, shown, "the tap's stderr"))
    assert missing.entered == 0 and "not found" in missing.notes[0] and str(shown) in missing.notes[0]
    broken = tmp_path / "broken-pager"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o700)
    monkeypatch.setenv("PAGER", str(broken))
    failing = Terminal()
    asyncio.run(open_in_pager(failing, shown, "the tap's stderr"))
    assert failing.entered == failing.left_cleanly == 1 and "cannot start $PAGER" in failing.notes[0]


def _critical_script(fake: FakeEngine, stages: list[str], accounts: list[str]) -> Script:
    """The project task warns of conflicts, unscored responses and an unlinked positive item 9."""
    from engine.events import TaskWarning

    plan = TaskPlan("project", "project", "project")
    script = task_script(fake.new_run_id(), [plan])
    warns: list[Any] = [TaskWarning(task_id=plan.task_id, stage="project", extractor="project", code=code, count=n)
                        for code, n in (("CLIENT_CONFLICTS", 1), ("MEASURES_NOT_SCORED", 2),
                                        ("MEASURES_CRITICAL_UNLINKED", 2))]
    return script[:-1] + warns + script[-1:]


async def test_project_warnings_are_each_kept_and_a_critical_item_unlinked_is_said(populated: Setup) -> None:
    """Each warning overwrote the one before (the detail said `warnings 2`, no code), and a
    positive PHQ-9 item 9 linked to no client passed without a word in a successful run."""
    app, fake = make_app(populated, script=_critical_script)
    notes = Notes()
    async with app.run_test(size=SIZE, message_hook=notes.hook) as pilot:
        await ready(pilot)
        await pilot.press("R")
        note = await until(pilot, lambda: notes.find("critical item"), what="the critical toast")
        assert note.severity == "error" and "lorchestra clients unlinked" in note.message
        await until(pilot, lambda: not fake.busy, what="the run to end")
        row = app.model.tasks["project:project"]
        assert row.warnings == {"CLIENT_CONFLICTS": 1, "MEASURES_NOT_SCORED": 2, "MEASURES_CRITICAL_UNLINKED": 2}
        from lorch_tui.screens.taskdetail import describe

        text = describe(row, None, None).plain
        for code in row.warnings:
            assert f"{code} (" in text


async def test_stage_progress_tells_two_extractors_of_one_account_name_apart() -> None:
    """`mensio` of a CRM and of the books were two identical `extract mensio` rows."""
    from engine.events import TaskQueued
    from lorch_tui.model import RunModel

    model = RunModel()
    model.apply([TaskQueued(task_id=f"extract:{ex}", stage="extract", extractor=ex, account=acct)
                 for ex, acct in (("tap-dataverse", "mensio"), ("tap-quickbooks", "mensio"), ("tap-gmail", "acct1"))])

    One = alone_with(lambda: ProgressPane(id="progress"))

    app = One()
    async with app.run_test(size=(120, 20)) as pilot:
        pane = app.query_one(ProgressPane)
        pane.show(model)
        await pilot.pause()
        shown = {key: str(pane.table.get_row(key)[1]) for key in ("extract:tap-dataverse", "extract:tap-quickbooks",
                                                                    "extract:tap-gmail")}
    assert shown == {"extract:tap-dataverse": "tap-dataverse", "extract:tap-quickbooks": "tap-quickbooks",
                     "extract:tap-gmail": "acct1"}
    # a run of one of them alone: the config says the name is shared (the app sets it at start)
    alone = RunModel()
    alone.apply([TaskQueued(task_id="extract:tap-dataverse", stage="extract", extractor="tap-dataverse",
                            account="mensio")])
    app = One()
    async with app.run_test(size=(120, 20)) as pilot:
        pane = app.query_one(ProgressPane)
        pane.labels = {"tap-dataverse": "mensio (dataverse)", "tap-quickbooks": "mensio (quickbooks)"}
        pane.show(alone)
        await pilot.pause()
        assert str(pane.table.get_row("extract:tap-dataverse")[1]) == "mensio (dataverse)"


async def test_the_log_filter_account_matches_the_account_not_only_the_extractor() -> None:
    """`account:hangacct` kept nothing: lines carry the extractor's name (tap-singer-hang)."""
    One = alone_with(lambda: LogTail(id="log"))

    app = One()
    async with app.run_test(size=(120, 20)) as pilot:
        log = app.query_one(LogTail)
        log.add([{"level": "info", "type": "task_started", "task_id": "extract:tap-singer-hang", "stage": "extract",
                  "extractor": "tap-singer-hang", "account": "hangacct", "attempt": 1, "ts": "2026-11-30T10:00:00Z"},
                 {"level": "warning", "type": "task_warning", "task_id": "extract:tap-singer-hang", "stage": "extract",
                  "extractor": "tap-singer-hang", "code": "UNKNOWN_MESSAGE", "count": 1, "ts": "2026-11-30T10:00:01Z"},
                 {"level": "info", "type": "task_started", "task_id": "extract:other", "stage": "extract",
                  "extractor": "other", "account": "elsewhere", "attempt": 1, "ts": "2026-11-30T10:00:02Z"}])
        log.set_filter("account:hangacct")
        await pilot.pause()
        assert len(log.lines) == 2 and all("tap-singer-hang" in str(line) for line in log.lines)


async def test_z_maximises_the_whole_pane_not_only_its_table(populated: Setup) -> None:
    app, _ = make_app(populated)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        for pane, table in ((LatestPane, "#latest-table"), (ProgressPane, "#progress-table")):
            app.query_one(table, DataTable).focus()
            await pilot.press("z")
            assert isinstance(app.screen.maximized, pane), app.screen.maximized
            await pilot.press("z")
            assert app.screen.maximized is None


async def test_the_task_detail_and_help_scroll_to_their_last_line_at_80x24(populated: Setup) -> None:
    """At 80x24 the detail files' paths, the PHI note and the help's last keys were below the
    screen's edge, and no key scrolled to them."""
    from textual.containers import VerticalScroll

    from engine.events import TaskQueued
    from lorch_tui.screens.modals import HelpScreen

    app, _ = make_app(populated)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        app.model.apply([TaskQueued(task_id="extract:mail-alpha", stage="extract", extractor="mail-alpha",
                                    account="mail-alpha")])
        row = app.model.tasks["extract:mail-alpha"]
        row.error_code, row.warnings = "TAP_EXIT_NONZERO", {f"W{i}": i for i in range(12)}
        for screen in (TaskDetailScreen(row, app.ws, None), HelpScreen()):
            app.push_screen(screen)
            scroll = await until(pilot, lambda s=screen: bool(s.is_current and s.query(VerticalScroll))
                                 and s.query_one(VerticalScroll), what="the modal")
            await pilot.pause()
            assert scroll.region.bottom <= 24 and scroll.max_scroll_y > 0, (scroll.region, scroll.max_scroll_y)
            await pilot.press("end")
            await pilot.pause()
            assert scroll.scroll_y == scroll.max_scroll_y
            await pilot.press("escape")


def test_a_running_extract_s_tap_stderr_can_be_opened(tmp_path: Path) -> None:
    """While a tap hung, the detail said `tap stderr -`: the file is in the run folder being
    written (`.run_id=*.partial`), named only by the task's final event."""
    from engine.config.load import load
    from engine.events import TaskQueued
    from engine.store.workspace import Workspace
    from lorch_tui.model import RunModel

    cfg = write_config(tmp_path, [demo_extractor("hang", "gmail")])
    loaded = load(str(cfg))
    ex = loaded.config.extractors[0]
    ws = Workspace(loaded.workspace)
    partial = ws.vault / ex.domain / ex.source / ex.account / "dt=2026-11-30" / ".run_id=20261130T101500Z.partial"
    partial.mkdir(parents=True)
    (partial / "tap.stderr.log").write_text("still waiting\n")
    model = RunModel()
    model.apply([TaskQueued(task_id="extract:hang", stage="extract", extractor="hang", account=ex.account)])
    row = model.tasks["extract:hang"]
    assert TaskDetailScreen(row, ws, ex).stderr is None  # queued: not yet
    row.state = "running"
    assert TaskDetailScreen(row, ws, ex).stderr == partial / "tap.stderr.log"


def test_cancelling_another_process_s_run_names_how_to_stop_it_there() -> None:
    """The hint said "stop it there (Ctrl-C)": Ctrl-C does nothing in a dashboard (X or q do)."""
    from types import SimpleNamespace

    from lorch_tui.actions import why_nothing_to_cancel

    app = SimpleNamespace(snapshot=SimpleNamespace(lock_holder="pid 4242 (lorch-tui --no-ui)"),
                          engine=SimpleNamespace(busy=False))
    hint = why_nothing_to_cancel(app)
    assert "X or q in a dashboard" in hint and "Ctrl-C in a terminal" in hint and "kill -INT 4242" in hint
