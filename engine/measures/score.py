"""Scoring one form response: measurements, or a stable reason why not. Never a guess.

A response is matched to the bindings whose form selectors it meets (none: ``NO_BINDING``;
several: ``BINDING_AMBIGUOUS``; one with ``measures: []``, a form declared to carry none:
no outcome at all). For each measure of the binding every item's question is
looked up (by question id, or by title ignoring case, punctuation and spacing); it must be
among the response's questions (else ``QUESTION_MISSING``: the canonical response lists every
question of its form, answered or not, so a question not there is a binding that does not fit
the form, never an unanswered item; a linked sheet's row drops its empty cells at the end, so
there a question another row of the same sheet has is one this row left blank: :class:`Columns`),
its answer must name an option by label or alias
(else ``UNKNOWN_ANSWER``), two items must not land on the same answer
(``QUESTION_BOUND_TWICE``), a title must not match several questions (``QUESTION_AMBIGUOUS``),
and no more items than the measure allows may be unanswered (``TOO_MANY_MISSING``). With
unanswered items (the question there, no answer) inside the allowance the total is prorated:
the answered items' mean times the item count, rounded half up (flag ``prorated``), or, for a
measure with ``prorate: false``, the plain sum of the answered items (flag ``partial_sum``).
A critical item raises its flag when any readable answer is above its threshold, and says
``<item>_question_missing`` or ``<item>_unreadable`` when its value is not known (both count
as critical: it may be positive), ``<item>_unanswered`` when it was left blank (not critical).
A response without a submitted time is ``NO_TIME`` for each measure of its binding, with the
critical flags its answers raise.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine.index.fields import normalize_time
from engine.measures.registry import (
    Binding,
    FormSelector,
    Measure,
    MeasureBinding,
    Registry,
    normalize_title,
)

MEASURES_SOURCE = "measures"
"""The ``source`` of measurement documents in the index."""
MEASURES_ACCOUNT = "scored"
"""Their ``account``."""
PRORATED = "prorated"
"""The flag of a total computed from fewer items than the measure has, scaled up to all of
them (``scoring.prorate``)."""
PARTIAL_SUM = "partial_sum"
"""The flag of a total that is the plain sum of fewer items than the measure has (missing
items allowed, ``prorate: false``): not scaled, so lower than a complete answer's."""

QUESTION_MISSING = "QUESTION_MISSING"
"""A bound item's question is not among the response's questions (a binding worded otherwise
than the form, a ``question_id`` the form does not have): the item's answer is not known, so
the measure is not scored (never prorated as if the item were left blank)."""
COPIES_DISAGREE = "COPIES_DISAGREE"
"""Copies of one submission (the Forms API's and its linked sheet's) are linked to different
clients and no override settles which: scored for no one rather than for both."""
REASONS = ("NO_BINDING", "BINDING_AMBIGUOUS", "QUESTION_BOUND_TWICE", "QUESTION_AMBIGUOUS",
           QUESTION_MISSING, "UNKNOWN_ANSWER", "TOO_MANY_MISSING", "NO_TIME", COPIES_DISAGREE)
"""Every reason a response or one of its measures is not scored (stable codes)."""
DUPLICATE = "DUPLICATE_RESPONSE"
"""The code of a copy of a measure already scored from another copy of the response (the
Forms API and its linked sheet): scored once, so not a reason for "not scored"."""


@dataclass(frozen=True, slots=True)
class NotScored:
    """A response (or one measure of it) that was not scored."""

    reason: str
    """One of :data:`REASONS`."""
    measure: str | None = None
    """The measure concerned, when the reason is about one measure."""
    binding: str | None = None
    """The binding concerned, when one applied."""
    item: str | None = None
    """The item concerned (for a person reading the rejects file)."""
    flags: tuple[str, ...] = ()
    """The critical items' flags (:func:`critical_flags`): answered above their threshold, from
    the answers that could be read, or not known (not on the form, unreadable), or left blank:
    a response that cannot be scored still says so (its chart shows it, flag included)."""
    effective_at: str | None = None
    """When the response was given (set for a measure of a response that has a time)."""


Outcome = dict[str, Any] | NotScored


