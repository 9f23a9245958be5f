"""Rich tables for narrow terminals: names stay whole, the other columns give way.

At 80 columns rich shrinks every column alike, so a task name became `canonize:…` and an
extractor name wrapped mid-word. A name column here never wraps or gets cut (its minimum
width is its longest value); rich then wraps or folds the other columns first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table

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
