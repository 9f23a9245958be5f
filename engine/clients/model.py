"""The client layer's data: documents as the resolver sees them, clients, links, conflicts.

Plain dataclasses, shared by the resolver, the tables and the charts; nothing here reads
or writes anything. A document is named by ``DocRef`` (source, account, kind, source_id),
the index's own identity of a document, which survives re-indexing (``doc_id`` does not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Rule = Literal["email", "phone", "source_ref", "name_dob", "override"]
Direction = Literal["in", "out", "internal"]
Reason = Literal["no_rule", "no_key", "no_match", "conflict", "disagree", "internal",
                 "ref_missing", "ref_unlinked", "override"]

REASONS: dict[str, str] = {
    "no_rule": "no link rule for this kind",
    "no_key": "nothing to match by (a name alone never links)",
    "no_match": "its keys belong to no client",
    "conflict": "reached only through a key several clients hold",
    "disagree": ("its keys point at different clients, or its birth date or name cannot be the client's, "
                 "or it (or a mail's sender or recipient) names another client"),
    "internal": "only the practice's own addresses take part",
    "ref_missing": "the record it refers to is not in the index",
    "ref_unlinked": "the record it refers to is linked to no one",
    "override": "the overrides file links it to no one",
}
"""What each unlinked reason means (for the terminal and docs/clients.md)."""


class DocRef(NamedTuple):
    """A document's identity in the index."""

    source: str
    account: str
    kind: str
    entity_id: str

    def text(self) -> str:
        """``source:account:kind:source_id`` (the form the overrides file uses)."""
        return f"{self.source}:{self.account}:{self.kind}:{self.entity_id}"

    @classmethod
    def parse(cls, text: str) -> DocRef:
        """The inverse of :meth:`text`."""
        source, account, kind, entity = text.split(":", 3)
        return cls(source, account, kind, entity)


def client_id_for(source: str, account: str, entity_id: str) -> str:
    """A stable client id from the system-of-record id: 16 hex digits of a sha256."""
    return hashlib.sha256(f"{source}\x1f{account}\x1f{entity_id}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class Card:
    """What a contact document says about a person (PHI; charts and terminal only)."""

    name: str | None
    given: str | None
    family: str | None
    birth_date: str | None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)

    @property
    def sort_name(self) -> str:
        """``Family, Given`` when the parts are known, else the full name as written."""
        if self.family and self.given:
            return f"{self.family}, {self.given}"
        return self.name or self.family or self.given or "Unnamed"


@dataclass(slots=True)
class DocFacts:
    """One document reduced to what linking and the charts need."""

    ref: DocRef
    time: str | None
    title: str | None
    keys: tuple[str, ...] = ()
    refs: tuple[DocRef, ...] = ()
    outside: tuple[str, ...] = ()
    direction: Direction | None = None
    mail: bool = False
    has_rule: bool = True
    defines: bool = False
    card: Card | None = None
    columns: tuple[str, ...] = ()
    """The values of the kind's chart columns, in the order of its rule's ``columns``
    (a tuple, not a dict per document: :func:`engine.clients.charts.column` reads it)."""
    name: str | None = None
    """The person the document names, folded (:func:`engine.clients.keys.name_text`): a
    contact's name, with or without a birth date."""
    dated: bool = False
    """The time is a date alone (an invoice's date): a chart in a zone shows it unconverted.
    Only set when ``clients.timezone`` is not UTC."""
    said: tuple[tuple[str, str], ...] = ()
    """Mail: (key, folded display name) of each participant whose address came with a name
    (``Ben Doe <ann@example.com>``); for the practice's own addresses the key is ``own:`` and
    the address (:data:`engine.clients.decide.OWN`: no client key, the name still checked)."""


@dataclass(slots=True)
class Client:
    """One client: defined by a contact of ``clients.sources`` (plus merged ones)."""

    client_id: str
    home: DocRef
    card: Card
    keys: set[str] = field(default_factory=set)
    merged: list[str] = field(default_factory=list)
    folder: str = ""
    names: tuple[str, ...] = ()
    """The folded names of the client's records (its own, and those merged into it), each
    once. A tuple: one name for most clients (a set each was 5.5 MiB at 26,666 clients)."""
    aliases: frozenset[str] = frozenset()
    """Other folded names the overrides file's ``names:`` gives the client: they fit the
    client as its names do, but never excuse another client's very name. Frozen: most
    clients have none, and every client then shares the one empty frozenset (a set each
    was 5.5 MiB at 26,666 clients, against the project task's 200 MiB)."""


@dataclass(frozen=True, slots=True)
class Link:
    """A document linked to a client, with the rule that did it."""

    client_id: str
    doc: DocRef
    rule: Rule
    direction: Direction | None
    via: str
    """The key or reference that made the link (PHI: stays in the workspace)."""


@dataclass(frozen=True, slots=True)
class Unlinked:
    """A document linked to no one, and why."""

    doc: DocRef
    reason: Reason
    detail: str
    """The keys or reference involved (PHI: stays in the workspace)."""


@dataclass(slots=True)
class Conflict:
    """A key that several clients hold."""

    key: str
    clients: tuple[str, ...]
    documents: int = 0
    reviewed: bool = False


@dataclass(slots=True)
class Projection:
    """Everything one project run decided."""

    clients: dict[str, Client]
    links: list[Link]
    unlinked: list[Unlinked]
    conflicts: list[Conflict]
    docs: dict[DocRef, DocFacts]
    """Every document's facts; the project task keeps the linked ones only once decided."""
    unused_overrides: int = 0
    override_pins: dict[tuple[str, str], str] = field(default_factory=dict)
    """(document, client or "") -> the identity each ``link:`` without ``sha256`` holds for
    (``engine.clients.decide.identity``; stored with the tables)."""
    stale_overrides: int = 0
    """Links not applied: their document is no longer the one they were first applied to."""
    timezone: str = "UTC"
    """The zone the chart folders show times in (``clients.timezone``; the tables keep UTC)."""
    unused: list[tuple[str, str]] = field(default_factory=list)
    """(document or ``merge:ID``/``apart:ID``, client or "") of each override naming a document
    or client that is not there, for ``lorchestra clients conflicts`` to name (the warning
    ``OVERRIDE_UNUSED`` only counts them: a typo in an id was never shown)."""
    stale: list[tuple[str, str]] = field(default_factory=list)
    """(document or ``client:ID``, client or "") of each override not applied as stale, for
    ``lorchestra clients conflicts`` to name (the warning only counts them)."""
    documents: int = -1
    """Documents decided (``len(docs)`` until the project task trims ``docs``)."""
    streamed: Streamed | None = None
    """Set by the streaming resolver (:mod:`engine.clients.stream`): ``links``, ``unlinked``
    and ``docs`` are then empty, the decisions are rows of its scratch database."""

    def counts(self) -> dict[str, int]:
        """PHI-free totals: clients, links, conflicts, unlinked documents, documents."""
        s = self.streamed
        return {"clients": len(self.clients), "links": s.links if s else len(self.links),
                "conflicts": sum(1 for c in self.conflicts if not c.reviewed),
                "unlinked": s.unlinked if s else len(self.unlinked),
                "documents": self.documents if self.documents >= 0 else len(self.docs)}


@dataclass(slots=True)
class Streamed:
    """What the streaming resolver counted while writing its decisions to disk."""

    links: int = 0
    unlinked: int = 0
    per_client: dict[str, int] = field(default_factory=dict)
    """Links per client id."""
