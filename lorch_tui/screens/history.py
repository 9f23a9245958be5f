"""The run history screen (``H``): past runs from ``state/lorch.sqlite`` and their tasks.

The top table lists the newest runs (trigger, status, start, duration, tasks, records); the
bottom one shows the tasks of the run under the cursor (status, records, duration, error
code, exit code). Both are read in a thread with the standard ``sqlite3`` (read-only), so a
large history never blocks the dashboard. Only PHI-free columns exist in that database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from engine.store.history import HistoryCorrupt, records_cell, task_rows
from lorch_tui.scan import newest_runs
from lorch_tui.widgets.progress import STATE_STYLE

RUN_COLUMNS = ("run", "trigger", "status", "started", "duration", "tasks", "failed", "records")
TASK_COLUMNS = ("task", "status", "attempt", "records", "duration", "error", "exit")
LIMIT = 500


def status_text(status: str) -> Text:
    """A status in its colour."""
    return Text(status, style=STATE_STYLE.get(status, "yellow"))


def seconds(value: Any) -> str:
    """`12.3s`, or - when unknown."""
    return f"{float(value):.1f}s" if value is not None else "-"


class HistoryScreen(Screen[None]):
    """Every run the history recorded, newest first, and the tasks of the selected one."""

    BINDINGS = [Binding("escape,q,H", "close", "back"), Binding("tab", "app.focus_next", "next table")]

    def __init__(self, db: Path) -> None:
        super().__init__()
        self.db = db
        self._shown_run: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the run history...", id="history-title")
        yield DataTable(id="history-runs", cursor_type="row", zebra_stripes=True)
        yield DataTable(id="history-tasks", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        runs = self.query_one("#history-runs", DataTable)
        for col in RUN_COLUMNS:
            runs.add_column(col, key=col)
        tasks = self.query_one("#history-tasks", DataTable)
        for col in TASK_COLUMNS:
            tasks.add_column(col, key=col)
        runs.border_title, tasks.border_title = "Runs (newest first)", "Tasks of the selected run"
        runs.focus()
        self.run_worker(self._load_runs, thread=True, group="history")

    def _load_runs(self) -> None:
        rows = newest_runs(self.db, LIMIT)  # a killed run is `abandoned`, as `status` says
        self.app.call_from_thread(self._show_runs, rows)

    def _show_runs(self, rows: list[dict[str, Any]] | HistoryCorrupt) -> None:
        table = self.query_one("#history-runs", DataTable)
        title = self.query_one("#history-title", Static)
        if isinstance(rows, HistoryCorrupt):
            # damaged, or locked / unreadable now: each says which (HistoryUnreadable's own words)
            title.update(Text(f"{rows}. Fix: {rows.hint}", style="red"))
            return
        if not rows:
            title.update(Text(f"no runs recorded yet in {self.db}", style="dim"))
            return
        title.update(Text(f"{len(rows)} run(s) from {self.db} · enter or move: its tasks · esc: back",
                          style="dim"))
        for r in rows:
            ok = f"{r['succeeded']}/{r['tasks']}"
            table.add_row(r["run_id"], r["trigger"], status_text(r["status"]),
                          str(r["started_at"])[:19].replace("T", " "), seconds(r["duration_s"]), ok,
                          str(r["failed"]), records_cell(r), key=r["run_id"])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "history-runs" or event.row_key.value is None:
            return
        run_id = str(event.row_key.value)
        if run_id == self._shown_run:
            return
        self._shown_run = run_id
        db = self.db

        def load() -> None:
            try:
                rows = task_rows(db, run_id)
            except HistoryCorrupt:
                rows = []
            self.app.call_from_thread(self._show_tasks, run_id, rows)

        self.run_worker(load, thread=True, group="history-tasks", exclusive=True)

    def _show_tasks(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        if run_id != self._shown_run:
            return
        table = self.query_one("#history-tasks", DataTable)
        table.clear()
        table.border_title = f"Tasks of {run_id}"
        for r in rows:
            table.add_row(r["task_id"], status_text(r["status"]), str(r["attempt"]), f"{r['records']:,}",
                          seconds(r["duration_s"]), Text(r["error_code"] or "", style="red"),
                          "" if r["exit_code"] is None else str(r["exit_code"]), key=r["task_id"])

    def action_close(self) -> None:
        self.dismiss(None)