def _matches(sel: FormSelector, doc: dict[str, Any]) -> bool:
    form = doc.get("form") if isinstance(doc.get("form"), dict) else {}
    assert isinstance(form, dict)
    return ((sel.form_id is None or sel.form_id == form.get("id"))
            and (sel.form_title is None or sel.form_title == form.get("title"))
            and (sel.source is None or sel.source == doc.get("source"))
            and (sel.account is None or sel.account == doc.get("account")))


def bindings_for(doc: dict[str, Any], reg: Registry) -> list[Binding]:
    """The bindings that apply to a response."""
    return [b for b in reg.bindings if any(_matches(s, doc) for s in b.forms)]


def _answers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    raw = doc.get("answers")
    return [a for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []


def _answer_texts(answer: dict[str, Any]) -> list[str]:
    values = answer.get("values")
    if isinstance(values, list):
        texts = [v for v in values if isinstance(v, str) and v.strip()]
    else:
        v = answer.get("value")
        texts = [v] if isinstance(v, str) and v.strip() else []
    return texts


def round_half_up(value: Decimal) -> int:
    """``value`` rounded to a whole number, halves up."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


_GRID_ROW = re.compile(r"^.+ \[(.+)\]$", re.S)


def _row_title(title: object) -> str | None:
    """A grid row's own title: the answer to ``"Over the last 2 weeks... [Little interest or
    pleasure in doing things]"`` (a Google Forms grid, as its linked sheet and the API
    transform title it) is found by the item's wording alone too."""
    if not isinstance(title, str):
        return None
    m = _GRID_ROW.match(title.strip())  # a sheet header may end in a space or a newline
    return normalize_title(m.group(1)) if m else None


