"""What the index takes from each canonical kind: title, main time, dedupe key, searchable text.

The index stores whole canonical documents as objects and keeps only a few derived columns
in SQLite. Which JSON paths feed those columns is a property of each canonical schema
(``config/schemas/*.v1.json``), so it is written down once, here, as a small table. A kind
the table does not know still indexes: the generic fallback takes a title from common field
names, the time from common time fields, and every string value as searchable text.

Changing this table changes derived columns without changing any object; bump
``FIELDS_VERSION`` so the next index run rebuilds every account's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

FIELDS_VERSION = 1
"""Version of the table below; stored per account so a change rebuilds the derived rows."""

_MAX_TEXT = 1 << 20
"""Searchable text kept per column and document (characters); longer text is cut."""

Getter = Callable[[Any], list[Any]]


def _step_keys(keys: tuple[str, ...]) -> Getter:
    def leaves(value: Any) -> list[Any]:
        if type(value) is not dict:
            return []
        return [v for v in map(value.get, keys) if v is not None]
    return leaves


def _step_key(key: str, inner: Getter | None) -> Getter:
    if inner is None and "," in key:
        return _step_keys(tuple(key.split(",")))
    if inner is None:
        def leaf(value: Any) -> list[Any]:
            v = value.get(key) if type(value) is dict else None
            return [] if v is None else [v]
        return leaf

    def node(value: Any) -> list[Any]:
        v = value.get(key) if type(value) is dict else None
        return [] if v is None else inner(v)
    return node


def _step_many(items: bool, inner: Getter | None) -> Getter:
    def many(value: Any) -> list[Any]:
        seq: Iterable[Any] = ()
        if items and type(value) is list:
            seq = value
        elif not items and type(value) is dict:
            seq = value.values()
        if inner is None:
            return [v for v in seq if v is not None]
        out: list[Any] = []
        for v in seq:
            if v is not None:
                out += inner(v)
        return out
    return many


def compile_path(path: str) -> Getter:
    """A getter for a path: ``a.b`` (object keys), ``a[]`` (every item), ``a.*`` (every value).

    The last step may name several keys (``a[].name,email``). ``x|y`` tries the alternatives in order and keeps the first that finds something. The
    getter returns every value found (often none or one); missing keys and nulls give
    nothing, so paths never fail on sparse records.
    """
    if "|" in path:
        alternatives = [compile_path(p) for p in path.split("|")]

        def first(doc: Any) -> list[Any]:
            for alt in alternatives:
                found = alt(doc)
                if found:
                    return found
            return []
        return first
    steps: list[str] = []
    for raw in path.split("."):
        if raw.endswith("[]"):
            steps += [raw[:-2], "[]"]
        else:
            steps.append(raw)
    getter: Getter | None = None
    for step in reversed(steps):
        if step in ("[]", "*"):
            getter = _step_many(step == "[]", getter)
        else:
            getter = _step_key(step, getter)
    assert getter is not None
    return getter


@dataclass(frozen=True)
class KindFields:
    """Which paths of one kind feed the index columns."""

    title: tuple[str, ...]
    """Paths whose non-empty values, joined by `` · ``, make the title."""
    time: tuple[str, ...]
    """Paths tried in order; the first value that parses is the main time."""
    body: tuple[str, ...] = ()
    """Paths of the main text (FTS column ``body``)."""
    names: tuple[str, ...] = ()
    """Paths of people's names and addresses (FTS column ``names``)."""
    notes: tuple[str, ...] = ()
    """Paths of secondary text: labels, file names, codes (FTS column ``notes``)."""
    dedupe: str | None = None
    """The path of the cross-account duplicate key, if the kind has one."""


_ADDRESS_LISTS = ("from", "sender", "to", "cc", "bcc", "replyTo")

KINDS: dict[str, KindFields] = {
    "email": KindFields(
        title=("subject",),
        time=("receivedAt", "sent_at_utc", "sentAt"),
        body=("body_text|preview",),
        names=tuple(f"{h}[].name,email" for h in _ADDRESS_LISTS),
        notes=("attachments[].name", "categories[]"),
        dedupe="dedupe_key",
    ),
    "contact": KindFields(
        title=("name.full",),
        time=("updated", "created"),
        body=("addresses.*.full", "birth_date"),
        names=("name.full", "name.components[].value", "emails.*.address", "phones.*.number",
               "phones.*.e164"),
        notes=("uid",),
    ),
    "clinical_session": KindFields(
        title=("subject.display", "serviceType.code", "identifier"),
        time=("period.start", "created", "updated"),
        body=("status", "status_display", "modality_display", "serviceType.code"),
        names=("subject.display", "participant[].individual.display"),
        notes=("identifier",),
    ),
    "invoice": KindFields(
        title=("doc_number", "customer.display"),
        time=("txn_date", "created", "updated"),
        body=("lines[].description", "lines[].item.display"),
        names=("customer.display", "bill_email"),
        notes=("doc_number", "status", "total"),
    ),
    "payment": KindFields(
        title=("reference_number", "customer.display"),
        time=("txn_date", "created", "updated"),
        body=("deposit_account.display",),
        names=("customer.display",),
        notes=("reference_number", "total"),
    ),
    "form_response": KindFields(
        title=("form.title", "form.id"),
        time=("submitted_at", "created_at"),
        body=("answers[].question,value",),
        names=("respondent.name", "respondent.email"),
        notes=("form.id", "response_id"),
    ),
    "measurement": KindFields(
        title=("measure", "value", "band"),
        time=("effective_at",),
        body=("band", "flags[]"),
        notes=("code", "binding", "response_id", "client_id"),
    ),
}

