"""Rich tables for narrow terminals: names stay whole, the other columns give way.

At 80 columns rich shrinks every column alike, so a task name became `canonize:…` and an
extractor name wrapped mid-word. A name column here never wraps or gets cut (its minimum
width is its longest value); rich then wraps or folds the other columns first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

NAME_KEYS = ("name", "task", "extractor", "job", "account", "run", "stage", "status", "transform", "id",
             "kind", "domain", "source", "stream", "loader")


DROP_FIRST = ("kind", "domain")
"""Name columns that go before the others when even the names do not fit."""


def longest_word(values: Iterable[str]) -> int:
    """The longest whitespace-separated word (a column narrower than it must wrap mid-word)."""
    return max((len(w) for v in values for w in v.split()), default=0)


def add_other_column(table: Table, header: str, values: list[str], **kwargs: Any) -> None:
    """A column that may wrap, but only between words (never inside a name in a list)."""
    table.add_column(header, min_width=max(longest_word(values), len(header)), overflow="fold", **kwargs)


def is_name(header: str) -> bool:
    """Whether a column holds names (identifiers that must never be cut)."""
    return header.lower() in NAME_KEYS


def add_name_column(table: Table, header: str, values: Iterable[str], **kwargs: Any) -> None:
    """A column whose cells are never wrapped nor cut."""
    width = max([len(header), *(len(v) for v in values)])
    table.add_column(header, no_wrap=True, min_width=width, overflow="ignore", **kwargs)


def fit_keys(rows: list[dict[str, Any]], width: int, min_other: int = 12) -> tuple[list[str], list[str]]:
    """The columns that fit ``width`` (names whole, others at least ``min_other`` wide), and the
    columns dropped to make them fit: other columns from the right first, then name columns
    from the right; the first column always stays."""
    keys = list(rows[0]) if rows else []

    def need(k: str) -> int:
        longest = max([len(k), *(len(str(r[k])) for r in rows)])
        return (longest if is_name(k) else max(longest_word([str(r[k]) for r in rows]),
                                               min(longest, min_other))) + 3  # padding and rule

    kept = list(keys)
    dropped: list[str] = []
    while sum(need(k) for k in kept) + 1 > width:
        others = ([k for k in kept[1:] if not is_name(k)] or [k for k in kept[1:] if k in DROP_FIRST]
                  or kept[1:])
        if not others:
            break
        kept.remove(others[-1])
        dropped.insert(0, others[-1])
    return kept, dropped


@dataclass(frozen=True)
class Gives:
    """How a column of a :func:`fitted_table` gives way when the table is too wide."""

    least: int
    """The width below which the column is left out instead."""
    how: str = "words"
    """``words`` (wrap between words), ``fold`` (ids and references: cut anywhere onto the
    next line) or ``cut`` (one line, an ellipsis at the end: titles)."""


QUERY_GIVES = {"title": Gives(10, "cut"), "id": Gives(16, "fold")}
"""``query``: the title cut and the id folded; kind, source, account and time whole."""
QUERY_LEAVE_OUT = ("id", "title", "time")
TITLE_MAX = 60


def fitted_table(columns: list[str], rows: list[list[str]], width: int, gives: dict[str, Gives],
                 leave_out: Sequence[str], right: Iterable[str] = ()) -> tuple[Table, list[str]]:
    """A table at most ``width`` wide: the columns of ``gives`` share what the others (whole:
    never wrapped nor cut) leave; when that is not enough, the columns of ``leave_out`` are
    left out in that order. Returns the table and the headers left out (the caller says so).
    At 80 columns rich shrank every column alike: `e…` for an e-mail's kind, an id two
    characters a line."""
    natural = {c: max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)}
    if "title" in natural:
        natural["title"] = min(natural["title"], TITLE_MAX)
    kept = list(columns)
    left_out: list[str] = []

    def room() -> int:  # what the giving columns share: 3 a column (padding, rule) and 1
        return width - 1 - sum(3 + (0 if c in gives else natural[c]) for c in kept)

    for col in leave_out:
        if room() >= sum(min(gives[c].least, natural[c]) for c in kept if c in gives):
            break
        if col in kept:
            kept.remove(col)
            left_out.append(col)
    sizes = _share(room(), {c: natural[c] for c in kept if c in gives},
                   {c: min(gives[c].least, natural[c]) for c in kept if c in gives})
    table = Table(show_lines=False)
    for c in kept:
        justify: Any = "right" if c in right else "left"
        how = gives[c].how if c in gives else None
        if how == "cut":
            table.add_column(c, overflow="ellipsis", no_wrap=True, width=sizes[c], justify=justify)
        elif how is not None:
            table.add_column(c, overflow="fold", width=sizes[c], justify=justify)
        else:
            table.add_column(c, no_wrap=True, width=natural[c], justify=justify)
    index = [columns.index(c) for c in kept]
    for r in rows:
        table.add_row(*(Text(r[i]) for i in index))  # Text: a title's [brackets] are not markup
    return table, left_out


def _share(room: int, natural: dict[str, int], least: dict[str, int]) -> dict[str, int]:
    """Widths for the giving columns within ``room``: their natural widths when they fit, else
    the widest narrowed first, none under its least."""
    out = dict(natural)
    while sum(out.values()) > room:
        movable = [c for c in out if out[c] > least[c]]
        if not movable:
            break
        widest = max(movable, key=lambda c: out[c])
        out[widest] -= 1
    return out


def whole_table(columns: Sequence[str], plain: list[list[str]], shown: list[list[Any]], width: int,
                drop: Sequence[str], right: Iterable[str] = ()) -> tuple[Table, list[str]]:
    """A borderless table of whole cells (never wrapped nor cut) at most ``width`` wide: the
    columns of ``drop`` are left out, in that order, until the rest fits. ``plain`` holds
    the cells' text (for widths), ``shown`` what is printed (markup). Returns the table and
    the headers left out (:func:`say_left_out`). Rich shrank every column alike at 80
    columns: an extractor name and a run id ended in ``…`` in ``status``."""
    natural = {c: max([len(c), *(len(r[i]) for r in plain)]) for i, c in enumerate(columns)}
    kept = list(columns)
    left_out: list[str] = []
    for col in drop:
        if sum(natural[c] + 2 for c in kept) - 2 <= width:  # two spaces between columns
            break
        if col in kept:
            kept.remove(col)
            left_out.append(col)
    table = Table(box=None, pad_edge=False, show_edge=False)
    for c in kept:
        table.add_column(c, no_wrap=True, width=natural[c], justify="right" if c in right else "left")
    index = [columns.index(c) for c in kept]
    for r in shown:
        table.add_row(*(r[i] for i in index))
    return table, left_out


def say_left_out(console: Console, headers: Sequence[str]) -> None:
    """The one line under a table that left columns out to fit the terminal."""
    if headers:
        console.print(f"({', '.join(headers)} not shown at this width: widen the terminal or use --json)",
                      style="dim", markup=False)
