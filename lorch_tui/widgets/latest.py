"""LATEST pointers pane: one row per extractor, with freshness and currency, and a sparkline.

Rows come from :func:`engine.inspect.account_views` (read in a thread by the app); a
stale or missing LATEST is highlighted. Moving the cursor posts an intent message; the app
decides what selection means.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Sparkline, Static

from engine.inspect import AccountView

COLUMNS = ("account", "LATEST run", "records", "age", "canon", "index", "drift", "last error")
LABELS = ("account", "LATEST run", "records", "age", "canon", "index", "drift", "error")
WIDTHS = (21, 16, 7, 4, 5, 5, 5, 12)
DRIFT_STYLES = {"!": "bold red", "Δ": "yellow", "?": "yellow", "✓": "green"}
"""Drift marks (``lorchestra drift``): ! a transform reads a vanished field, Δ fields changed,
? a transform reads a field no record has, ✓ none, - unknown."""


def age_text(seconds: float | None) -> str:
    """Compact age: 45s, 12m, 5h, 3d."""
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def flag(value: bool | None) -> Text:
    """✓ current, ✗ behind, - unknown."""
    if value is None:
        return Text("-", style="dim")
    return Text("✓", style="green") if value else Text("✗", style="yellow")


def row_cells(v: AccountView, error: str, stale_after_hours: float) -> tuple[object, ...]:
    """The visible cells of one extractor's row; stale rows are highlighted."""
    stale = v.stale(stale_after_hours)
    return (
        Text(v.extractor.account, style="bold yellow" if stale else ""),
        v.latest_run or Text("none", style="dim"),
        f"{v.latest_records:,}" if v.latest_records is not None else "-",
        Text(age_text(v.latest_age_s), style="bold yellow" if stale else "green"),
        flag(v.canonical_current), flag(v.index_current),
        Text(v.drift or "-", style=DRIFT_STYLES.get(v.drift or "-", "dim")), Text(error, style="bold red"),
    )


class LatestPane(Vertical):
    """The LATEST table and the selected account's records-per-run sparkline."""

    class AccountSelected(Message):
        """The user moved to an extractor's row."""

        def __init__(self, extractor: str) -> None:
            super().__init__()
            self.extractor = extractor

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter = ""
        self._views: list[AccountView] = []
        self._errors: dict[str, str] = {}
        self._stale_h = 26.0

    def compose(self) -> ComposeResult:
        yield DataTable(id="latest-table", cursor_type="row", zebra_stripes=True)
        yield Static("records per run", id="spark-label")
        yield Sparkline([], id="latest-spark")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col, label, width in zip(COLUMNS, LABELS, WIDTHS, strict=True):
            table.add_column(label, key=col, width=width)
        self.border_title = "LATEST"

    def show(self, views: list[AccountView], errors: dict[str, str], stale_after_hours: float) -> None:
        """Bring the rows in line with ``views``, cell by cell (the cursor stays put)."""
        self._views, self._errors, self._stale_h = views, errors, stale_after_hours
        table = self.query_one(DataTable)
        wanted = {v.extractor.name: v for v in views
                  if not self.filter or self.filter.lower() in v.extractor.name.lower()}
        present = {str(k.value) for k in table.rows}
        for gone in present - set(wanted):
            table.remove_row(gone)
        for name, v in wanted.items():
            values = row_cells(v, errors.get(name, ""), stale_after_hours)
            if name not in present:
                table.add_row(*values, key=name)
                continue
            for col, value in zip(COLUMNS, values, strict=True):
                if table.get_cell(name, col) != value:
                    table.update_cell(name, col, value)

    def set_filter(self, text: str) -> None:
        """Show only extractors whose name contains ``text``."""
        self.filter = text
        self.query_one(DataTable).clear()
        self.show(self._views, self._errors, self._stale_h)

    def set_spark(self, label: str, values: list[float]) -> None:
        """Show the records-per-run series of the selected account (oldest first)."""
        self.query_one("#latest-spark", Sparkline).data = values
        self.query_one("#spark-label", Static).update(label)

    def selected(self) -> str | None:
        """The extractor under the cursor."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(key.value) if key.value is not None else None

    def select(self, extractor: str) -> None:
        """Move the cursor to an extractor's row (no message is posted back)."""
        table = self.query_one(DataTable)
        if extractor in {str(k.value) for k in table.rows}:
            with self.prevent(DataTable.RowHighlighted):
                table.move_cursor(row=table.get_row_index(extractor))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.AccountSelected(str(event.row_key.value)))
