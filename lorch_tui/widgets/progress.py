"""Stage progress pane: one row per task of the current run, totals underneath.

It is refreshed from :class:`lorch_tui.model.RunModel` once per flush, never per event:
rows are added, updated cell by cell where something changed, and re-sorted so running
tasks come first and queued ones last.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from lorch_tui.model import RunModel, TaskRow

STATE_STYLE = {"running": "bold cyan", "retrying": "yellow", "queued": "dim", "success": "green",
               "skipped": "green", "failed": "bold red", "timeout": "bold red", "cancelled": "magenta"}
COLUMNS = ("stage", "account", "state", "records", "rate", "elapsed", "progress")
WIDTHS = (8, 18, 9, 7, 7, 7, 10)
RANK = {"running": 0, "retrying": 0, "failed": 1, "timeout": 1, "cancelled": 2, "success": 2,
        "skipped": 2, "queued": 3}


def bar(row: TaskRow, width: int = 6) -> Text:
    """A text progress bar when a total is known, else a activity mark."""
    if row.total:
        frac = min(1.0, row.records / row.total)
        filled = int(frac * width)
        return Text("█" * filled + "░" * (width - filled) + f" {frac:4.0%}", style="cyan")
    if row.state in ("running", "retrying"):
        return Text("working", style="cyan")
    if row.state in ("success", "skipped"):
        return Text("█" * width + " ok", style="green")
    if row.error_code:
        return Text(row.error_code, style="red")
    return Text("")


def cells(row: TaskRow) -> tuple[object, ...]:
    """The visible cells of one task row."""
    return (row.stage, row.account or row.extractor,
            Text(row.state, style=STATE_STYLE.get(row.state, "")),
            f"{row.records:,}", f"{row.rate:,.0f}/s" if row.rate else "-",
            f"{row.elapsed:5.1f}s" if row.started is not None else "-", bar(row))


class ProgressPane(Vertical):
    """The live table of tasks plus a totals line."""

    def compose(self) -> ComposeResult:
        table: DataTable[object] = DataTable(id="progress-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("no run yet: press R to run everything, r for the selected account",
                     id="progress-totals")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for col, width in zip(COLUMNS, WIDTHS, strict=True):
            table.add_column(col, key=col, width=width)
        self.border_title = "Stage progress"

    @property
    def table(self) -> DataTable[object]:
        """The task table."""
        return self.query_one(DataTable)

    def show(self, model: RunModel) -> None:
        """Bring the table and totals in line with the model (once per flush)."""
        table = self.table
        present = {str(k.value) for k in table.rows}
        wanted = set(model.tasks)
        for gone in present - wanted:
            table.remove_row(gone)
        for row in model.tasks.values():
            values = cells(row)
            if row.task_id not in present:
                table.add_row(*values, key=row.task_id)
                continue
            for col, value in zip(COLUMNS, values, strict=True):
                if table.get_cell(row.task_id, col) != value:
                    table.update_cell(row.task_id, col, value)
        if table.row_count:
            table.sort("state", "account", key=sort_key)
        self.query_one("#progress-totals", Static).update(totals_text(model))

    def show_clients(self, counts: dict[str, int] | None) -> None:
        """The client layer's counts under the table (numbers only: never a name)."""
        if counts is None:
            self.border_subtitle = ""
            return
        self.border_subtitle = (f"clients {counts['clients']:,} · links {counts['links']:,} · "
                                f"conflicts {counts['conflicts']:,} · unlinked {counts['unlinked']:,}"
                                + _measures_text(counts))

    def selected_task(self) -> str | None:
        """The task id under the cursor."""
        table = self.table
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(key.value) if key.value is not None else None


def _measures_text(counts: dict[str, int]) -> str:
    """`` · measures scored N · not scored M`` when anything was scored or refused."""
    scored, refused = counts.get("measures_scored", 0), counts.get("measures_not_scored", 0)
    if not scored and not refused:
        return ""
    return f" · measures scored {scored:,} · not scored {refused:,}"


def sort_key(values: tuple[object, object]) -> tuple[int, str]:
    """Running first, then ended, then queued; by account within each."""
    state, account = values
    return RANK.get(str(state).split(" ")[0], 4), str(account)


def totals_text(model: RunModel) -> Text:
    """`run 2026... running: 3 running, 9 queued, 2 done · 12,345 records`."""
    if model.run_id is None:
        return Text("no run yet: press R to run everything, r for the selected account", style="dim")
    counts = model.counts()
    parts = [f"{n} {state}" for state, n in sorted(counts.items())]
    who = f" ({model.trigger})" if model.trigger else ""
    text = Text(f"run {model.run_id}{who} {model.status}: ", style="bold")
    text.append(", ".join(parts))
    text.append(f" · {model.records:,} records extracted")
    return text
