"""The lorchestra dashboard: composes the panes and turns keys into intents for the engine.

Events come from the engine face into a list; a 15 Hz timer drains it and refreshes the
panes once per batch. Disk views (vault tree, LATEST table) are re-read in a thread after a
task ends and whenever another process changes the workspace (watchfiles). Widgets only
post messages; every action on the engine happens here.

The first paint comes before any disk work: the workspace check (a permission walk over
every inode) and the first scan run in threads after mount, and a run's start is a worker,
so the key that started it returns at once. Every way out (``q``, ``ctrl+q``, the palette's
Quit) takes the same path: ask when a run is in progress, cancel, reap, record. Starting,
cancelling and quitting are :mod:`lorch_tui.runcontrol`'s (the app's ``action_*`` delegate);
the toasts a run's events raise are :mod:`lorch_tui.runtoasts`'s.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Tree

from engine.config.load import LoadedConfig
from engine.events import RunFinished, RunStarted, TaskFinished, TaskWarning, now_iso
from engine.ops.inspect import RunInfo
from engine.store.workspace import Workspace
from lorch_tui import actions, lastrun
from lorch_tui.commands import palette_commands
from lorch_tui.crash import crash_report
from lorch_tui.engine_face import EngineFace, LiveEngine
from lorch_tui.model import RunModel
from lorch_tui.runcontrol import RunControl
from lorch_tui.runtoasts import RunToasts
from lorch_tui.scan import Snapshot, scan
from lorch_tui.screens.history import HistoryScreen
from lorch_tui.screens.modals import FilterScreen, HelpScreen
from lorch_tui.screens.taskdetail import TaskDetailScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.progress import ProgressPane
from lorch_tui.widgets.vault import NodeRef, RunDetail, VaultTree

FLUSH_HZ = 15
NARROW = 100  # columns below which the unfocused half collapses
SHORT = 30  # rows below which the plot hides and the log shrinks


def freeze_startup_objects() -> None:
    """Move everything alive after the first full screen (modules, models, widgets: about
    130,000 objects) out of the garbage collector's reach: each full collection scanned them
    all on the event loop, 20-160 ms while a key waited (docs/performance.md). ``freeze`` costs
    nothing; the little start-up garbage it holds is released when the app ends (unfreeze)."""
    gc.freeze()


class LorchApp(App[int]):
    """The dashboard."""

    CSS_PATH = str(Path(__file__).resolve().parent.parent / "styles" / "app.tcss")
    TITLE = "lorchestra"
    # q and ? come first: the footer drops keys from the right when the terminal is narrow
    BINDINGS = [
        Binding("q", "quit_app", "quit"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("ctrl+q", "quit_app", "quit", show=False, priority=True),
        Binding("e", "run_stage('extract')", "extract"),
        Binding("c", "run_stage('canonize')", "canonize"),
        Binding("i", "run_stage('index')", "index"),
        Binding("p", "run_project", "project", show=False),
        Binding("r", "run_stage('all')", "rerun acct"),
        Binding("R", "run_all", "run all"),
        Binding("x", "cancel_task", "cancel"),
        Binding("X", "cancel_run", "cancel run", show=False),
        Binding("v", "validate", "validate"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("z", "zoom", "zoom"),
        Binding("H", "history", "history"),
    ]

    def __init__(self, loaded: LoadedConfig, engine: EngineFace | None = None, *, watch: bool = True,
                 skip_permissions: bool = False, verbose: bool = False) -> None:
        super().__init__()
        self.verbose = verbose
        self.loaded = loaded
        self.ws = Workspace(loaded.workspace)
        self.engine: EngineFace = engine or LiveEngine(loaded, skip_permissions=skip_permissions)
        self.skip_permissions = skip_permissions
        self.watch_files = watch
        self.model = RunModel()
        self.selected: str | None = None
        self.detail_run: RunInfo | None = None
        self.snapshot: Snapshot | None = None
        self.workspace_problem: str | None = None
        self.watch_state = ""
        self._scan_pending = False
        self._scanning = False
        self.runs_said: set[str] = set()
        """Runs whose unsuccessful end a toast already said (live, at start, or abandoned): once each."""
        self.pager_open = False
        """Whether $PAGER has the terminal (a key queued meanwhile opens no second one)."""
        self._opened_at = now_iso()
        self.run_control = RunControl(self)
        self.toasts = RunToasts(self)

    def _fatal_error(self) -> None:
        """An unhandled exception: no traceback with local values (``lorch_tui.crash``)."""
        crash_report(self, sys.exc_info()[1] or self._exception, self.verbose)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with Horizontal(id="top"):
            with Vertical(id="left"):
                yield VaultTree(id="vault")
                yield RunDetail(id="run-detail")
            with Vertical(id="right"):
                yield LatestPane(id="latest")
                yield ProgressPane(id="progress")
        yield LogTail(id="log")
        yield Footer()

    def on_mount(self) -> None:
        cfg = self.loaded.config
        self.title = f"lorchestra · {cfg.pipeline.name} {cfg.pipeline.version}"
        self._show_sub_title()
        self.query_one(VaultTree).focus()  # auto focus would pick the log (breadth-first)
        accounts = [ex.account for ex in cfg.extractors]  # named twice: `mensio (dataverse)`, as LATEST
        self.query_one(ProgressPane).labels = {ex.name: f"{ex.account} ({ex.source})" for ex in cfg.extractors
                                               if accounts.count(ex.account) > 1}
        self._fit(self.size.width, self.size.height)
        self.watch(self.screen, "focused", self._focus_moved)
        self.set_interval(1 / FLUSH_HZ, self.flush)
        self.run_control.watch_hang_up()
        # paint first, then touch the disk: the check and the first scan run in threads (the
        # scan only reads, so it does not wait for the permission walk)
        actions.check_workspace(self, self.skip_permissions, self._workspace_checked)
        self.request_scan()
        self.last_run_check = lastrun.say_last_run(self, self.runs_said)  # last night's failure, said

    def _workspace_checked(self, problem: str | None) -> None:
        self.workspace_problem = problem
        if problem is not None:
            self.notify(problem, title="workspace check failed: runs are refused until it is fixed",
                        severity="error", timeout=60, markup=False)
        self._show_sub_title()
        self.query_one(LogTail).follow_current(self.ws.logs)
        self.request_scan()
        if self.watch_files and problem is None:
            from lorch_tui import watch  # watchfiles: after the first paint

            watch.watch_workspace(self)

    def set_watch_state(self, text: str) -> None:
        """Say in the header whether live refresh works."""
        self.watch_state = text
        self._show_sub_title()

    def _show_sub_title(self) -> None:
        bits = [str(self.ws.root)]
        if self.snapshot is not None and self.snapshot.lock_holder:
            bits.append(f"locked by {self.snapshot.lock_holder}")
        if self.watch_state and self.watch_state != "live":
            bits.append(self.watch_state)
        if self.workspace_problem:
            bits.append("WORKSPACE CHECK FAILED")
        self.sub_title = " · ".join(bits)

    # -- layout: every size readable ------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.screen.set_class(width < NARROW, "-narrow")
        self.screen.set_class(height < SHORT, "-short")

    def _focus_moved(self, _focused: object = None) -> None:
        try:
            left, top = self.query_one("#left"), self.query_one("#top")
        except NoMatches:  # focus moved inside a modal or another screen
            return
        focused = self.focused
        top.set_class(focused is not None and left in focused.ancestors_with_self, "-left-active")

    def action_zoom(self) -> None:
        """Maximise the focused pane, or restore it."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        elif self.focused is not None:
            screen.maximize(self.focused)

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from palette_commands(self)
        yield from super().get_system_commands(screen)

    # -- the flush: events in, panes refreshed once per batch ---------------------------
    def flush(self) -> None:
        """Apply pending engine events and new log lines to the panes."""
        try:
            log = self.query_one(LogTail)
        except NoMatches:  # the app is shutting down: its panes are already gone
            return
        batch = self.engine.drain()
        log.follow_current(self.ws.logs)
        logged = log.poll()
        foreign = not batch and not self.engine.busy and bool(logged) and not log.pinned
        if foreign:
            batch = actions.foreign_events(logged, self.model)
        changed = self.model.apply(batch, foreign=foreign)
        if changed or self.model.status == "running":
            self.query_one(ProgressPane).show(self.model)
        if any(isinstance(e, TaskFinished) for e in batch):
            self.request_scan()
        if self.workspace_problem and self.engine.busy and any(isinstance(e, RunStarted) for e in batch):
            self.workspace_problem = None  # this run's own start passed the same check: fixed since
            self._show_sub_title()
        for ev in batch:
            if isinstance(ev, RunFinished) and ev.status != "success" and ev.run_id == self.model.run_id \
                    and (not foreign or ev.ts >= self._opened_at):  # not last night's run, read back at start
                self.toasts.run_ended(ev)
            elif isinstance(ev, TaskWarning) and ev.code == "MEASURES_CRITICAL_UNLINKED":
                self.toasts.critical_unlinked(ev.count)
        for note in self.engine.notes():
            self.notify(note, title="on_failure hook", severity="warning", timeout=30, markup=False)

    # -- disk views ------------------------------------------------------------------------
    def request_scan(self) -> None:
        """Re-read the workspace in a thread (coalesced while one is running)."""
        if self._scanning:
            self._scan_pending = True
            return
        self._scanning = True
        self._scan()

    @work(thread=True, exclusive=False, group="scan")
    def _scan(self) -> None:
        snap = scan(self.loaded.config, self.ws)
        self.call_from_thread(self._show_snapshot, snap)

    def _show_snapshot(self, snap: Snapshot) -> None:
        first = self.snapshot is None
        self.snapshot = snap
        self._scanning = False
        if not self.query(VaultTree):  # the app is shutting down: its panes are already gone
            return
        if first:
            self.call_after_refresh(freeze_startup_objects)
        stale_h = float(getattr(self.loaded.config, "stale_after_hours", 26.0))
        self.query_one(VaultTree).show(self.loaded.config.extractors, snap.runs)
        self.query_one(LatestPane).show(snap.views, self.model.last_errors, stale_h)
        self._show_sub_title()
        self.query_one(ProgressPane).show_clients(snap.clients)
        if self.selected is None and self.loaded.config.extractors:
            self.select(self.loaded.config.extractors[0].name)
        elif self.selected is not None:
            self._show_selection()
        if self._scan_pending:
            self._scan_pending = False
            self.request_scan()
        self.run_control.watch_foreign(snap.lock_holder)

    # -- selection ----------------------------------------------------------------------------
    @on(LatestPane.AccountSelected)
    @on(VaultTree.AccountSelected)
    def _account_selected(self, message: LatestPane.AccountSelected | VaultTree.AccountSelected) -> None:
        self.select(message.extractor)

    @on(VaultTree.RunSelected)
    def _run_selected(self, message: VaultTree.RunSelected) -> None:
        self.detail_run = message.run
        self.query_one(RunDetail).show(message.extractor, message.run)

    @on(Tree.NodeSelected)
    def _node_selected(self, message: Tree.NodeSelected[NodeRef]) -> None:
        ref = message.node.data
        if ref is not None and ref.kind == "run" and ref.run is not None and ref.extractor:
            actions.verify_run(self, ref.extractor, ref.run)

    @on(DataTable.RowSelected, "#progress-table")
    def _task_chosen(self, message: DataTable.RowSelected) -> None:
        row = self.model.tasks.get(str(message.row_key.value))
        if row is None:
            return
        ex = next((e for e in self.loaded.config.extractors if e.name == row.extractor), None)
        self.push_screen(TaskDetailScreen(row, self.ws, ex))

    @on(TaskDetailScreen.OpenFile)
    def _open_file(self, message: TaskDetailScreen.OpenFile) -> None:
        self.run_worker(actions.open_in_pager(self, message.path, message.what), group="pager")

    def select(self, extractor: str) -> None:
        """Make ``extractor`` the selected account in every pane."""
        if extractor == self.selected:
            return
        self.selected, self.detail_run = extractor, None
        self.query_one(LatestPane).select(extractor)
        self.query_one(VaultTree).select_account(extractor)
        self._show_selection()

    def _show_selection(self) -> None:
        runs: list[RunInfo] = (self.snapshot.runs.get(self.selected or "", []) if self.snapshot else [])
        durations = self.snapshot.durations.get(self.selected or "", {}) if self.snapshot else {}
        self.query_one(LatestPane).set_history(self.selected or "", runs, durations)
        if self.detail_run is None:
            self.query_one(RunDetail).show(self.selected or "", runs[0] if runs else None)

    # -- actions (keys, palette) -------------------------------------------------------------
    def action_run_stage(self, stage: str) -> None:
        """Run one stage (or the whole chain) for the selected account."""
        if self.selected is None:
            self.notify("select an account first (vault tree or LATEST table)", severity="warning")
            return
        stages = None if stage == "all" else [stage]
        self.run_control.start(stages, [self.selected], f"{stage} {self.selected}")

    def action_run_project(self) -> None:
        """Run the project stage alone (clients and charts, over every account)."""
        self.run_control.start(["project"], None, "project (clients)")

    def action_run_all(self) -> None:
        """Run every stage for every account."""
        self.run_control.start(None, None, "everything")

    def action_cancel_task(self) -> None:
        """Cancel the selected running task, after asking."""
        self.run_control.cancel_task()

    def action_cancel_run(self) -> None:
        """Cancel every task of the run in progress, after asking."""
        self.run_control.cancel_run()

    def action_validate(self) -> None:
        """Run `lorchestra validate` and show the result."""
        actions.validate(self)

    def action_filter(self) -> None:
        """Filter the focused pane."""
        actions.ask_filter(self, FilterScreen)

    def action_search_log(self) -> None:
        """Ask for a word to find in the log pane (then n / N)."""
        log = self.query_one(LogTail)

        def apply(text: str | None) -> None:
            if text is not None:
                log.set_search(text)

        self.push_screen(FilterScreen("log: find", log.search, "a word, a task, an error code",
                                      title="Find in the log (n / N: next / previous; empty clears)"), apply)

    def action_history(self) -> None:
        """Show the run history (every run the state database recorded)."""
        self.push_screen(HistoryScreen(self.ws.state_db))

    def action_help(self) -> None:
        """Show the keys."""
        self.push_screen(HelpScreen())

    async def on_unmount(self) -> None:
        """The last way out (an error, a test harness, anything that skipped q): still cancel,
        reap and record the run, so no worker outlives the loop and no run stays `running`."""
        await self.run_control.reap()
        gc.unfreeze()  # what was frozen at the first screen is collectable again (tests run many apps)

    async def action_quit(self) -> None:
        """Textual's own quit (ctrl+q, the palette's Quit) takes the same path as q."""
        await self.action_quit_app()

    async def action_quit_app(self) -> None:
        """Quit; ask first when a run is in progress, then cancel it, reap it and record it."""
        await self.run_control.quit()
