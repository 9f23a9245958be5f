"""``measures.md`` of a chart folder: one table per measure over time.

Each row is one scored response: the date, the score, its band, the change from the first
and from the previous score of the same measure, and the flags (a critical item, a prorated
total). Rendering is a pure function of the measurements, so an unchanged chart stays
byte-identical and is never rewritten.
"""

from __future__ import annotations

from typing import Any

from engine.clients.markdown import inline
from engine.measures.registry import Registry


def _cell(value: object) -> str:
    """One line of Markdown (a heading or a cell): control characters a space, markup escaped
    (``engine.clients.markdown.inline``, as every other chart file), ``|`` escaped."""
    text = " ".join(inline(value).split()) if value is not None else ""
    return text.replace("|", "\\|") or "-"


def _change(now: int, then: int | None) -> str:
    if then is None:
        return "-"
    d = now - then
    return f"+{d}" if d > 0 else str(d)


def ordered(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first (ties by response), as the trend tables read."""
    return sorted(measurements, key=lambda m: (str(m.get("effective_at")), str(m.get("source_id"))))


def measure_rows(items: list[dict[str, Any]]) -> list[list[str]]:
    """The rows of one measure's table (``items`` oldest first)."""
    rows: list[list[str]] = []
    first: int | None = None
    prev: int | None = None
    for m in items:
        value = int(m["value"])
        rows.append([str(m.get("effective_at", ""))[:10], str(value), _cell(m.get("band")),
                     _change(value, first), _change(value, prev),
                     _cell(", ".join(m.get("flags") or []))])
        first = value if first is None else first
        prev = value
    return rows


def render(name: str | None, measurements: list[dict[str, Any]], reg: Registry) -> str:
    """The text of one client's ``measures.md``."""
    lines = [f"# Measures: {_cell(name)}", ""]
    by_measure: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in ordered(measurements):
        by_measure.setdefault((str(m["measure"]), int(m["measure_version"])), []).append(m)
    if not by_measure:
        lines += ["No scored questionnaires.", ""]
    for (mid, version), items in sorted(by_measure.items()):
        d = reg.measures.get((mid, version))
        title = d.name if d is not None else mid
        code = items[-1].get("code")
        lines += [f"## {title} ({mid} v{version}, LOINC {code})", ""]
        lines += ["| date | score | band | change from first | change from previous | flags |",
                  "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in measure_rows(items)]
        lines.append("")
    return "\n".join(lines)
