"""Tables of any length: rich for a screenful, plain aligned lines beyond that.

rich lays a table out cell by cell (measure, wrap, pad, crop): about 0.3-0.4 ms per row. On
a 1,000,000-record workspace `lorchestra clients unlinked` (189,546 rows) took 77 s and
`clients list` (26,666 clients) 7.4 s, all of it before the first line appeared. Above
:data:`RICH_ROWS` rows the rows are written as plain lines instead, formatted and written in
blocks: columns separated by two spaces and padded to their widest value. On a terminal the
widest columns give way until a row fits its width, and a longer value continues on the
next lines in its own column (never cut); into a pipe or a file each row is one line, ready
for `grep` and `sort`. Control characters in values (a title with an escape sequence) are
shown as U+FFFD, never sent to the terminal.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

RICH_ROWS = int(os.environ.get("LORCH_RICH_TABLE_ROWS", "1000"))
"""Rows above which a table is printed as plain lines (``LORCH_RICH_TABLE_ROWS``)."""
MIN_WIDTH = 12
"""A column that gives way keeps at least this many characters (or its header's)."""
GAP = "  "
BLOCK = 2048
"""Lines per write."""

_CONTROLS = {c: " " for c in (9, 10, 13)} | {c: "\ufffd" for c in (
    *range(32), *range(127, 160),
    *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)  # bidi overrides and marks
    if c not in (9, 10, 13)}
"""C0/C1 controls and DEL, and the bidirectional controls: a subject with U+202E would print
the rest of its line (the next columns included) right to left, hiding what it says."""


def clean(value: object) -> str:
    """A cell's text: ``None`` empty, whitespace controls a space, other controls (bidi
    overrides too) U+FFFD."""
    return "" if value is None else str(value).translate(_CONTROLS)


def print_table(console: Console, columns: Sequence[str], rows: Sequence[Sequence[object]],
                rich_table: Callable[[], Table], whole: Sequence[str] = ()) -> None:
    """``rich_table()`` for up to :data:`RICH_ROWS` rows, else the rows as plain lines (the
    columns named in ``whole`` keep their width; the others give way)."""
    if len(rows) <= RICH_ROWS:
        console.print(rich_table())
        return
    cells = [[clean(v) for v in row] for row in rows]
    width = console.width if console.is_terminal else None
    natural = column_widths(columns, cells)
    floors = [n if c in whole else len(c) for c, n in zip(columns, natural, strict=True)]
    widths = fit(natural, floors, width)
    out = console.file
    block = [_line(list(columns), widths), GAP.join("-" * w for w in widths)]
    for row in cells:
        block.extend(_lines(row, widths))
        if len(block) >= BLOCK:
            out.write("\n".join(block) + "\n")
            block = []
    if block:
        out.write("\n".join(block) + "\n")
    out.flush()


def column_widths(columns: Sequence[str], cells: list[list[str]]) -> list[int]:
    """Each column's widest value (or header)."""
    widths = [len(c) for c in columns]
    for row in cells:
        for i, v in enumerate(row):
            if len(v) > widths[i]:
                widths[i] = len(v)
    return widths


def fit(widths: list[int], headers: list[int], width: int | None) -> list[int]:
    """Narrow the widest columns until a row fits ``width`` (None: no limit); each keeps at
    least :data:`MIN_WIDTH` characters or its ``headers`` width (a floor)."""
    out = list(widths)
    if width is None:
        return out
    floors = [max(MIN_WIDTH, h) for h in headers]
    while (over := sum(out) + len(GAP) * (len(out) - 1) - width) > 0:
        movable = [k for k in range(len(out)) if out[k] > floors[k]]
        if not movable:
            break  # nothing can give way: the terminal wraps what is left
        i = max(movable, key=lambda k: out[k])
        second = max((out[k] for k in range(len(out)) if k != i), default=0)
        out[i] = max(floors[i], out[i] - over, min(second, out[i] - 1))  # level down, 1 at least
    return out


def _line(row: list[str], widths: list[int]) -> str:
    return GAP.join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()


def _lines(row: list[str], widths: list[int]) -> list[str]:
    """One row: one line, or more when a value is wider than its column."""
    if all(len(v) <= w for v, w in zip(row, widths, strict=True)):
        return [_line(row, widths)]
    parts = [textwrap.wrap(v, w, break_long_words=True, break_on_hyphens=False) or [""]
             if len(v) > w else [v] for v, w in zip(row, widths, strict=True)]
    return [_line([p[k] if k < len(p) else "" for p in parts], widths)
            for k in range(max(len(p) for p in parts))]
