"""LATEST pointers pane: one row per extractor, with freshness and currency, and a plot.

Rows come from :func:`engine.ops.inspect.account_views` (read in a thread by the app); a
stale or missing LATEST is highlighted. Moving the cursor posts an intent message; the app
decides what selection means. Columns take the width of their content (the table scrolls
sideways rather than cutting a name); two accounts of the same name are told apart by their
source, in brackets. Click a header or press ``s`` to sort; a filter on shows in the border.
Under the table, a plot of records and duration per run of the selected account.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from engine.config import Extractor
from engine.ops.inspect import AccountView, RunInfo
from lorch_tui.widgets.fit import fit_columns
from lorch_tui.widgets.plot import RunPlot, points

# most important first: when a narrow pane must scroll sideways, the flags go out of view first
COLUMNS = ("account", "LATEST run", "records", "age", "last error", "canon", "index", "drift")
LABELS = ("account", "LATEST run", "records", "age", "error", "canon", "index", "drift")
DRIFT_STYLES = {"!": "bold red", "Δ": "yellow", "?": "yellow", "✓": "green"}
"""Drift marks (``lorchestra drift``): ! a transform reads a vanished field, Δ fields changed,
? a transform reads a field no record has, ✓ none, - unknown."""


def age_text(seconds: float | None) -> str:
    """Compact age: 45s, 12m, 5h, 3d."""
    if seconds is None:
        return "never"
    if seconds < 0:
        return "future?"  # written after now: the clock was set back
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def flag(value: bool | None, extracted: bool = False) -> Text:
    """✓ current, ✗ behind (also: missing, or unreadable, for an account that has a LATEST:
    `status` says missing/outdated/corrupt there), - nothing extracted yet."""
    if value is None and not extracted:
        return Text("-", style="dim")
    return Text("✓", style="green") if value else Text("✗", style="yellow")


def account_label(ex: Extractor, ambiguous: bool) -> str:
    """The account, with its source when another extractor has an account of the same name."""
    return f"{ex.account} ({ex.source})" if ambiguous else ex.account


def row_cells(v: AccountView, error: str, stale_after_hours: float, ambiguous: bool = False) -> tuple[object, ...]:
    """The visible cells of one extractor's row; stale rows are highlighted."""
    stale = v.stale(stale_after_hours)
    return (
        Text(account_label(v.extractor, ambiguous), style="bold yellow" if stale else ""),
        v.latest_run or (Text("damaged", style="bold red") if v.latest_damaged else Text("none", style="dim")),
        f"{v.latest_records:,}" if v.latest_records is not None else "-",
        Text(age_text(v.latest_age_s), style="bold yellow" if stale else "green"),
        Text(error, style="bold red"), flag(v.canonical_current, v.latest_run is not None),
        flag(v.index_current, v.latest_run is not None),
        Text(v.drift or "-", style=DRIFT_STYLES.get(v.drift or "-", "dim")),
    )


def matches(ex: Extractor, text: str) -> bool:
    """Whether a filter keeps an extractor: part of its name, account, source or domain."""
    t = text.lower()
    return any(t in part.lower() for part in (ex.name, ex.account, ex.source, ex.domain))


def sort_value(value: object) -> tuple[int, float, str]:
    """Numbers (`1,234`, `5h`) sort as numbers, text as text, blanks last."""
    text = value.plain if isinstance(value, Text) else str(value)
    if text in ("", "-", "none", "never"):
        return (1, 0.0, "")
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    digits = text.replace(",", "")
    try:
        if digits[-1] in scale and digits[:-1].isdigit():
            return (0, float(digits[:-1]) * scale[digits[-1]], "")
        return (0, float(digits), "")
    except (ValueError, IndexError):
        return (0, 0.0, text.lower())


class LatestPane(Vertical):
    """The LATEST table and the selected account's records-and-duration plot."""

    BINDINGS = [Binding("s", "cycle_sort", "sort")]
    ALLOW_MAXIMIZE = True  # `z` on its table maximises the whole pane: title, totals (plot) and all

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
        self.sort_by: str | None = None  # None: config order
        self.sort_reverse = False

    def compose(self) -> ComposeResult:
        table: DataTable[object] = DataTable(id="latest-table", cursor_type="row", zebra_stripes=True)
        table.loading = True  # until the first scan arrives
        yield table
        yield RunPlot(id="latest-plot")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col, label in zip(COLUMNS, LABELS, strict=True):
            table.add_column(label, key=col)
        self._titles()

    def _titles(self) -> None:
        self.border_title = f"LATEST · filter: {self.filter}" if self.filter else "LATEST"
        self.border_subtitle = ("config order" if self.sort_by is None else
                                f"by {self.sort_by}{' ↓' if self.sort_reverse else ''}") + " · s: sort"

    def show(self, views: list[AccountView], errors: dict[str, str], stale_after_hours: float) -> None:
        """Bring the rows in line with ``views``, cell by cell (the cursor stays put)."""
        self._views, self._errors, self._stale_h = views, errors, stale_after_hours
        table = self.query_one(DataTable)
        table.loading = False
        wanted = {v.extractor.name: v for v in views
                  if not self.filter or matches(v.extractor, self.filter)}
        present = {str(k.value) for k in table.rows}
        for gone in present - set(wanted):
            table.remove_row(gone)
        seen: dict[str, int] = {}
        for v in views:
            seen[v.extractor.account] = seen.get(v.extractor.account, 0) + 1
        for name, v in wanted.items():
            values = row_cells(v, errors.get(name, ""), stale_after_hours, seen[v.extractor.account] > 1)
            if name not in present:
                table.add_row(*values, key=name)
                continue
            for col, value in zip(COLUMNS, values, strict=True):
                if table.get_cell(name, col) != value:
                    table.update_cell(name, col, value, update_width=True)
        fit_columns(table)
        self._sort()

    def _sort(self) -> None:
        table = self.query_one(DataTable)
        if self.sort_by is None or not table.row_count:
            return
        keep = self.selected()
        table.sort(self.sort_by, key=sort_value, reverse=self.sort_reverse)
        if keep is not None:
            with self.prevent(DataTable.RowHighlighted):
                table.move_cursor(row=table.get_row_index(keep), animate=False)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        col = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if col == self.sort_by else False
        self.sort_by = col
        self._resort()

    def action_cycle_sort(self) -> None:
        """Sort by the next column (after the last: back to config order)."""
        order: list[str | None] = [None, *COLUMNS]
        self.sort_by = order[(order.index(self.sort_by) + 1) % len(order)]
        self.sort_reverse = False
        self._resort()

    def _resort(self) -> None:
        self._titles()
        if self.sort_by is None:  # config order: rebuild the rows in that order
            self.query_one(DataTable).clear()
            self.show(self._views, self._errors, self._stale_h)
        else:
            self._sort()

    def set_filter(self, text: str) -> None:
        """Show only extractors whose name, account, source or domain contains ``text``."""
        self.filter = text
        self._titles()
        self.query_one(DataTable).clear()
        self.show(self._views, self._errors, self._stale_h)

    def set_history(self, extractor: str, runs: list[RunInfo], durations: dict[str, float]) -> None:
        """Plot the selected account's runs (``runs`` newest first)."""
        self.query_one(RunPlot).show(extractor, points(runs, durations))

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