class AnswerIndex:
    """A response's answers with their positions by question id and by question title, built
    once per response (a measure looks up each of its items)."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.by_id: dict[Any, list[int]] = {}
        self.by_title: dict[Any, list[int]] = {}
        for n, a in enumerate(answers):
            title = a.get("question")
            row = _row_title(title)
            for key, index in ((a.get("question_id"), self.by_id),
                               (normalize_title(title) if isinstance(title, str) else title, self.by_title),
                               *(((row, self.by_title),) if row is not None else ())):
                try:
                    index.setdefault(key, []).append(n)
                except TypeError:  # an unhashable id or title (a list): it equals no str
                    pass

    def find(self, question_id: str | None, title: str | None) -> list[int]:
        """Positions of the answers to a question (by id when it has one, else by its title
        without case, punctuation or extra spaces: :func:`normalize_title`)."""
        if question_id is not None:
            return self.by_id.get(question_id, [])
        return self.by_title.get(normalize_title(title), []) if title is not None else []


class Columns:
    """The questions each linked sheet's rows have shown, and since when: a sheet row is
    ragged (its empty cells at the end are left out), so a question missing from one row is a
    blank answer when a row of the same sheet (form ``<spreadsheet id>/<sheet id>``)
    submitted no later has it. A question added to the form later is a column appended at the
    end that earlier rows never had: they were not asked it (still ``QUESTION_MISSING``), so
    only rows submitted at or after its first appearance count. Learnt from every response
    before any is scored (:meth:`learn`); a Forms API response lists every question itself."""

    def __init__(self) -> None:
        self.by_form: dict[str, dict[Any, str]] = {}
        """Form -> title (normalised) -> the earliest submitted time of a row that has it."""

    def learn(self, doc: dict[str, Any]) -> None:
        """Note the question titles of one response (of a linked sheet's form)."""
        form, when = _sheet_form(doc), _submitted(doc)
        if form is None or when is None:
            return
        seen = self.by_form.setdefault(form, {})
        for title in AnswerIndex(_answers(doc)).by_title:
            if title not in seen or when < seen[title]:
                seen[title] = when

    def of(self, doc: dict[str, Any]) -> AbstractSet[Any]:
        """The titles (normalised) that rows of the response's sheet submitted no later had."""
        form, when = _sheet_form(doc), _submitted(doc)
        if form is None or when is None:
            return frozenset()
        return {t for t, first in self.by_form.get(form, {}).items() if first <= when}


def _submitted(doc: dict[str, Any]) -> str | None:
    at = doc.get("submitted_at")
    return at if isinstance(at, str) and at else None


def _sheet_form(doc: dict[str, Any]) -> str | None:
    form = doc.get("form")
    fid = form.get("id") if isinstance(form, dict) else None
    return fid if isinstance(fid, str) and "/" in fid else None  # a Forms API id has no '/'


def score_measure(m: Measure, mb: MeasureBinding, binding_id: str,
                  answers: list[dict[str, Any]] | AnswerIndex, seen: AbstractSet[Any] = frozenset(),
                  ) -> tuple[dict[str, int | None], list[str]] | NotScored:
    """Item values (None when unanswered) and flags of one measure, or why not. ``seen``: the
    titles other rows of the response's linked sheet have (:class:`Columns`)."""
    index = answers if isinstance(answers, AnswerIndex) else AnswerIndex(answers)
    answers = index.answers
    values: dict[str, int | None] = {}
    readable: dict[str, list[int]] = {}  # an unscorable item's answers that name an option
    unclear: set[str] = set()  # items with an answer that names no option
    absent: set[str] = set()  # items whose question the response does not have
    taken: dict[int, str] = {}
    unknown: str | None = None
    refused: NotScored | None = None  # a binding problem: the critical items are still read
    for item in m.items:
        q = mb.items[item.id]
        found = index.find(q.question_id, q.title)
        if refused is None and len(found) > 1:
            refused = NotScored("QUESTION_AMBIGUOUS", m.id, binding_id, item.id)
        if len(found) == 1 and found[0] in taken:  # another item's question: this one's answer is not known
            refused = refused or NotScored("QUESTION_BOUND_TWICE", m.id, binding_id, item.id)
            values[item.id] = None
            readable[item.id] = []
            unclear.add(item.id)
            continue
        texts = [t for n in found for t in _answer_texts(answers[n])]
        if found:
            taken.setdefault(found[0], item.id)
        elif q.question_id is not None or q.title is None or normalize_title(q.title) not in seen:
            absent.add(item.id)  # else: the sheet has the column, this row ended before it
        if not texts:
            values[item.id] = None
            continue
        option = m.option_for(texts[0]) if len(texts) == 1 else None
        if option is None:  # not scored; the other answers are still read for the critical items
            unknown = unknown or item.id
            values[item.id] = None
            readable[item.id] = [o.value for t in texts if (o := m.option_for(t)) is not None]
            if len(readable[item.id]) < len(texts):
                unclear.add(item.id)
            continue
        values[item.id] = option.value
    flags = critical_flags(m, values, readable, unclear, absent)
    if refused is not None:
        return replace(refused, flags=tuple(flags))
    if absent:  # never prorated: the item's answer is not known, not left blank
        first = next(i.id for i in m.items if i.id in absent)
        return NotScored(QUESTION_MISSING, m.id, binding_id, first, tuple(flags))
    if unknown is not None:
        return NotScored("UNKNOWN_ANSWER", m.id, binding_id, unknown, tuple(flags))
    missing = sum(1 for v in values.values() if v is None)
    if missing > m.scoring.max_missing:
        return NotScored("TOO_MANY_MISSING", m.id, binding_id, flags=tuple(flags))
    if missing:
        flags.append(PRORATED if m.scoring.prorate else PARTIAL_SUM)
    return values, flags


NOT_ON_FORM = "_question_missing"
"""Suffix of the flag ``<item>_question_missing``: the response has no question the binding
maps a critical item to (its measure is ``QUESTION_MISSING``). Its answer is not known and
may be positive: counted as critical (the chart's bold line, ``MEASURES_CRITICAL_UNLINKED``)."""
UNREADABLE = "_unreadable"
"""Suffix of the flag ``<item>_unreadable``: a critical item answered with nothing that names
an option (its measure is ``UNKNOWN_ANSWER``), or whose question is another item's
(``QUESTION_BOUND_TWICE``). Counted as critical, as a positive answer is: it may be one."""
UNANSWERED = "_unanswered"
"""Suffix of the flag ``<item>_unanswered``: a critical item whose question the response has,
left blank (prorated within the allowance, as the measure's standard allows). Shown in the
chart's flags; not counted as critical (no answer is no positive answer)."""


def critical_flags(m: Measure, values: dict[str, int | None], readable: dict[str, list[int]],
                   unclear: set[str] | frozenset[str] = frozenset(),
                   absent: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """The critical items' flags: the item's flag when its value, or any readable one of
    several answers (a checkbox ticked twice, a question the binding finds twice), is above
    the threshold, never a guess that it is not; ``<item>_unreadable`` when an answer of it
    names no option and none readable is above (``"3 (Nearly every day)"``, alone or beside
    ``"Not at all"``), ``<item>_question_missing`` when the response has no question for it,
    ``<item>_unanswered`` when its question is there without an answer."""
    flags: list[str] = []
    for c in m.critical:
        value = values.get(c.item)
        seen = [value] if value is not None else readable.get(c.item)
        if seen and any(v > c.above for v in seen):
            flags.append(c.flag)
        elif c.item in unclear or (not seen and c.item in readable):
            flags.append(c.item + UNREADABLE)
        elif c.item in absent:
            flags.append(c.item + NOT_ON_FORM)
        elif value is None and c.item not in readable:  # no answer at all (not two readable ones)
            flags.append(c.item + UNANSWERED)
    return flags


def raised(flags: object) -> list[str]:
    """The flags that count as critical: a critical item answered above its threshold, or
    whose answer is not known (``<item>_question_missing``, ``<item>_unreadable``: it may be
    positive). Not ``<item>_unanswered`` (left blank), ``prorated`` nor ``partial_sum``. What
    the chart's bold line and ``MEASURES_CRITICAL_UNLINKED`` count."""
    return [f for f in flags if isinstance(f, str) and not f.endswith(UNANSWERED)
            and f not in (PRORATED, PARTIAL_SUM)] if isinstance(flags, list | tuple) else []


def total(m: Measure, values: dict[str, int | None]) -> int:
    """The total: the sum, prorated when items are missing."""
    answered = [v for v in values.values() if v is not None]
    if len(answered) == len(m.items) or not m.scoring.prorate:
        return sum(answered)
    return round_half_up(Decimal(sum(answered)) * len(m.items) / len(answered))


def _response_key(doc: dict[str, Any]) -> str:
    return f"{doc.get('source')}/{doc.get('account')}/{doc.get('source_id')}"


def effective_at(doc: dict[str, Any]) -> str | None:
    """When a response was given: its ``submitted_at`` (else ``created_at``) in UTC, or the
    date alone (``YYYY-MM-DD``) when that is all it says: a day is no instant, and a chart in
    another zone must not move it to the evening before."""
    for field_name in ("submitted_at", "created_at"):
        raw = doc.get(field_name)
        at = normalize_time(raw)
        if at is not None:
            return at[:10] if isinstance(raw, str) and len(raw) == 10 else at
    return None


def score_response(doc: dict[str, Any], reg: Registry, columns: Columns | None = None) -> list[Outcome]:
    """Every measure of one canonical ``form_response``: a measurement document or NotScored
    (``columns``: what the other rows of a linked sheet showed, :class:`Columns`)."""
    bindings = bindings_for(doc, reg)
    if not bindings:
        return [NotScored("NO_BINDING")]
    if len(bindings) > 1:
        return [NotScored("BINDING_AMBIGUOUS")]
    b = bindings[0]
    if not b.measures:  # a form declared to carry no measure: nothing to score, nothing to say
        return []
    effective = effective_at(doc)
    answers = AnswerIndex(_answers(doc))
    seen = columns.of(doc) if columns is not None else frozenset()
    out: list[Outcome] = []
    for mb in b.measures:
        m = reg.measures[(mb.measure, mb.version)]
        got = score_measure(m, mb, b.id, answers, seen)
        if effective is None:  # scored for no one's trend, but its critical items still shown
            flags = got.flags if isinstance(got, NotScored) else got[1]
            out.append(NotScored("NO_TIME", m.id, b.id, flags=tuple(
                f for f in flags if f not in (PRORATED, PARTIAL_SUM))))
            continue
        if isinstance(got, NotScored):
            out.append(replace(got, effective_at=effective))
            continue
        values, flags = got
        value = total(m, values)
        out.append({
            "kind": "measurement",
            "source": MEASURES_SOURCE,
            "account": MEASURES_ACCOUNT,
            "source_id": f"{_response_key(doc)}/{m.id}.v{m.version}",
            "measure": m.id,
            "measure_version": m.version,
            "code": m.code.code,
            "value": value,
            "band": m.band(value),
            "items": values,
            "flags": flags,
            "effective_at": effective,
            "response_id": doc.get("response_id") or doc.get("source_id"),
            "binding": b.id,
        })
    return out
