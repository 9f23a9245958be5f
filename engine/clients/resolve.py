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
   is the document's. Otherwise it stays unlinked, with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any

import orjson

from engine.clients import keys as K
from engine.clients.model import (
    Card,
    Client,
    Conflict,
    Direction,
    DocFacts,
    DocRef,
    Link,
    Projection,
    Reason,
    Rule,
    Unlinked,
    client_id_for,
)
from engine.clients.overrides import Overrides
from engine.clients.rules import LinkRule, first_text, rule_for, texts, values
from engine.config import ClientsConfig

SEP = ", "
"""Between keys in an unlinked document's detail (no key contains it: names lose their
punctuation, addresses cannot hold a comma and a space)."""
_RULE_OF_KIND: dict[str, Rule] = {"email": "email", "phone": "phone", "name_dob": "name_dob"}
MEMO_MAX = 16_384
"""Entries of each normalisation memo (addresses, phones) before it starts over: strangers'
addresses are mostly seen once, and an unbounded memo grew with the mailbox."""


class Resolver:
    """Collects documents (:meth:`add`), then decides every link (:meth:`resolve`)."""

    def __init__(self, cfg: ClientsConfig, overrides: Overrides | None = None,
                 pins: dict[tuple[str, str], str] | None = None) -> None:
        self.cfg = cfg
        self.overrides = overrides or Overrides()
        self.pins = pins or {}
        """What each ``link:`` without ``sha256`` was first applied to (:func:`identity`),
        by (document, client or ""): stored with the last projection's tables."""
        self.docs: dict[DocRef, DocFacts] = {}
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
        nd = K.name_dob_key(first_text(doc, rule.names), first_text(doc, rule.births))
        if nd:
            found.append(nd)
        facts.keys = tuple(dict.fromkeys(found))
        if rule.refs:  # many documents name one contact: one DocRef for it, not one each
            one = self._refs.setdefault
            facts.refs = tuple(one(t, t) for t in (
                DocRef(ref.source, ref.account, kind, target)
                for r in rule.refs for target in texts(doc, (r.path,)) for kind in r.kinds))
        if rule.senders or rule.recipients:
            self._participants(facts, rule, doc)
        if rule.columns:
            facts.columns = tuple(", ".join(texts(doc, (path,))) for path in rule.columns.values())
        if rule.identity:
            facts.card = _card(doc, rule)
            facts.defines = self._defines(doc, ref)

    def _participants(self, facts: DocFacts, rule: LinkRule, doc: dict[str, Any]) -> None:
        facts.mail = True
        senders = [got for v in values(doc, rule.senders) if (got := self._address(v))[0]]
        everyone = senders + [got for v in values(doc, rule.recipients)
                              if (got := self._address(v))[0]]
        facts.outside = tuple(dict.fromkeys(key for _, _, key in everyone if key))
        if everyone and all(own for _, own, _ in everyone):
            facts.direction = "internal"
        elif any(own for _, own, _ in senders):
            facts.direction = "out"
        elif everyone:
            facts.direction = "in"

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
        state = _State(self, clients, alias, holders, lookup=self.docs.get,
                       targets={t for facts in self.docs.values() for t in facts.refs},
                       on_links=links.extend, on_unlinked=unlinked.append)
        for ref in sorted(self.docs):
            state.decide(ref)
        return self.finish(clients, conflicts, state, links, unlinked, self.docs, unused)

    def decider(self, clients: dict[str, Client], alias: dict[str, str],
                lookup: Callable[[DocRef], DocFacts | None], targets: AbstractSet[DocRef],
                on_links: Callable[[list[Link]], object],
                on_unlinked: Callable[[Unlinked], object],
                exists: Callable[[DocRef], bool] | None = None) -> tuple[dict[str, Conflict], _State]:
        """The conflicts and a decision pass over facts kept elsewhere (the streaming resolver)."""
        holders = _holders(clients.values())
        return self._conflicts(holders), _State(self, clients, alias, holders, lookup=lookup,
                                                targets=targets, on_links=on_links,
                                                on_unlinked=on_unlinked, exists=exists)

    @staticmethod
    def finish(clients: dict[str, Client], conflicts: dict[str, Conflict], state: _State,
               links: list[Link], unlinked: list[Unlinked], docs: dict[DocRef, DocFacts],
               unused: int) -> Projection:
        """The projection of a finished decision pass (conflicts get their document counts)."""
        for c in conflicts.values():
            c.documents = state.conflict_docs.get(c.key, 0)
        return Projection(clients=clients, links=links, unlinked=unlinked,
                          conflicts=sorted(conflicts.values(), key=lambda c: c.key),
                          docs=docs, unused_overrides=unused + state.unused_overrides,
                          override_pins=state.pins, stale_overrides=state.stale_overrides)

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
                clients[cid] = Client(cid, facts.ref, facts.card, keys)
        alias: dict[str, str] = {}
        unused = 0
        for group in self.overrides.merge:
            present: list[str] = []
            for c in group:
                c = alias.get(c, c)  # a client merged by an earlier group: its keeper
                if c in clients and c not in present:
                    present.append(c)
                elif c not in clients:
                    unused += 1
            if len(present) < 2:
                continue
            keep = clients[present[0]]
            for other in present[1:]:
                gone = clients.pop(other)
                keep.keys |= gone.keys
                keep.merged.append(other)
                alias[other] = keep.client_id
        return clients, alias, unused

    def _conflicts(self, holders: dict[str, set[str]]) -> dict[str, Conflict]:
        apart = [set(g) for g in self.overrides.apart]
        out: dict[str, Conflict] = {}
        for key, who in holders.items():
            if len(who) > 1:
                reviewed = any(who <= g for g in apart)
                out[key] = Conflict(key, tuple(sorted(who)), reviewed=reviewed)
        return out


