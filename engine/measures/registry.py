"""The measure registry: one YAML file per measure and version, plus form bindings.

A measure (``config/measures/<id>.v<version>.yaml``) lists its items, the response options
with their values and accepted aliases, the scoring rule (sum; how many items may be missing
and whether the total is then prorated), the severity bands, the critical items and the code
of the total. A binding (``config/measures/bindings/*.yaml``) says which forms carry which
measures and which question (by id or title: :func:`normalize_title`) answers each item. Adding a measure is YAML
only; :func:`load` checks everything and returns the problems as text for ``validate``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from engine.config.errors import format_loc, plain_errors

BUNDLED_MEASURES = Path(__file__).resolve().parents[2] / "config" / "measures"
"""The bundled registry folder (used when the config names none)."""

_ITEM_NUMBER = re.compile(r"_(\d+)$")


class _Strict(BaseModel):
    """Base of the registry's models: unknown keys are errors, values are frozen.

    Field docstrings are not copied into descriptions at import (``use_attribute_docstrings``
    read each class's source: about 13 ms of `validate --quick`'s start, issue 18);
    :func:`engine.config.fielddocs.document` reads them when a schema needs them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class Code(_Strict):
    """The code of a measure's total (a LOINC code for the standard questionnaires)."""

    system: str = "http://loinc.org"
    """The code system."""
    code: str
    """The code (e.g. `44261-6`)."""
    display: str = ""
    """Its human name."""


class Item(_Strict):
    """One question of the measure."""

    id: str = Field(pattern=r"^[a-z][a-z0-9]*_\d+$")
    """The item id; ends with the item's number (`phq9_9`)."""
    text: str
    """The item's wording."""


class Option(_Strict):
    """One response option."""

    value: int
    """The points this answer scores."""
    label: str
    """The option's wording on the standard form."""
    aliases: list[str] = Field(default_factory=list)
    """Other answers accepted as this option (compared ignoring case and extra spaces)."""


class Scoring(_Strict):
    """How the total is computed."""

    method: str = Field("sum", pattern="^sum$")
    """Only `sum` (the total is the sum of the item values)."""
    max_missing: int = Field(0, ge=0)
    """How many items may be unanswered; more and the response is not scored."""
    prorate: bool = True
    """With missing items, the total is the answered items' mean times the item count, rounded half up."""
    rounding: str = Field("half_up", pattern="^half_up$")
    """How a prorated total is rounded (only `half_up`)."""


class Band(_Strict):
    """A severity band: totals from `min` to `max` (inclusive)."""

    name: str
    """The band's name, lower case (`moderately severe`)."""
    min: int
    """Lowest total of the band."""
    max: int
    """Highest total of the band."""


class Critical(_Strict):
    """An item whose answer above a threshold raises a flag."""

    item: str
    """The item id."""
    above: int = 0
    """The flag is raised when the item's value is greater than this."""
    flag: str
    """The flag's name in the measurement's `flags`."""
    description: str = ""
    """Why the item matters."""


