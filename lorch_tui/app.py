"""The lorchestra dashboard: composes the panes and turns keys into intents for the engine.

Events come from the engine face into a list; a 15 Hz timer drains it and refreshes the
panes once per batch. Disk views (vault tree, LATEST table) are re-read in a thread after a
task ends and whenever another process changes the workspace (watchfiles). Widgets only
post messages; every action on the engine happens here.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Header, Tree

from engine.configload import LoadedConfig
from engine.errors import LorchError
from engine.events import TaskFinished
from engine.inspect import RunInfo
from engine.logsink import log_path
from engine.workspace import Workspace
from lorch_tui import actions
from lorch_tui.engine_face import EngineFace, LiveEngine
from lorch_tui.model import RunModel
from lorch_tui.scan import Snapshot, scan
from lorch_tui.screens.modals import ConfirmScreen, FilterScreen, HelpScreen
from lorch_tui.widgets.latest import LatestPane
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.progress import ProgressPane
from lorch_tui.widgets.vault import NodeRef, RunDetail, VaultTree

FLUSH_HZ = 15


class LorchApp(App[int]):
    """The dashboard."""

    CSS_PATH = str(Path(__file__).resolve().parent.parent / "styles" / "app.tcss")
    TITLE = "lorchestra"
    BINDINGS = [
        Binding("e", "run_stage('extract')", "extract"),
        Binding("c", "run_stage('canonize')", "canonize"),
        Binding("i", "run_stage('index')", "index"),
        Binding("p", "run_project", "project", show=False),
        Binding("r", "run_stage('all')", "rerun acct"),
        Binding("R", "run_all", "run all"),
        Binding("x", "cancel_task", "cancel"),
        Binding("v", "validate", "validate"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit_app", "quit"),
    ]

    def __init__(self, loaded: LoadedConfig, engine: EngineFace | None = None, *, watch: bool = True,
                 skip_permissions: bool = False) -> None:
        super().__init__()
        self.loaded = loaded
        self.ws = Workspace(loaded.workspace)
        self.engine: EngineFace = engine or LiveEngine(loaded, skip_permissions=skip_permissions)
        self.watch_files = watch
        self.model = RunModel()
        self.selected: str | None = None
        self.detail_run: RunInfo | None = None
        self.snapshot: Snapshot | None = None
        self._scan_pending = False
        self._scanning = False

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
        self.sub_title = str(self.ws.root)
        self.query_one(VaultTree).focus()  # auto focus would pick the log (breadth-first)
        self.query_one(LogTail).follow(log_path(self.ws.logs))
        self.set_interval(1 / FLUSH_HZ, self.flush)
        self.request_scan()
        if self.watch_files:
            actions.watch_workspace(self)

    # -- the flush: events in, panes refreshed once per batch ---------------------------
    def flush(self) -> None:
        """Apply pending engine events and new log lines to the panes."""
        try:
            log = self.query_one(LogTail)
        except NoMatches:  # the app is shutting down: its panes are already gone
            return
        batch = self.engine.drain()
        log.follow(log_path(self.ws.logs))
        logged = log.poll()
        if not batch and not self.engine.busy and logged:
            batch = actions.foreign_events(logged, self.model)
        changed = self.model.apply(batch)
        if changed or self.model.status == "running":
            self.query_one(ProgressPane).show(self.model)
        if any(isinstance(e, TaskFinished) for e in batch):
            self.request_scan()

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
        self.snapshot = snap
        self._scanning = False
        if not self.query(VaultTree):  # the app is shutting down: its panes are already gone
            return
        stale_h = float(getattr(self.loaded.config, "stale_after_hours", 26.0))
        self.query_one(VaultTree).show(self.loaded.config.extractors, snap.runs)
        self.query_one(LatestPane).show(snap.views, self.model.last_errors, stale_h)
        self.query_one(ProgressPane).show_clients(snap.clients)
        self.sub_title = str(self.ws.root) + (f" · locked by {snap.lock_holder}" if snap.lock_holder else "")
        if self.selected is None and self.loaded.config.extractors:
            self.select(self.loaded.config.extractors[0].name)
        elif self.selected is not None:
            self._show_selection()
        if self._scan_pending:
            self._scan_pending = False
            self.request_scan()

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
        series = [float(r.records) for r in reversed(runs) if r.status == "success"]
        self.query_one(LatestPane).set_spark(f"records per run · {self.selected}", series)
        if self.detail_run is None:
            self.query_one(RunDetail).show(self.selected or "", runs[0] if runs else None)

    # -- actions (keys, palette) -------------------------------------------------------------
    async def action_run_stage(self, stage: str) -> None:
        """Run one stage (or the whole chain) for the selected account."""
        if self.selected is None:
            self.notify("select an account first (vault tree or LATEST table)", severity="warning")
            return
        stages = None if stage == "all" else [stage]
        await self._start(stages, [self.selected], f"{stage} {self.selected}")

    async def action_run_project(self) -> None:
        """Run the project stage alone (clients and charts, over every account)."""
        await self._start(["project"], None, "project (clients)")

    async def action_run_all(self) -> None:
        """Run every stage for every account."""
        await self._start(None, None, "everything")

    async def _start(self, stages: list[str] | None, accounts: list[str] | None, what: str) -> None:
        try:
            await self.engine.start(stages, accounts, force=stages is not None and "extract" not in stages)
        except LorchError as exc:
            self.notify(exc.render(), title="cannot start", severity="error", timeout=8)
            return
        self.notify(f"started: {what}")

    def action_cancel_task(self) -> None:
        """Cancel the selected running task, after asking."""
        task = actions.task_to_cancel(self)
        if task is None:
            self.notify("no running task selected", severity="warning")
            return

        async def answer(yes: bool | None) -> None:
            if yes:
                await self.engine.cancel(task)
                self.notify(f"cancelling {task}")

        self.push_screen(ConfirmScreen(f"Cancel {task}?"), answer)

    def action_validate(self) -> None:
        """Run `lorchestra validate` and show the result."""
        actions.validate(self)

    def action_filter(self) -> None:
        """Filter the focused pane."""
        actions.ask_filter(self, FilterScreen)

    def action_help(self) -> None:
        """Show the keys."""
        self.push_screen(HelpScreen())

    async def action_quit_app(self) -> None:
        """Quit; ask first when tasks are running, then cancel them cleanly."""
        if not self.engine.busy:
            self.exit(0)
            return

        async def answer(yes: bool | None) -> None:
            if yes:
                self.notify("cancelling running tasks...")
                await self.engine.cancel_all()
                self.exit(0)

        self.push_screen(ConfirmScreen("Tasks are running. Cancel them and quit?"), answer)
