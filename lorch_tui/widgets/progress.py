"""Stage progress pane: one row per task of the current run, totals underneath.

It is refreshed from :class:`lorch_tui.model.RunModel` once per flush, never per event:
rows are added, updated cell by cell where something changed, and re-sorted so running
tasks come first and queued ones last (or by the column the user chose: click a header or
press ``s``). The cursor stays on its task when rows move, so ``x`` and ``enter`` act on the
task the user sees. Columns take the width of their content; the table scrolls sideways
rather than cutting a state or a name.

Under a flood of progress events the table is the costliest thing on screen: any changed
cell makes Textual re-render every visible cell of it (10-15 ms a frame on the 2-core
machine), and a key pressed meanwhile waits. So a change of counters only (records, rate,
elapsed, the bar) repaints the table at most every :data:`COUNTERS_EVERY_S`; a change of the
table's shape (a task added or gone, a state, an error code, the sort) repaints at once. The
totals line underneath is one fixed line and is updated on every flush without a layout pass.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from engine.store.history import records_said
from lorch_tui.model import RunModel, TaskRow
from lorch_tui.widgets.fit import fit_columns

STATE_STYLE = {"running": "bold cyan", "retrying": "yellow", "queued": "dim", "success": "green",
               "skipped": "green", "failed": "bold red", "timeout": "bold red", "cancelled": "magenta",
               "abandoned": "magenta"}
COLUMNS = ("stage", "account", "state", "records", "rate", "elapsed", "progress")
COUNTERS_EVERY_S = 0.25
"""Least time between two table repaints that only move counters (4 Hz; the totals: 15 Hz)."""
RANK = {"running": 0, "retrying": 0, "failed": 1, "timeout": 1, "cancelled": 2, "abandoned": 2, "success": 2,
        "skipped": 2, "queued": 3}


def bar(row: TaskRow, width: int = 6) -> Text:
    """A text progress bar when a total is known, else a activity mark; an error code once failed."""
    if row.error_code and row.state not in ("running", "retrying", "queued"):
        return Text(row.error_code, style="red")
    if row.state in ("success", "skipped"):  # done: a total the source announced is not the count
        return Text("█" * width + " ok", style="green")
    if row.total:
        frac = min(1.0, row.records / row.total)
        filled = int(frac * width)
        return Text("█" * filled + "░" * (width - filled) + f" {frac:4.0%}", style="cyan")
    if row.state in ("running", "retrying"):
        return Text("working", style="cyan")
    if row.error_code:
        return Text(row.error_code, style="red")
    return Text("")


def number(value: object) -> float:
    """A sortable number from a cell like `1,234`, `56/s` or `3.5s` (- is -1)."""
    text = value.plain if isinstance(value, Text) else str(value)
    digits = text.replace(",", "").rstrip("/s").strip()
    try:
        return float(digits)
    except ValueError:
        return -1.0


def state_text(row: TaskRow) -> Text:
    """The state cell: the state, and while running the step a task of several steps is in
    (``running · resolve``; the sort looks at the first word only)."""
    label = f"{row.state} · {row.phase}" if row.phase and row.state == "running" else row.state
    return Text(label, style=STATE_STYLE.get(row.state, ""))


def cells(row: TaskRow, ambiguous: frozenset[str] = frozenset(),
          labels: dict[str, str] | None = None) -> tuple[object, ...]:
    """The visible cells of one task row; an account name two extractors of the config share
    (``mensio`` of a CRM and of the books) is shown as ``mensio (dataverse)``, as in LATEST;
    one only the run's tasks share (no config label) as its extractor's name, which is unique."""
    if labels and row.extractor in labels:
        who = labels[row.extractor]
    else:
        who = row.extractor if row.account in ambiguous else (row.account or row.extractor)
    return (row.stage, who, state_text(row),
            f"{row.records:,}", f"{row.rate:,.0f}/s" if row.rate else "-",
            f"{row.elapsed:5.1f}s" if row.started is not None else "-", bar(row))


class ProgressPane(Vertical):
    """The live table of tasks plus a totals line."""

    BINDINGS = [Binding("s", "cycle_sort", "sort")]
    ALLOW_MAXIMIZE = True  # `z` on its table maximises the whole pane: title, totals (plot) and all

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_by: str | None = None  # None: running first (the default order)
        self.labels: dict[str, str] = {}
        """Extractor -> ``account (source)`` for the accounts two extractors of the config share
        (as the LATEST table shows them)."""
        self.sort_reverse = False
        self._shape: tuple[object, ...] | None = None  # what last forced a repaint (see shape())
        self._painted_at = 0.0

    def compose(self) -> ComposeResult:
        table: DataTable[object] = DataTable(id="progress-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("no run yet: press R to run everything, r for the selected account",
                     id="progress-totals")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        self.border_title = "Stage progress"

    def starting(self, what: str) -> None:
        """Say at once that a run is being started (the engine may take a moment)."""
        self.query_one("#progress-totals", Static).update(
            Text(f"starting {what}: checking the workspace...", style="bold cyan"), layout=False)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        col = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if col == self.sort_by else False
        self.sort_by = col
        self._sort()

    def action_cycle_sort(self) -> None:
        """Sort by the next column (after the last: back to running-first)."""
        order: list[str | None] = [None, *COLUMNS]
        self.sort_by = order[(order.index(self.sort_by) + 1) % len(order)]
        self.sort_reverse = False
        self._sort()

    @property
    def table(self) -> DataTable[object]:
        """The task table."""
        return self.query_one(DataTable)

    def show(self, model: RunModel) -> None:
        """Bring the table and totals in line with the model (once per flush); counters only
        at most every :data:`COUNTERS_EVERY_S`, anything else at once."""
        totals = self.query_one("#progress-totals", Static)
        # one line, fixed height (styles/app.tcss): no layout pass for the whole screen
        totals.update(totals_text(model), layout=False)
        now = time.monotonic()
        shape = self.shape(model)
        if shape == self._shape and model.status == "running" and now - self._painted_at < COUNTERS_EVERY_S:
            return  # counters only, mid-run: the flush calls again while the run goes on
        self._shape, self._painted_at = shape, now
        self._show_rows(model)

    def shape(self, model: RunModel) -> tuple[object, ...]:
        """What must be shown at once when it changes: the run, its tasks, their states and
        codes, the order."""
        return (model.run_id, model.status, self.sort_by, self.sort_reverse,
                tuple((r.task_id, r.state, r.error_code) for r in model.tasks.values()))

    def _show_rows(self, model: RunModel) -> None:
        table = self.table
        present = {str(k.value) for k in table.rows}
        wanted = set(model.tasks)
        for gone in present - wanted:
            table.remove_row(gone)
        owners: dict[str, set[str]] = {}
        for row in model.tasks.values():
            if row.account and row.stage != "project":
                owners.setdefault(row.account, set()).add(row.extractor)
        ambiguous = frozenset(a for a, exs in owners.items() if len(exs) > 1)
        for row in model.tasks.values():
            values = cells(row, ambiguous, self.labels)
            if row.task_id not in present:
                table.add_row(*values, key=row.task_id)
                continue
            for col, value in zip(COLUMNS, values, strict=True):
                if table.get_cell(row.task_id, col) != value:
                    table.update_cell(row.task_id, col, value)  # widths: fit_columns below
        fit_columns(table)
        self._sort()

    def show_clients(self, counts: dict[str, int] | None) -> None:
        """The client layer's counts in the pane's title (numbers only: never a name)."""
        if counts is None:
            self.border_title = "Stage progress"
            return
        critical = counts.get("measures_critical_unlinked", 0)  # a positive item 9 in no chart: first
        self.border_title = ((f"CRITICAL UNLINKED {critical:,} · " if critical else "")
                             + f"Stage progress · clients {counts['clients']:,} · links "
                             f"{counts['links']:,} · conflicts {counts['conflicts']:,} · "
                             f"unlinked {counts['unlinked']:,}" + _measures_text(counts))

    def _sort(self) -> None:
        """Re-sort, keeping the cursor on the task it was on."""
        table = self.table
        if not table.row_count:
            return
        keep = self.selected_task() if table.has_focus else None  # the row the user is on
        if self.sort_by is None:
            table.sort("state", "account", key=sort_key)
        elif self.sort_by in ("records", "rate", "elapsed"):
            table.sort(self.sort_by, key=number, reverse=self.sort_reverse)
        else:
            table.sort(self.sort_by, key=lambda v: v.plain if isinstance(v, Text) else str(v),
                       reverse=self.sort_reverse)
        label = "running first" if self.sort_by is None else f"by {self.sort_by}{' ↓' if self.sort_reverse else ''}"
        self.border_subtitle = f"sorted {label} · s: sort · enter: detail"
        if keep is not None and keep in {str(k.value) for k in table.rows}:
            table.move_cursor(row=table.get_row_index(keep), animate=False)

    def selected_task(self) -> str | None:
        """The task id under the cursor."""
        table = self.table
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(key.value) if key.value is not None else None


def _measures_text(counts: dict[str, int]) -> str:
    """`` · measures scored N · not scored M[ · duplicates D]`` when anything was scored or refused.

    Duplicates (a response scored from its Forms API copy, seen again in the linked sheet)
    are their own figure: they are not failures.
    """
    scored, refused = counts.get("measures_scored", 0), counts.get("measures_not_scored", 0)
    duplicates = counts.get("measures_duplicates", 0)
    if not scored and not refused:
        return ""
    extra = f" · duplicates {duplicates:,}" if duplicates else ""
    return f" · measures scored {scored:,} · not scored {refused:,}{extra}"


def sort_key(values: tuple[object, object]) -> tuple[int, str]:
    """Running first, then ended, then queued; by account within each."""
    state, account = values
    return RANK.get(str(state).split(" ")[0], 4), str(account)


def totals_text(model: RunModel) -> Text:
    """`running: 3 running, 9 queued, 2 done · 12,345 records extracted · run 2026... (cron)`:
    what matters first, the run's id last (the line is one row: a narrow pane cuts its end,
    which cut the counts and records when the id came first)."""
    if model.run_id is None:
        return Text("no run yet: press R to run everything, r for the selected account", style="dim")
    counts = model.counts()
    parts = [f"{n} {state}" for state, n in sorted(counts.items())]
    who = f" ({model.trigger})" if model.trigger else ""
    text = Text(f"{model.status}: ", style="bold", no_wrap=True, overflow="ellipsis")  # one row: cut, not wrapped
    text.append(", ".join(parts))
    text.append(f" · {records_said(model.counted, model.extracted())}")
    text.append(f" · run {model.run_id}{who}", style="dim")
    return text
