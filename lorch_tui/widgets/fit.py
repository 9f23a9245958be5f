"""Columns as wide as their widest cell, every time (names, states and error codes never cut).

``DataTable.update_cell(update_width=True)`` only widens a column on the table's next idle
moment, which a busy dashboard (15 Hz flush, live plot) can postpone past the next paint, and
under load a just-updated error code showed cut (`TAP_E`). The panes call :func:`fit_columns`
after each update, which sets every column's content width from its cells at once.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable


def width_of(value: Any) -> int:
    """Cells a value takes on one line."""
    return Text(value).cell_len if isinstance(value, str) else (
        value.cell_len if isinstance(value, Text) else cell_len(str(value)))


def fit_columns(table: DataTable[Any]) -> None:
    """Set each column's content width to its widest cell or label; repaint if one changed."""
    changed = False
    for key, column in table.columns.items():
        need = max([width_of(column.label), *(width_of(v) for v in table.get_column(key))])
        if column.content_width != need:
            column.content_width = need
            changed = True
    if changed:
        table._require_update_dimensions = True  # noqa: SLF001 - recompute the virtual size now
        table.refresh(layout=True)
