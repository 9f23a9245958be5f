"""``measures.md`` of a chart folder: one table per measure over time.

Each row is one scored response: the date, the score, its band, the change from the first
and from the previous score of the same measure, and the flags (a critical item, a prorated
total). Responses a measure could not be scored for (an answer not among the options, too
many items blank, a question not on the form) follow under "Not scored", with any critical item
they answered or whose answer is not known (counted in a bold line). Rendering is a pure function of the measurements, so an unchanged chart stays
byte-identical and is never rewritten.
"""

from __future__ import annotations

from typing import Any

from engine.clients.markdown import Dates, inline
from engine.measures.registry import Measure, Registry
from engine.measures.score import raised


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


def measure_rows(items: list[dict[str, Any]], dates: Dates | None = None) -> list[list[str]]:
    """The rows of one measure's table (``items`` oldest first; days in ``dates``' zone)."""
    dates = dates or Dates()
    rows: list[list[str]] = []
    first: int | None = None
    prev: int | None = None
    for m in items:
        value = int(m["value"])
        rows.append([dates.day(str(m.get("effective_at") or "")), str(value), _cell(m.get("band")),
                     _change(value, first), _change(value, prev),
                     _cell(", ".join(m.get("flags") or []))])
        first = value if first is None else first
        prev = value
    return rows


WHY_NOT = {
    "UNKNOWN_ANSWER": "an answer is not one of the measure's options",
    "TOO_MANY_MISSING": "too many items unanswered",
    "QUESTION_AMBIGUOUS": "a question of the binding matches several questions of the form",
    "QUESTION_BOUND_TWICE": "one question of the form is bound to two items",
    "QUESTION_MISSING": "a question of the binding is not on the form",
    "NO_TIME": "the response has no submitted time",
    "COPIES_DISAGREE": "its copies are linked to different clients",
}
"""What a not-scored reason means, for the chart (the rejects file keeps the code)."""


def not_scored_lines(missed: list[dict[str, Any]], dates: Dates | None = None) -> list[str]:
    """The chart's "Not scored" section: each response a measure could not be scored for,
    oldest first, with any critical item answered above its threshold or whose answer is not
    known (it is not lost because the total could not be computed; the bold line counts
    them, :func:`engine.measures.score.raised`)."""
    dates = dates or Dates()
    seen: set[tuple[str, ...]] = set()
    once: list[dict[str, Any]] = []
    for r in missed:  # the Forms API's copy and its linked sheet's: one submission, one row
        key = tuple(str(r.get(k)) for k in ("effective_at", "measure", "reason", "item", "flags"))
        if not r.get("effective_at"):  # no time: no copy of it can be told, every response a row
            key += (str(r.get("response")),)
        if key not in seen:
            seen.add(key)
            once.append(r)
    missed = once
    if not missed:
        return []
    lines = ["## Not scored", ""]
    critical = sum(1 for r in missed if raised(r.get("flags")))
    if critical:
        lines += [f"**A critical item was answered, or its answer is not known, in {critical} response(s) "
                  "that could not be scored: see the flags below.**", ""]
    lines += ["| date | measure | why | item | flags | response |", "|---|---|---|---|---|---|"]
    for r in missed:
        reason = str(r.get("reason"))
        lines.append("| " + " | ".join([
            dates.day(r.get("effective_at")) or "-", _cell(r.get("measure")),
            _cell(f"{WHY_NOT.get(reason, reason)} ({reason})"), _cell(r.get("item")),
            _cell(", ".join(r.get("flags") or [])), _cell(r.get("response"))]) + " |")
    return [*lines, ""]


def render(name: str | None, measurements: list[dict[str, Any]], reg: Registry,
           missed: list[dict[str, Any]] | None = None, zone: str = "UTC") -> str:
    """The text of one client's ``measures.md`` (``missed``: the client's responses a
    measure could not be scored for, :func:`not_scored_lines`; days in ``zone``)."""
    dates = Dates(zone)
    lines = [f"# Measures: {_cell(name)}", "", f"Dates are the day ({zone}) each questionnaire was answered.", ""]
    by_measure: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in ordered(measurements):
        by_measure.setdefault((str(m["measure"]), int(m["measure_version"])), []).append(m)
    if not by_measure:
        lines += ["No scored questionnaires.", ""]
    for (mid, version), items in sorted(by_measure.items()):
        d = reg.measures.get((mid, version))
        title = d.name if d is not None else mid
        lines += [f"## {title} ({mid} v{version}, {code_label(d, items[-1].get('code'))})", ""]
        lines += ["| date | score | band | change from first | change from previous | flags |",
                  "|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in measure_rows(items, dates)]
        lines.append("")
    lines += not_scored_lines(missed or [], dates)
    return "\n".join(lines)


SYSTEMS = {"http://loinc.org": "LOINC", "http://snomed.info/sct": "SNOMED CT"}
"""Names of the code systems a chart heading spells out; any other system is shown as written."""


def code_label(d: Measure | None, code: object) -> str:
    """``LOINC 44261-6``: the code of a measure's total with its system (a measure of your
    own may use another system: its URI is shown, never a LOINC it is not)."""
    system = d.code.system if d is not None else "http://loinc.org"
    return f"{_cell(SYSTEMS.get(system, system))} {_cell(str(code))}"