class Measure(_Strict):
    """One measure definition (`<id>.v<version>.yaml`)."""

    id: str = Field(pattern=r"^[a-z][a-z0-9]*$")
    """The measure id (`phq9`)."""
    version: int = Field(ge=1)
    """The definition's version."""
    name: str
    """Its full name."""
    code: Code
    """The code of the total."""
    items: list[Item] = Field(min_length=1)
    """The items, in order."""
    options: list[Option] = Field(min_length=2)
    """The response options shared by every item."""
    _by_answer: dict[str, Option] = PrivateAttr(default_factory=dict)
    scoring: Scoring = Scoring()
    """The scoring rule."""
    bands: list[Band] = Field(min_length=1)
    """The severity bands, covering every possible total without gaps or overlaps."""
    critical: list[Critical] = Field(default_factory=list)
    """Critical items."""

    @model_validator(mode="after")
    def _check(self) -> Measure:
        ids = [i.id for i in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("item ids repeat")
        for n, item in enumerate(self.items, start=1):
            m = _ITEM_NUMBER.search(item.id)
            if not item.id.startswith(self.id + "_") or m is None or int(m.group(1)) != n:
                raise ValueError(f"item {item.id!r} must be named {self.id}_{n}")
        values = [o.value for o in self.options]
        if len(set(values)) != len(values):
            raise ValueError("option values repeat")
        seen: set[str] = set()
        for o in self.options:
            for text in [o.label, *o.aliases]:
                key = normalize_answer(text)
                if key in seen:
                    raise ValueError(f"answer {text!r} names two options")
                seen.add(key)
        low, high = self.total_range()
        bands = sorted(self.bands, key=lambda b: b.min)
        expect = low
        for b in bands:
            if b.min != expect or b.max < b.min:
                raise ValueError(f"bands must cover {low}-{high} without gaps or overlaps "
                                 f"(band {b.name!r} starts at {b.min}, expected {expect})")
            expect = b.max + 1
        if expect != high + 1:
            raise ValueError(f"bands end at {expect - 1}, the highest total is {high}")
        for c in self.critical:
            if c.item not in ids:
                raise ValueError(f"critical item {c.item!r} is not an item")
        if self.scoring.max_missing >= len(self.items):
            raise ValueError("max_missing must leave at least one item answered")
        return self

    def total_range(self) -> tuple[int, int]:
        """The lowest and highest possible totals."""
        values = [o.value for o in self.options]
        return min(values) * len(self.items), max(values) * len(self.items)

    def band(self, total: int) -> str | None:
        """The band of a total."""
        return next((b.name for b in self.bands if b.min <= total <= b.max), None)

    def option_for(self, answer: str) -> Option | None:
        """The option an answer names (label or alias), or None: never a guess."""
        # straight from the private-attribute dict: ``self._by_answer`` goes through
        # pydantic's ``__getattr__`` (~2 us, more than the lookup itself; called per answer)
        private = cast("dict[str, dict[str, Option]]", self.__pydantic_private__)
        return private["_by_answer"].get(normalize_answer(answer))

    def model_post_init(self, context: Any, /) -> None:
        """Index the options by normalised label and alias (the first option naming a key
        wins, as a scan in order would find it)."""
        for o in self.options:
            for name in (o.label, *o.aliases):
                self._by_answer.setdefault(normalize_answer(name), o)


class Question(_Strict):
    """Which question of the form answers an item: by id or by title (one of them)."""

    question_id: str | None = None
    """The form's question id (Forms API `questionId`)."""
    title: str | None = None
    """The question's title (a sheet column header), compared without case, punctuation or extra spaces."""

    @model_validator(mode="after")
    def _one(self) -> Question:
        if (self.question_id is None) == (self.title is None):
            raise ValueError("give exactly one of question_id and title")
        return self


class FormSelector(_Strict):
    """Which responses a binding applies to: every given field must match."""

    form_id: str | None = None
    """The form id (Forms API `formId`; for a linked sheet `<spreadsheet id>/<sheet id>`)."""
    form_title: str | None = None
    """The form's exact title."""
    source: str | None = None
    """The configured source name."""
    account: str | None = None
    """The configured account."""

    @model_validator(mode="after")
    def _some(self) -> FormSelector:
        if self.form_id is None and self.form_title is None:
            raise ValueError("a form selector needs form_id or form_title")
        return self


class MeasureBinding(_Strict):
    """One measure on the form."""

    measure: str
    """The measure id."""
    version: int = 1
    """The measure's version."""
    items: dict[str, Question]
    """Item id -> the question that answers it."""


class Binding(_Strict):
    """One binding file: forms and the measures they carry."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    """The binding's id (recorded in each measurement's `binding`)."""
    forms: list[FormSelector] = Field(min_length=1)
    """The forms (any of them) this binding applies to."""
    measures: list[MeasureBinding]
    """The measures on those forms. Empty (``measures: []``): forms known to carry no measure
    (a consent form, a satisfaction survey): their responses are neither scored nor counted
    as not scored (``NO_BINDING`` said so every run, and hid real rejects in its count)."""


@dataclass
class Registry:
    """Every measure and binding found, and the problems found loading them."""

    folder: Path
    measures: dict[tuple[str, int], Measure] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sha256: str = ""
    """Hash of every file read: a change re-scores everything."""


@lru_cache(maxsize=8192)
def normalize_answer(text: str) -> str:
    """An answer compared ignoring case, runs of white space and Unicode composition (``Más``
    typed with a combining accent is the alias written with ``á``)."""
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


@lru_cache(maxsize=8192)
def normalize_title(text: str) -> str:
    """A question title compared ignoring case, punctuation and runs of white space: the
    official PHQ-9 wording and a form's copy of it differ by a comma or a curly quote, and a
    measure with an item whose question is not found is not scored (``QUESTION_MISSING``; a
    critical one flagged ``<item>_question_missing``)."""
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in unicodedata.normalize("NFC", text))
    return " ".join(kept.split()).casefold()


def _same_form(a: Binding, b: Binding) -> str | None:
    """What two bindings both select (``form_id X``, ``form_title "Y"``), else None: a pair of
    selectors that name the same form id or title and differ in no field both give."""
    fields = ("form_id", "form_title", "source", "account")
    for x in a.forms:
        for y in b.forms:
            gx = {f: getattr(x, f) for f in fields if getattr(x, f) is not None}
            gy = {f: getattr(y, f) for f in fields if getattr(y, f) is not None}
            # one selects every response the other does (it names a subset of the other's
            # fields, with the same values): {title} and {title, source: forms} both take the
            # API's responses; {title, account: a} and {title, source: s} may never meet
            if not (gx.items() <= gy.items() or gy.items() <= gx.items()):
                continue
            if x.form_id is not None and x.form_id == y.form_id:
                return f"form_id {x.form_id}"
            if x.form_title is not None and x.form_title == y.form_title:
                return f'form_title "{x.form_title}"'
    return None


def _read(path: Path, h: hashlib._Hash, problems: list[str]) -> object:
    try:
        raw = path.read_bytes()
        h.update(path.name.encode() + b"\0" + raw)
        return yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read ({type(exc).__name__})")
        return None


def _errors(exc: ValidationError, model: type[BaseModel]) -> str:
    """Every problem in our words (never pydantic's), ``key.path: what is wrong``."""
    return "; ".join(f"{format_loc(loc) if loc else '(file)'}: {msg}" for loc, msg in plain_errors(exc.errors(), model))


def load(folder: Path | None = None) -> Registry:
    """Load and check the registry folder; problems are listed, never raised."""
    reg = Registry(folder or BUNDLED_MEASURES)
    h = hashlib.sha256()
    for path in sorted(reg.folder.glob("*.yaml")):
        data = _read(path, h, reg.problems)
        try:
            m = Measure.model_validate(data)
        except ValidationError as exc:
            reg.problems.append(f"{path}: {_errors(exc, Measure)}")
            continue
        if path.name != f"{m.id}.v{m.version}.yaml":
            reg.problems.append(f"{path}: must be named {m.id}.v{m.version}.yaml")
        elif (m.id, m.version) in reg.measures:
            reg.problems.append(f"{path}: measure {m.id} v{m.version} defined twice")
        else:
            reg.measures[(m.id, m.version)] = m
    ids: set[str] = set()
    for path in sorted((reg.folder / "bindings").glob("*.yaml")):
        data = _read(path, h, reg.problems)
        try:
            b = Binding.model_validate(data)
        except ValidationError as exc:
            reg.problems.append(f"{path}: {_errors(exc, Binding)}")
            continue
        found = check_binding(b, reg.measures)
        found += [f"binding {b.id!r} selects the same form as binding {other.id!r} ({what}): every response "
                  "of it would be scored by neither (BINDING_AMBIGUOUS), its critical items read by none; "
                  "keep one binding per form" for other in reg.bindings if (what := _same_form(b, other))]
        reg.problems += [f"{path}: {p}" for p in found]
        if b.id in ids:
            reg.problems.append(f"{path}: binding id {b.id!r} used twice")
        elif not found:
            ids.add(b.id)
            reg.bindings.append(b)
    if not reg.folder.is_dir():  # a typo in clients.measures: no measure, every score gone
        reg.problems.append(f"{reg.folder}: the measures folder does not exist")
    elif not reg.measures and not any(p.startswith(str(reg.folder)) for p in reg.problems):
        reg.problems.append(f"{reg.folder}: no measure file (<id>.v<version>.yaml)")
    elif not reg.bindings and not (reg.folder / "bindings").is_dir():
        reg.problems.append(f"{reg.folder / 'bindings'}: the bindings folder does not exist")
    reg.sha256 = h.hexdigest()
    return reg


def sheet_selectors(b: Binding) -> list[str]:
    """The form ids of a binding's selectors that name a linked sheet (``<spreadsheet id>/<sheet
    id>``: a Forms API form id never holds a ``/``)."""
    return [sel.form_id for sel in b.forms if sel.form_id is not None and "/" in sel.form_id]


def check_binding(b: Binding, measures: dict[tuple[str, int], Measure]) -> list[str]:
    """What is wrong with a binding: unknown measures or items, unbound items, a question bound
    twice, an item bound by ``question_id`` on a binding that selects a linked sheet."""
    problems: list[str] = []
    used: dict[tuple[str, str], str] = {}
    sheets = sheet_selectors(b)
    if sheets:  # a sheet row has no question ids: its copy could never be scored
        by_id = [f"{mb.measure}: {item}" for mb in b.measures for item, q in mb.items.items()
                 if q.question_id is not None]
        if by_id:
            problems.append(
                f"{', '.join(by_id)} bound by question_id, but the binding selects the linked sheet "
                f"form_id {sheets[0]!r}, whose rows have no question ids (only column titles): every "
                "sheet response would be QUESTION_MISSING; bind these items by title")
    for mb in b.measures:
        m = measures.get((mb.measure, mb.version))
        if m is None:
            problems.append(f"measure {mb.measure} v{mb.version} is not in the registry")
            continue
        known = {i.id for i in m.items}
        for item in sorted(set(mb.items) - known):
            problems.append(f"{mb.measure}: {item!r} is not an item of {mb.measure}")
        for item in sorted(known - set(mb.items)):
            problems.append(f"{mb.measure}: item {item!r} is not bound to a question")
        for item, q in mb.items.items():
            key = ("id", q.question_id) if q.question_id is not None else ("title", normalize_title(q.title or ""))
            if key in used:
                problems.append(f"{mb.measure}: {item} and {used[key]} are bound to the same question")
            used[key] = item
    return problems
