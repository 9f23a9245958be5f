"""Identity resolution: clients from their system of record, every document to its client.

Deterministic and explainable, never a guess:

1. Clients are the contacts of ``clients.sources`` that meet ``clients.where``; a client's
   id derives from its record's source id, and its keys are that record's normalised
   e-mails, phones and name plus birth date (the practice's own addresses never count).
   ``merge`` overrides join several records into one client (the first id is kept).
2. A key two clients hold is a conflict. It never links a document on its own.
3. Each document is linked by the first of: an override; being a client's own record;
   its reference to another document (which links where that one links); its mail
   participants outside the practice (each address on its own, with the direction); its
   keys, which must all agree on exactly one client whose birth date (when both have one)
   is the document's. Otherwise it stays unlinked, with the reason (the decision pass:
   :mod:`engine.clients.decide`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from engine.clients import keys as K
from engine.clients.card import CLIENT_PIN, card_of, client_identity
from engine.clients.decide import OWN, Decisions, hold, identity
from engine.clients.model import (
    Client,
    Conflict,
    DocFacts,
    DocRef,
    Link,
    Projection,
    Reason,
    Unlinked,
    client_id_for,
)
from engine.clients.overrides import Overrides
from engine.clients.rules import LinkRule, column_text, first_text, ref_ids, rule_for, values
from engine.config import ClientsConfig
from engine.index.fields import date_only

MEMO_MAX = 16_384
"""Entries of each normalisation memo (addresses, phones) before it starts over: strangers'
addresses are mostly seen once, and an unbounded memo grew with the mailbox."""


class Resolver:
    """Collects documents (:meth:`add`), then decides every link (:meth:`resolve`)."""

    def __init__(self, cfg: ClientsConfig, overrides: Overrides | None = None,
                 pins: dict[tuple[str, str], str] | None = None) -> None:
        self.cfg = cfg
        self._zoned = cfg.timezone != "UTC"
        self.overrides = overrides or Overrides()
        self.pins = pins or {}
        """What each ``link:`` without ``sha256`` was first applied to (:func:`identity`),
        by (document, client or ""), and who each client an override names was (``client:ID``):
        stored with the last projection's tables. Every one is stored again, also those no
        entry of the file names any more: an entry removed for a run and restored later (a
        backup) is held to what it was first applied to, never to whatever is in its place
        then. Only ``lorchestra clients repin`` forgets one (:func:`engine.clients.tables.forget_pins`)."""
        self.docs: dict[DocRef, DocFacts] = {}
        self.client_pins: dict[tuple[str, str], str] = {}
        """The identity of each client an override names (:func:`client_identity`), by
        (``client:ID``, ""): kept with the link pins."""
        self.stale_clients: set[str] = set()
        """Clients an override names whose record is no longer the person it was first applied
        to (a sheet row's id passed to the next row): no override applies to them."""
        self.unused_named: list[tuple[str, str]] = []
        """``merge:ID`` / ``apart:ID`` entries naming no client (:meth:`clients`)."""
        self._alias: dict[str, str] = {}
        """Each merged-away client -> the client it is part of now (:meth:`clients`)."""
        self._gmail = tuple(K.address_case(d) for d in cfg.gmail_domains)
        self._own = K.own_patterns(cfg.own_addresses, self._gmail)
        self._ignored_phones = {k for raw in self.overrides.ignore
                                if "@" not in raw and (k := K.phone_key(raw, cfg.phone_region))}
        self._ignored_mail = K.own_patterns((p for p in self.overrides.ignore if "@" in p), self._gmail)
        self._where = [(path, v if isinstance(v, list) else [v]) for path, v in cfg.where.items()]
        self._addresses: dict[str, tuple[str | None, bool, str | None]] = {}
        self._phones: dict[str, str | None] = {}
        self._refs: dict[DocRef, DocRef] = {}

    def _address(self, raw: object) -> tuple[str | None, bool, str | None]:
        """(normalised address, the practice's own, key unless own or ignored), memoised."""
        if not isinstance(raw, str):
            return None, False, None
        got = self._addresses.get(raw)
        if got is None:
            if len(self._addresses) >= MEMO_MAX:
                self._addresses.clear()
            address = K.email_address(raw)
            forms = (address, K.folded(address, self._gmail)) if address is not None else ()
            own = any(K.is_own(a, self._own) for a in forms)
            key = None
            if address is not None and not own and not any(K.is_own(a, self._ignored_mail) for a in forms):
                key = K.email_key(address, self._gmail)
            got = self._addresses[raw] = (address, own, key)
        return got

    def _phone(self, raw: object) -> str | None:
        if not isinstance(raw, str):
            return None
        if raw not in self._phones:
            if len(self._phones) >= MEMO_MAX:
                self._phones.clear()
            key = K.phone_key(raw, self.cfg.phone_region)
            ignored = key is not None and K.phone_line(key) in self._ignored_phones
            self._phones[raw] = None if key in self._ignored_phones or ignored else key
        return self._phones[raw]

    def read_done(self) -> None:
        """Drop the normalisation memos once every document is reduced: the decisions work
        on folded facts, and the memory goes to them instead (the project task's peak)."""
        self._addresses.clear()
        self._phones.clear()
        K.forget_names()

    def forget(self) -> None:
        """Drop the memos and the referenced documents (once the decisions are made)."""
        self._addresses.clear()
        self._phones.clear()
        self._refs.clear()

    def add_targets(self, targets: Iterable[DocRef]) -> None:
        """Documents referred to by documents a helper process reduced."""
        one = self._refs.setdefault
        for t in targets:
            one(t, t)

    def same_ref(self, ref: DocRef) -> DocRef:
        """The one object kept for ``ref`` when some document refers to it, else ``ref``: the
        streaming resolver gives it to every document it decodes, so a decision memoised for
        a referenced document, keyed and linked by this object, holds no copy of its
        reference (12 MiB of the project task's peak at 1,000,000 demo documents:
        docs/performance.md)."""
        return self._refs.get(ref, ref)

    @property
    def targets(self) -> AbstractSet[DocRef]:
        """Every document some document refers to (whether indexed or not)."""
        return self._refs.keys()

    # -- collecting ----------------------------------------------------------------------

    def add(self, ref: DocRef, time: str | None, title: str | None, doc: dict[str, Any]) -> None:
        """Reduce one canonical document to its facts (the document itself is not kept)."""
        self.docs[ref] = self.reduce(ref, time, title, doc)

    def reduce(self, ref: DocRef, time: str | None, title: str | None, doc: dict[str, Any]) -> DocFacts:
        """One canonical document's facts, not kept (the streaming resolver stores them)."""
        rule = rule_for(ref.kind)
        facts = DocFacts(ref, time, title, has_rule=rule is not None)
        if rule is not None:
            self._facts(facts, rule, doc)
        if self._zoned and time is not None and time.endswith("T00:00:00Z"):
            facts.dated = date_only(doc)
        return facts

    def _facts(self, facts: DocFacts, rule: LinkRule, doc: dict[str, Any]) -> None:
        ref = facts.ref
        found: list[str] = []
        for raw in values(doc, rule.emails):
            key = self._address(raw)[2]
            if key:
                found.append(key)
        for raw in values(doc, rule.phones):
            key = self._phone(raw)
            if key:
                found.append(key)
        name = first_text(doc, rule.names)
        nd = K.name_dob_key(name, first_text(doc, rule.births))
        if nd:
            found.append(nd)
        # an address where the name goes (a form's "name" answered with the e-mail) is no name,
        # as a mail's display name that holds one is not
        facts.name = K.name_text(name) if name and "@" not in name else None
        facts.keys = tuple(dict.fromkeys(found))
        if rule.refs:  # many documents name one contact: one DocRef for it, not one each
            one = self._refs.setdefault
            facts.refs = tuple(one(t, t) for t in (
                DocRef(ref.source, ref.account, kind, target)
                for r in rule.refs for target in ref_ids(doc, (r.path,)) for kind in r.kinds))
        if rule.senders or rule.recipients:
            self._participants(facts, rule, doc)
        if rule.columns:
            facts.columns = tuple(column_text(doc, paths) for paths in rule.columns.values())
        if rule.identity:
            facts.card = card_of(doc, rule)
            facts.defines = self._defines(doc, ref)

    def _participants(self, facts: DocFacts, rule: LinkRule, doc: dict[str, Any]) -> None:
        facts.mail = True
        given = [(self._address(v), v) for v in values(doc, rule.senders)]
        others = [(self._address(v), v) for v in values(doc, rule.recipients)]
        senders = [got for got, _ in given if got[0]]
        everyone = senders + [got for got, _ in others if got[0]]
        # an address that does not parse ("N/A", "unknown"), or a name with no address, is
        # someone, not the practice: such a mail is never "internal" (the staff-only threads
        # an operator may skip). Not an empty group ("undisclosed-recipients:;") nor an
        # Exchange X.500 address ("/O=EXCHANGELABS/..."), which only the practice's own have.
        facts.said, nameless = self._said(doc, (*rule.senders, *rule.recipients))
        unreadable = nameless or any(not got[0] and _someone(v) for got, v in (*given, *others))
        facts.outside = tuple(dict.fromkeys(key for _, _, key in everyone if key))
        if everyone and all(own for _, own, _ in everyone) and not unreadable:
            facts.direction = "internal"
        elif any(own for _, own, _ in senders):
            facts.direction = "out"
        elif everyone:
            facts.direction = "in"

    def _said(self, doc: dict[str, Any], paths: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], bool]:
        """(key, folded display name) of the participants who came with a name: each address
        path's parent object (``from[].email`` -> ``from[]``) gives its ``name``; the key is ""
        when the address is none (``{"name": "Kim", "email": null}``), does not parse or is
        ignored: the name alone still says who; ``own:`` and the address for the practice's
        own addresses, which are no key but whose display name may still be a client's
        (``Noah Park <bookings@practice>``, the booking portal writing as the client). And
        whether one gives a name and no address."""
        out: dict[tuple[str, str], None] = {}
        nameless = False
        for path in paths:
            parent, _, field_name = path.rpartition(".")
            if not parent:
                continue
            for item in values(doc, (parent,)):
                if not isinstance(item, dict):
                    continue
                address = item.get(field_name)
                normal, own, key = self._address(address)
                raw = item.get("name")  # an address written as the name says nothing of who
                name = K.name_text(raw) if isinstance(raw, str) and "@" not in raw else None
                if name:
                    out[(f"{OWN}{K.folded(normal, self._gmail)}" if own and normal else key or "", name)] = None
                nameless = nameless or (not address and isinstance(raw, str) and bool(raw.strip()))
        return tuple(out), nameless

    def _defines(self, doc: dict[str, Any], ref: DocRef) -> bool:
        if ref.source not in self.cfg.sources:
            return False
        for path, wanted in self._where:
            found = values(doc, (path,))
            if not any(v == w or (isinstance(w, str) and str(v) == w)
                       for v in found for w in wanted):
                return False
        return True

    # -- deciding ------------------------------------------------------------------------

    def resolve(self) -> Projection:
        """Every decision, from the documents collected so far."""
        clients, alias, unused = self.clients(self.docs.values())
        holders = _holders(clients.values())
        conflicts = self._conflicts(holders)
        links: list[Link] = []
        unlinked: list[Unlinked] = []
        state = Decisions(self.overrides, self.pins, clients, alias, holders, stale=self.stale_clients,
                          lookup=self.docs.get,
                          targets={t for facts in self.docs.values() for t in facts.refs},
                          on_links=links.extend, on_unlinked=unlinked.append)
        for ref in sorted(self.docs):
            state.decide(ref)
        return self.finish(clients, conflicts, state, links, unlinked, self.docs, unused)

    def decider(self, clients: dict[str, Client], alias: dict[str, str],
                lookup: Callable[[DocRef], DocFacts | None], targets: AbstractSet[DocRef],
                on_links: Callable[[list[Link]], object],
                on_unlinked: Callable[[Unlinked], object],
                exists: Callable[[DocRef], bool] | None = None) -> tuple[dict[str, Conflict], Decisions]:
        """The conflicts and a decision pass over facts kept elsewhere (the streaming resolver)."""
        holders = _holders(clients.values())
        decisions = Decisions(self.overrides, self.pins, clients, alias, holders, stale=self.stale_clients,
                              lookup=lookup,
                              targets=targets, on_links=on_links, on_unlinked=on_unlinked, exists=exists)
        return self._conflicts(holders), decisions

    def finish(self, clients: dict[str, Client], conflicts: dict[str, Conflict], state: Decisions,
               links: list[Link], unlinked: list[Unlinked], docs: dict[DocRef, DocFacts],
               unused: int) -> Projection:
        """The projection of a finished decision pass (conflicts get their document counts)."""
        for c in conflicts.values():
            c.documents = state.conflict_docs.get(c.key, 0)
        return Projection(clients=clients, links=links, unlinked=unlinked,
                          conflicts=sorted(conflicts.values(), key=lambda c: c.key),
                          docs=docs, unused_overrides=unused + state.unused_overrides,
                          unused=[*self.unused_named, *state.unused],
                          override_pins={**self.pins, **self.client_pins, **state.pins},
                          stale_overrides=state.stale_overrides + len(self.stale_clients),
                          stale=[*((f"{CLIENT_PIN}{c}", "") for c in sorted(self.stale_clients)), *state.stale])

    def clients(self, defining: Iterable[DocFacts]) -> tuple[dict[str, Client], dict[str, str], int]:
        """Clients from the documents that define one, merged by the overrides; the merge
        aliases; the merge entries naming no client."""
        clients: dict[str, Client] = {}
        for facts in defining:
            if facts.defines and facts.card is not None:
                cid = client_id_for(facts.ref.source, facts.ref.account, facts.ref.entity_id)
                # a client's extension also holds its office's line: a document giving only
                # the line is then shared with any other client on it (a conflict), never theirs
                keys = set(facts.keys) | {K.phone_line(k) for k in facts.keys if K.phone_ext(k)}
                clients[cid] = Client(cid, facts.ref, facts.card, keys, names=(facts.name,) if facts.name else ())
        self._check_named_clients(clients)
        alias: dict[str, str] = {}
        unused = 0
        self.unused_named = []
        for group in self.overrides.merge:
            present: list[str] = []
            for c in group:
                c = alias.get(c, c)  # a client merged by an earlier group: its keeper
                if c in self.stale_clients:
                    continue  # another person's record under that id now: never merged
                if c in clients and c not in present:
                    present.append(c)
                elif c not in clients:
                    unused += 1
                    self.unused_named.append((f"merge:{c}", ""))
            if len(present) < 2:
                continue
            keep = clients[present[0]]
            for other in present[1:]:
                gone = clients.pop(other)
                keep.keys |= gone.keys
                keep.names = tuple(dict.fromkeys((*keep.names, *gone.names)))
                keep.aliases |= gone.aliases
                keep.merged.extend([other, *gone.merged])  # chained groups: B kept A, C keeps B
                alias[other] = keep.client_id
        for merged in alias:  # a keeper merged away by a later group: every id to the final one
            final = alias[merged]
            while final in alias and alias[final] != final:
                final = alias[final]
            alias[merged] = final
        self._alias = alias
        for group in self.overrides.apart:  # a typo here left the conflict open, uncounted
            for c in dict.fromkeys(group):
                if alias.get(c, c) not in clients and c not in self.stale_clients:
                    unused += 1
                    self.unused_named.append((f"apart:{c}", ""))
        for c, names in self.overrides.names.items():  # other names the client goes by
            if c in self.stale_clients:
                continue  # another person's record under that id now: not their names
            if alias.get(c, c) in clients:
                clients[alias.get(c, c)].aliases |= {n for n in map(K.name_text, names) if n}
            else:
                unused += 1
                self.unused_named.append((f"names:{c}", ""))
        return clients, alias, unused

    def _check_named_clients(self, clients: dict[str, Client]) -> None:
        """Pin every client an override names to its record's person (:func:`client_identity`);
        one whose record is another person now (its id is a sheet row's number, and a row
        above it was deleted) goes to :attr:`stale_clients`. A pin is kept while the override
        names the client, also through runs without it."""
        named = {c for group in (*self.overrides.merge, *self.overrides.apart) for c in group}
        named |= set(self.overrides.names)
        named |= {item.client for item in self.overrides.link if item.client}
        for cid in sorted(named):
            key = (f"{CLIENT_PIN}{cid}", "")
            first = self.pins.get(key)
            client = clients.get(cid)
            if client is None:
                if first is not None:
                    self.client_pins[key] = first
                continue
            now = client_identity(client)
            if first is not None and first != now and first == client_identity(client, legacy=True):
                first = now  # pinned before names kept their combining marks: the same person
            if not hold(first, now, self.client_pins, key):
                self.stale_clients.add(cid)

    def _conflicts(self, holders: Mapping[str, AbstractSet[str]]) -> dict[str, Conflict]:
        # an apart naming a client a merge made part of another: it keeps that other apart
        apart = [{self._alias.get(c, c) for c in g if c not in self.stale_clients} for g in self.overrides.apart]
        out: dict[str, Conflict] = {}
        for key, who in holders.items():
            if len(who) > 1:
                reviewed = any(who <= g for g in apart)
                out[key] = Conflict(key, tuple(sorted(who)), reviewed=reviewed)
        return out


def _holders(clients: Iterable[Client]) -> dict[str, frozenset[str]]:
    """Each key -> the clients holding it. Most keys have one holder, and a client holds a
    few keys: those keys share one frozenset of that client (a set per key was 11 MiB at
    1,000,000 demo records, in the project task's largest phase)."""
    held: dict[str, list[str]] = {}
    for client in clients:
        for key in client.keys:
            held.setdefault(key, []).append(client.client_id)
    ones: dict[str, frozenset[str]] = {}
    return {key: (ones.get(who[0]) or ones.setdefault(who[0], frozenset(who))) if len(who) == 1
            else frozenset(who) for key, who in held.items()}


def _someone(raw: object) -> bool:
    """Whether an address that does not parse still names someone outside the practice."""
    if not isinstance(raw, str) or not raw.strip():
        return False
    text = raw.strip().lower()
    return not (text.endswith(":;") or text.startswith("/o="))


__all__ = ["Reason", "Resolver", "identity"]