GENERIC = KindFields(
    title=("title", "subject", "name.full", "name", "display", "identifier", "doc_number"),
    time=("time", "date", "receivedAt", "period.start", "txn_date", "updated", "created"),
)
"""Used for kinds the table does not know; its body is every string value of the document."""

_COMPILED: dict[str, dict[str, tuple[Getter, ...]]] = {}


def _compiled(kind: str, spec: KindFields) -> dict[str, tuple[Getter, ...]]:
    got = _COMPILED.get(kind)
    if got is None:
        got = {name: tuple(compile_path(p) for p in getattr(spec, name))
               for name in ("title", "time", "body", "names", "notes")}
        got["dedupe"] = (compile_path(spec.dedupe),) if spec.dedupe else ()
        _COMPILED[kind] = got
    return got


@dataclass(frozen=True, slots=True)
class Derived:
    """The index columns of one document."""

    title: str | None
    time: str | None
    dedupe_key: str | None
    body: str
    names: str
    notes: str


def normalize_time(value: Any) -> str | None:
    """A time value as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), or None when it does not parse.

    Dates without a time become midnight UTC; offsets are converted to UTC; fractions of a
    second are dropped (the uniform width keeps string order equal to time order).
    """
    if not isinstance(value, str) or len(value) < 10:
        return None
    if len(value) >= 20 and value.endswith("Z") and value[10] == "T" and value[19] in ".Z":
        return value[:19] + "Z"
    if len(value) == 10:
        try:
            return date.fromisoformat(value).isoformat() + "T00:00:00Z"
        except ValueError:
            return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:  # 0001-01-01T00:30+01:00 is a year-0 instant in UTC: no time, no crash
        return None


def _texts(getters: tuple[Getter, ...], doc: Any) -> list[str]:
    out: list[str] = []
    for get in getters:
        for v in get(doc):
            t = type(v)
            if t is str:
                if v:
                    out.append(v)
            elif t is int or t is float:
                out.append(str(v))
    return out


def _join(parts: list[str], sep: str) -> str:
    if not parts:
        return ""
    text = parts[0] if len(parts) == 1 else sep.join(dict.fromkeys(parts))
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT]


def _all_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in ("kind", "source", "account"):
                _all_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _all_strings(v, out)


def date_only(doc: dict[str, Any]) -> bool:
    """Whether the value :func:`derive` takes the time from is a date alone (``YYYY-MM-DD``):
    the index keeps it as midnight UTC, which a chart in another zone must not convert."""
    kind = doc.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    g = _compiled(kind if spec is not None and isinstance(kind, str) else "", spec or GENERIC)
    for get in g["time"]:
        for v in get(doc):
            if normalize_time(v) is not None:
                return isinstance(v, str) and len(v) == 10
    return False


def derive(doc: dict[str, Any]) -> Derived:
    """The index columns of one canonical document (``kind`` picks the table row)."""
    kind = doc.get("kind")
    spec = KINDS.get(kind) if isinstance(kind, str) else None
    g = _compiled(kind if spec is not None and isinstance(kind, str) else "", spec or GENERIC)
    if spec is None:
        title = next((t for get in g["title"] for t in _texts((get,), doc)), None)
    else:
        title = _join(_texts(g["title"], doc), " · ") or None
    time: str | None = None
    for get in g["time"]:
        for v in get(doc):
            time = normalize_time(v)
            if time is not None:
                break
        if time is not None:
            break
    dedupe = next((v for get in g["dedupe"] for v in get(doc) if isinstance(v, str) and v), None)
    if spec is None:
        strings: list[str] = []
        _all_strings(doc, strings)
        return Derived(title, time, None, _join(strings, "\n"), "", "")
    return Derived(title, time, dedupe, _join(_texts(g["body"], doc), "\n"),
                   _join(_texts(g["names"], doc), " "), _join(_texts(g["notes"], doc), " "))
