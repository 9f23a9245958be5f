"""The per-kind link rule table: how a document of each canonical kind finds its client.

Like :mod:`engine.index.fields`, this is a small table of JSON paths per kind (same path
syntax: ``a.b``, ``a[]``, ``a.*``, ``a[].x,y``, ``p|q``). A kind the table does not know is
linked to no one (reason ``no_rule``) until it gets a row. A row can say:

* ``identity``: the document describes a person (a contact card). Its e-mails, phones and
  name plus birth date are identity keys; in ``clients.sources`` it defines a client.
* ``refs``: ids of another document of the same source and account (a session's client,
  an invoice's customer). The document goes to whichever client that document went to.
* ``senders`` / ``recipients``: mail participants. Each address outside the practice links
  the document to the client holding it; the direction comes from ``own_addresses``.
* ``emails`` / ``phones`` / ``names`` + ``births``: keys of a document that is not a card
  (say a questionnaire with the respondent's e-mail): all must agree on one client.
* ``section`` and ``columns``: where the document appears in the chart besides the timeline.

Changing a row changes links: bump ``RULES_VERSION`` (part of the project stage's inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from engine.index.fields import Getter, compile_path

RULES_VERSION = 3
"""Version of the table below; part of the project stage's skip fingerprint."""

Section = Literal["sessions", "billing"]


@dataclass(frozen=True)
class Ref:
    """A reference to another document of the same source and account."""

    path: str
    """Where the referenced document's ``source_id`` is."""
    kinds: tuple[str, ...] = ("contact",)
    """The kinds the referenced document may have."""


@dataclass(frozen=True)
class LinkRule:
    """How documents of one kind are linked (see the module docstring)."""

    identity: bool = False
    """The document is a person's card: its keys identify a client."""
    emails: tuple[str, ...] = ()
    """Paths of e-mail addresses that are keys."""
    phones: tuple[str, ...] = ()
    """Paths of phone numbers that are keys."""
    names: tuple[str, ...] = ()
    """Paths of a full name (the first found), for the name plus birth date key."""
    births: tuple[str, ...] = ()
    """Paths of a birth date (the first found), for the name plus birth date key."""
    refs: tuple[Ref, ...] = ()
    """References to the document (usually a contact) that says who this is about."""
    senders: tuple[str, ...] = ()
    """Mail: paths of sender addresses (for the direction)."""
    recipients: tuple[str, ...] = ()
    """Mail: paths of recipient addresses."""
    section: Section | None = None
    """A chart file that lists this kind besides the timeline (sessions.md, billing.md)."""
    columns: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    """Label -> path (or paths, the first that gives a value) of what this kind shows in its
    chart section."""


_SENDERS = ("from[].email", "sender[].email")
_RECIPIENTS = ("to[].email", "cc[].email", "bcc[].email", "replyTo[].email")

RULES: dict[str, LinkRule] = {
    "contact": LinkRule(
        identity=True,
        emails=("emails.*.address",),
        phones=("phones.*.number",),
        names=("name.full",),
        births=("birth_date",),
    ),
    "email": LinkRule(senders=_SENDERS, recipients=_RECIPIENTS),
    # scored by engine.measures; the name a respondent gives is checked as a mail's display name
    # is: a response signed "Jordan Lee" from Sam's address is not Sam's questionnaire
    # a questionnaire kept in the CRM names its contact (`subject`): that reference decides first
    "form_response": LinkRule(refs=(Ref("subject.id"),), emails=("respondent.email",), names=("respondent.name",)),
    "clinical_session": LinkRule(
        refs=(Ref("subject.id"),),
        section="sessions",
        # the source's own label first: FHIR has no no-show Encounter ("cancelled")
        columns={"status": ("status_display", "status"), "service": "serviceType.code",
                 "minutes": "length_minutes", "modality": ("modality_display", "class")},
    ),
    "invoice": LinkRule(
        refs=(Ref("customer.id"),),
        section="billing",
        columns={"number": "doc_number", "total": "total", "balance": "balance",
                 "currency": "currency", "status": "status", "due": "due_date"},
    ),
    "payment": LinkRule(
        refs=(Ref("customer.id"),),
        section="billing",
        columns={"reference": "reference_number", "total": "total", "currency": "currency",
                 "unapplied": "unapplied"},
    ),
}
"""The table. Add a row (and bump ``RULES_VERSION``) to link a new kind; docs/clients.md."""

_GETTERS: dict[str, Getter] = {}


def values(doc: Any, paths: tuple[str, ...]) -> list[Any]:
    """Every value the paths find in ``doc`` (compiled once per path)."""
    out: list[Any] = []
    for path in paths:
        get = _GETTERS.get(path)
        if get is None:
            get = _GETTERS[path] = compile_path(path)
        out += get(doc)
    return out


def first_text(doc: Any, paths: tuple[str, ...]) -> str | None:
    """The first non-empty string the paths find."""
    for v in values(doc, paths):
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def texts(doc: Any, paths: tuple[str, ...]) -> list[str]:
    """Every non-empty string the paths find (numbers as text), trimmed, in order, without repeats."""
    return _strings(doc, paths, trim=True)


def ref_ids(doc: Any, paths: tuple[str, ...]) -> list[str]:
    """Every id a reference path finds, exactly as written (numbers as text), in order, without
    repeats. Never trimmed: the index keeps ``" 42"`` and ``"42"`` as two documents, and a
    trimmed reference to Henry's `` 42`` linked his session to Gina's ``42``."""
    return _strings(doc, paths, trim=False)


def _strings(doc: Any, paths: tuple[str, ...], *, trim: bool) -> list[str]:
    out: list[str] = []
    for v in values(doc, paths):
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            v = str(v)
        if isinstance(v, str) and v.strip():
            v = v.strip() if trim else v
            if v not in out:
                out.append(v)
    return out


def column_text(doc: Any, paths: str | tuple[str, ...]) -> str:
    """A chart column's value: the texts of the first of ``paths`` that gives any, joined."""
    for path in (paths,) if isinstance(paths, str) else paths:
        found = texts(doc, (path,))
        if found:
            return ", ".join(found)
    return ""


def rule_for(kind: str) -> LinkRule | None:
    """The row of a kind, or None."""
    return RULES.get(kind)
