"""Long tables on the command line (lorch_tui/bigtable.py): every value printed, fast, safe.

A rich Console writing into a StringIO stands in for the terminal (``force_terminal`` and a
width) or for a pipe; the CLI's own use is tested on a real projected workspace in
tests/engine/test_clients_stage.py.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table

from lorch_tui import bigtable

COLUMNS = ["document", "time", "title", "reason"]


def rows(n: int) -> list[list[object]]:
    return [[f"gmail:acct:email:{i:06d}-" + "x" * (i % 90), f"2024-01-{1 + i % 28:02d}T10:00:00Z",
             " ".join(f"word{j}" for j in range(i % 23)), "no_key" if i % 2 else None] for i in range(n)]


def rich_table(data: list[list[object]]) -> Table:
    table = Table()
    for col in COLUMNS:
        table.add_column(col)
    for row in data:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def printed(data: list[list[object]], *, terminal: bool, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=width, color_system=None)
    bigtable.print_table(console, COLUMNS, data, lambda: rich_table(data))
    return out.getvalue()


@pytest.fixture(autouse=True)
def few_rich_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bigtable, "RICH_ROWS", 50)


def test_up_to_the_threshold_the_rich_table_is_printed() -> None:
    text = printed(rows(50), terminal=False)
    assert "┃" in text and "│" in text  # rich's box


def test_into_a_pipe_each_row_is_one_line_with_every_value() -> None:
    data = rows(500)
    lines = printed(data, terminal=False).splitlines()
    assert lines[0].split() == COLUMNS and set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + len(data) and "│" not in "".join(lines)
    for row, line in zip(data, lines[2:], strict=True):
        cells = [bigtable.clean(v) for v in row]
        assert line == bigtable.GAP.join(  # aligned to the widest value of each column
            c.ljust(len(h)) for c, h in zip(cells, lines[1].split(bigtable.GAP), strict=True)).rstrip()


def test_on_a_terminal_rows_fit_its_width_and_long_values_continue_below() -> None:
    data = rows(300)
    text = printed(data, terminal=True, width=70)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 70
    rule = lines[1].split(bigtable.GAP)
    assert len(rule) == 4 and all(len(r) >= bigtable.MIN_WIDTH or len(r) >= len(h)
                                  for r, h in zip(rule, COLUMNS, strict=True))
    starts = [len(r) + len(bigtable.GAP) for r in rule]
    bounds = [0]
    for w in starts:
        bounds.append(bounds[-1] + w)
    columns: list[list[str]] = [[] for _ in COLUMNS]
    for line in lines[2:]:  # cut each line at the column bounds: a value's pieces, in order
        for k in range(4):
            columns[k].append(line[bounds[k]:bounds[k + 1]].strip())
    ids = "".join(columns[0])
    for row in data:  # every document id is there whole, split only at the column's width
        assert str(row[0]) in ids
    first_col = [c for c in columns[0] if c.startswith("gmail:")]
    assert len(first_col) == len(data)
    titles = " ".join(c for c in columns[2] if c)
    assert all(str(row[2]) in titles for row in data if row[2])


def test_control_characters_never_reach_the_terminal() -> None:
    data = rows(60)
    data[7][2] = "Subject \x1b[2J\x1b]0;owned\x07 with\ttab\nand newline \x9b"
    text = printed(data, terminal=False)
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\t" not in text
    assert "Subject \ufffd[2J\ufffd]0;owned\ufffd with tab and newline \ufffd" in text
    assert len(text.splitlines()) == 2 + len(data)


def test_fit_levels_the_widest_columns_and_keeps_their_floor() -> None:
    assert bigtable.fit([100, 20, 5], [8, 4, 6], 60) == [31, 20, 5]  # 31 + 20 + 5 + 2 gaps of 2 = 60
    assert bigtable.fit([40, 40], [3, 3], 42) == [20, 20]
    assert bigtable.fit([30, 30, 30], [20, 20, 20], 10) == [20, 20, 20]  # never under a header
    assert bigtable.fit([30, 30], [2, 2], None) == [30, 30]