def _holders(clients: Iterable[Client]) -> dict[str, set[str]]:
    holders: dict[str, set[str]] = {}
    for client in clients:
        for key in client.keys:
            holders.setdefault(key, set()).add(client.client_id)
    return holders


def _card(doc: dict[str, Any], rule: LinkRule) -> Card:
    comps = values(doc, ("name.components[]",))
    given = next((c.get("value") for c in comps if isinstance(c, dict) and c.get("kind") == "given"), None)
    family = next((c.get("value") for c in comps if isinstance(c, dict) and c.get("kind") == "surname"), None)
    return Card(
        name=first_text(doc, rule.names), given=given if isinstance(given, str) else None,
        family=family if isinstance(family, str) else None,
        birth_date=K.birth_date(first_text(doc, rule.births)),
        emails=texts(doc, rule.emails), phones=texts(doc, rule.phones),
        addresses=texts(doc, ("addresses.*.full",)),
    )


class _State:
    """The decisions of one resolve pass (links, unlinked documents, conflict counts)."""

    def __init__(self, resolver: Resolver, clients: dict[str, Client], alias: dict[str, str],
                 holders: dict[str, set[str]], *, lookup: Callable[[DocRef], DocFacts | None],
                 targets: AbstractSet[DocRef], on_links: Callable[[list[Link]], object],
                 on_unlinked: Callable[[Unlinked], object],
                 exists: Callable[[DocRef], bool] | None = None) -> None:
        self.r = resolver
        self.clients = clients
        self.alias = alias
        self.holders = holders
        self.lookup = lookup
        """A document's facts by its ref (None: not indexed); asked for references' targets
        and overridden documents only, the sorted pass hands each document's facts in."""
        self.exists = exists or (lambda ref: lookup(ref) is not None)
        """Whether a reference's target is indexed (without its facts: the streaming
        resolver answers from a set and fetches the facts only to decide it)."""
        self.on_links = on_links
        self.on_unlinked = on_unlinked
        self.conflict_docs: dict[str, int] = {}
        self.decided: dict[DocRef, list[Link] | Unlinked] = {}
        """Decisions other documents refer to (memoised; the rest are decided once, by the
        sorted pass, and not kept: one entry per document was a tenth of the task's memory)."""
        self.targets = targets
        self.forced: dict[DocRef, str | None] = {}
        self.unused_overrides = 0
        self.stale_overrides = 0
        self.pins: dict[tuple[str, str], str] = {}
        """The pins to store with this projection (see :attr:`Resolver.pins`)."""
        for item in resolver.overrides.link:
            ref = DocRef.parse(item.document)
            target = alias.get(item.client or "", item.client)
            facts = lookup(ref)
            if facts is None or (target is not None and target not in clients):
                self.unused_overrides += 1
                continue
            if item.sha256 is None and not self._holds(resolver.pins, (item.document, item.client or ""), facts):
                continue
            self.forced[ref] = target

    def _holds(self, stored: dict[tuple[str, str], str], key: tuple[str, str], facts: DocFacts) -> bool:
        """Whether an unpinned link still names what it was first applied to: the document's
        identity (its keys, participants and references, :func:`identity`), not its whole
        content, so a transform edit or a new field keeps the link, and a sheet row renumbered
        onto another person's row (other keys) does not. A stale link stays stale (its first
        identity is kept) until the operator pins it (``sha256:``) or writes it anew."""
        now = identity(facts)
        first = stored.get(key)
        if first is not None and first != now:
            self.stale_overrides += 1
            self.pins[key] = first
            return False
        self.pins[key] = now
        return True

    def decide(self, ref: DocRef, depth: int = 0, facts: DocFacts | None = None) -> list[Link] | Unlinked:
        """The decision for one document (memoised; references are followed)."""
        done = self.decided.get(ref)
        if done is not None:
            return done
        if facts is None:
            facts = self.lookup(ref)
            assert facts is not None, "decide() is called for indexed documents only"
        result = self._decide(ref, depth, facts)
        if ref in self.targets:
            self.decided[ref] = result
        if isinstance(result, Unlinked):
            self.on_unlinked(result)
            if result.reason == "conflict":
                for key in result.detail.split(SEP):
                    self.conflict_docs[key] = self.conflict_docs.get(key, 0) + 1
        else:
            self.on_links(result)
        return result

    def _decide(self, ref: DocRef, depth: int, facts: DocFacts) -> list[Link] | Unlinked:
        if ref in self.forced:
            return self._forced(ref, depth, facts)
        return self._by_rules(ref, depth, facts)

    def _forced(self, ref: DocRef, depth: int, facts: DocFacts) -> list[Link] | Unlinked:
        """An overridden document: to no one, or to the override's client, whatever the rules
        say (a link whose document's content changed since was dropped before: check_pins)."""
        target = self.forced[ref]
        if target is None:
            return Unlinked(ref, "override", "")
        return [Link(target, ref, "override", facts.direction, "overrides file")]

    def _by_rules(self, ref: DocRef, depth: int, facts: DocFacts) -> list[Link] | Unlinked:
        if not facts.has_rule:
            return Unlinked(ref, "no_rule", "")
        if facts.defines:
            own = client_id_for(ref.source, ref.account, ref.entity_id)
            cid = self.alias.get(own, own)
            if cid in self.clients:  # its own record; a merged one is there by override
                rule: Rule = "override" if cid != own else "source_ref"
                return [Link(cid, ref, rule, None, ref.entity_id)]
        if facts.refs:
            return self._by_ref(facts, depth)
        if facts.mail:
            return self._by_participants(facts)
        return self._by_keys(facts)

    def _by_ref(self, facts: DocFacts, depth: int) -> list[Link] | Unlinked:
        for target in facts.refs:
            if target != facts.ref and depth < 8 and self.exists(target):
                got = self.decide(target, depth + 1)
                if isinstance(got, Unlinked):
                    return Unlinked(facts.ref, "ref_unlinked", target.text())
                return [Link(cid, facts.ref, "source_ref", facts.direction, target.text())
                        for cid in dict.fromkeys(link.client_id for link in got)]
        return Unlinked(facts.ref, "ref_missing", SEP.join(t.text() for t in facts.refs))

    def _by_participants(self, facts: DocFacts) -> list[Link] | Unlinked:
        if facts.direction == "internal":
            return Unlinked(facts.ref, "internal", "")
        if not facts.outside:
            return Unlinked(facts.ref, "no_key", "")
        links: dict[str, Link] = {}
        shared: list[str] = []
        for key in facts.outside:
            who = self.holders.get(key, set())
            if len(who) == 1:
                cid = next(iter(who))
                links.setdefault(cid, Link(cid, facts.ref, "email", facts.direction, key))
            elif len(who) > 1:
                shared.append(key)
        if links:
            return list(links.values())
        if shared:
            return Unlinked(facts.ref, "conflict", SEP.join(shared))
        return Unlinked(facts.ref, "no_match" if facts.outside else "no_key",
                        SEP.join(facts.outside))

    def _by_keys(self, facts: DocFacts) -> list[Link] | Unlinked:
        if not facts.keys:
            return Unlinked(facts.ref, "no_key", "")
        matched = [(k, self.holders[k]) for k in facts.keys if self.holders.get(k)]
        if not matched:
            return Unlinked(facts.ref, "no_match", SEP.join(facts.keys))
        unique = {next(iter(who)) for _, who in matched if len(who) == 1}
        if not unique:
            return Unlinked(facts.ref, "conflict", SEP.join(k for k, _ in matched))
        if len(unique) > 1 or any(not (unique <= who) for _, who in matched):
            return Unlinked(facts.ref, "disagree", SEP.join(k for k, _ in matched))
        cid = next(iter(unique))
        if self._identity_differs(facts, cid):
            return Unlinked(facts.ref, "disagree", SEP.join(k for k, _ in matched))
        key = next(k for k, who in matched if who == {cid})
        direction: Direction | None = facts.direction
        return [Link(cid, facts.ref, _RULE_OF_KIND[K.key_kind(key)], direction, key)]

    def _identity_differs(self, facts: DocFacts, cid: str) -> bool:
        """True when the document's birth date is none of the client's: a child or parent who
        shares the client's phone or e-mail, or a contact the ``where`` conditions left out,
        is someone else whatever the shared number says, so nothing links. Names are not
        compared (a middle initial, a nickname, a married name are the same person; twins,
        one birth date and two names, stay a known limit: docs/clients.md)."""
        mine = {K.name_dob_date(k) for k in facts.keys if K.key_kind(k) == "name_dob"}
        if not mine:
            return False
        theirs = {K.name_dob_date(k) for k in self.clients[cid].keys if K.key_kind(k) == "name_dob"}
        return bool(theirs) and not theirs & mine


def identity(facts: DocFacts) -> str:
    """What makes a document someone's: its kind, keys, mail participants and references
    (sha256 hex), the pin of a ``link:`` override."""
    return hashlib.sha256(orjson.dumps([facts.ref.kind, sorted(facts.keys), sorted(facts.outside),
                                        sorted(r.text() for r in facts.refs)])).hexdigest()


__all__ = ["Reason", "Resolver", "identity"]
