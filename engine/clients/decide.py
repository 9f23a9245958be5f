"""The decision pass: each document to its client by the first rule that decides it.

Separate from :mod:`engine.clients.resolve` (which builds the clients and their keys) because
both resolvers, the in-memory one and the streaming one of :mod:`engine.clients.stream`,
decide with this very code: an override; a client's own record; a reference to another
document; the mail participants outside the practice; the keys, which must all agree on
one client whose birth date is the document's, whose name the document's can be
(:mod:`engine.clients.namematch`), and no other client's: a name (or a mail participant's
display name, the practice's own addresses' included) that is or lists another client not
linked, and a link by name and birth date alone while another client of that name has no
birth date on file, are ``disagree``. Otherwise the document stays unlinked, with the
reason. Never a guess.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet

import orjson

from engine.clients import keys as K
from engine.clients.listing import NameIndex, own_names
from engine.clients.model import (
    Client,
    Direction,
    DocFacts,
    DocRef,
    Link,
    Rule,
    Unlinked,
    client_id_for,
)
from engine.clients.namematch import could_be
from engine.clients.overrides import Overrides

SEP = ", "
"""Between keys in an unlinked document's detail (no key contains it: names lose their
punctuation, addresses cannot hold a comma and a space)."""
OWN = "own:"
"""The prefix of a mail participant's key in :attr:`DocFacts.said` when its address is the
practice's own (never a client key): its display name is still checked (another client's
name there, ``Noah Park <bookings@practice>``, leaves the mail unlinked)."""
_RULE_OF_KIND: dict[str, Rule] = {"email": "email", "phone": "phone", "name_dob": "name_dob"}


class Decisions:
    """The decisions of one resolve pass (links, unlinked documents, conflict counts)."""

    def __init__(self, overrides: Overrides, pins: dict[tuple[str, str], str],
                 clients: dict[str, Client], alias: dict[str, str],
                 holders: Mapping[str, AbstractSet[str]], *, stale: AbstractSet[str] = frozenset(),
                 lookup: Callable[[DocRef], DocFacts | None],
                 targets: AbstractSet[DocRef], on_links: Callable[[list[Link]], object],
                 on_unlinked: Callable[[Unlinked], object],
                 exists: Callable[[DocRef], bool] | None = None) -> None:
        self.clients = clients
        self._names = {cid: K.name_text(c.card.name) for cid, c in clients.items()}
        by_name: dict[str, list[str]] = {}
        for cid, folded in self._names.items():
            if folded:
                by_name.setdefault(folded, []).append(cid)
        # a tuple each (most names are one client's), built once: a placeholder name many
        # clients share ("N/A") must not be copied once per client
        self._by_name: dict[str, tuple[str, ...]] = {n: tuple(c) for n, c in by_name.items()}
        self._families = {cid: K.name_text(c.card.family) for cid, c in clients.items() if c.card.family}
        self._by_key_name: dict[str, list[str]] = {}  # as a name_dob key writes it: O'Neill = ONeill
        for cid, c in clients.items():
            self._by_key_name.setdefault(K.key_name(c.card.name) or "", []).append(cid)
        self._aliases: dict[str, frozenset[str]] = {}
        """Each client's ``names:`` (overrides), less those that are another client's very
        name (a typo, a sibling's name pasted: it would excuse that client's name on this
        one's documents); those are not applied and are reported as unused."""
        self.unused_overrides = 0
        self.unused: list[tuple[str, str]] = []
        """(document, client or "") of each ``link:`` naming a document or client that is not
        there; ``names:ID (...)`` for a ``names:`` entry that is another client's name."""
        for cid, c in clients.items():
            theirs = {a for a in c.aliases if any(o != cid for o in self._by_name.get(a, ()))}
            self._aliases[cid] = c.aliases - theirs if theirs else c.aliases
            if theirs:
                self.unused_overrides += len(theirs)
                self.unused.extend([(f"names:{cid} (another client's name)", "")] * len(theirs))
        # a function of the tables, not a bound method: the index must not hold this object
        # (a cycle kept every decision memoised here alive until a full collection, long
        # after the pass: 40 MiB of the project task's peak at 1,000,000 documents)
        self._index = NameIndex(clients, self._names, self._by_name,
                                functools.partial(own_names, clients, self._names, self._aliases))
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
        self.stale_overrides = 0
        self.stale: list[tuple[str, str]] = []
        """(document, client or "") of each link not applied as stale."""
        self.pins: dict[tuple[str, str], str] = {}
        """The pins to store with this projection (see :attr:`engine.clients.resolve.Resolver.pins`)."""
        for item in overrides.link:
            ref = DocRef.parse(item.document)
            target = alias.get(item.client or "", item.client)
            facts = lookup(ref)
            if facts is None or (target is not None and target not in clients):
                self.unused_overrides += 1
                self.unused.append((item.document, item.client or ""))
                continue  # its pin is stored again as every stored pin is (Resolver.pins)
            if item.sha256 is None and not self._holds(pins, (item.document, item.client or ""), facts):
                continue
            if item.client in stale:  # the client's id names another person now (counted once, there)
                continue
            self.forced[ref] = target

    def _holds(self, stored: dict[tuple[str, str], str], key: tuple[str, str], facts: DocFacts) -> bool:
        """Whether an unpinned link still names what it was first applied to: the document's
        identity (its keys, participants, references and time, :func:`identity`), not its whole
        content, so a transform edit or a new field keeps the link, and a sheet row renumbered
        onto another person's row (other keys, another time) does not. A stale link stays
        stale (its first identity is kept) until the operator pins it (``sha256:``) or writes
        it anew. A pin stored before the time was part of the identity is compared the old
        way, and stored anew when it holds."""
        now = identity(facts)
        first = stored.get(key)
        if first is not None and first != now and first in (past_identity(first, facts), before_apostrophes(facts)):
            first = now
        if hold(first, now, self.pins, key):
            return True
        self.stale_overrides += 1
        self.stale.append(key)
        return False

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
            contradicted = self._said_another(facts, links.keys())
            if contradicted:
                return Unlinked(facts.ref, "disagree", SEP.join(contradicted))
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
        why = ("its birth date is not" if self._identity_differs(facts, cid) else
               "it names another client, not" if self._names_another(facts, cid) else
               "its name cannot be" if self._someone_else(facts, cid) else
               "another client of its name has no birth date on file, not only" if self._namesake(facts, matched, cid)
               else None)
        if why is not None:  # the keys, then which check said no (the operator's next step)
            return Unlinked(facts.ref, "disagree", f"{SEP.join(k for k, _ in matched)}; {why} client {cid}'s")
        key = next(k for k, who in matched if who == {cid})
        direction: Direction | None = facts.direction
        return [Link(cid, facts.ref, _RULE_OF_KIND[K.key_kind(key)], direction, key)]

    def _someone_else(self, facts: DocFacts, cid: str) -> bool:
        """True when the document's name cannot be the client's (:mod:`engine.clients.namematch`):
        a son, a spouse or a sister reached through the client's shared e-mail or phone
        ("Tim Doe" or "Ben Doe (child)" with Ann Doe's keys). A birth date the document shares
        with the client excuses nothing: twins share it (``Paula Brown`` for ``Paul Brown``),
        and a new family name after a marriage is reported like any other name (a ``link:``
        settles it)."""
        if facts.name is None:
            return False
        client = self.clients[cid]
        return not could_be(facts.name, {*(client.names or (self._names.get(cid) or "",)), *self._aliases[cid]},
                            self._family(cid))

    def _family(self, cid: str) -> tuple[str, ...]:
        family = self._families.get(cid)
        return (family,) if family else ()

    def _own_names(self, cids: AbstractSet[str]) -> set[str]:
        """Every name the clients go by (:func:`own_names`)."""
        return own_names(self.clients, self._names, self._aliases, cids)

    def _listed(self, name: str, linked: AbstractSet[str]) -> str | None:
        """The first client besides ``linked`` whom the folded ``name`` lists among its people,
        or None (:meth:`engine.clients.listing.NameIndex.listed`)."""
        return self._index.listed(name, linked)

    def _namesake(self, facts: DocFacts, matched: list[tuple[str, AbstractSet[str]]], cid: str) -> bool:
        """True when the link would stand on name and birth date alone (no other key is
        the client's alone) while another client of that very name has no birth date on
        file: that one may be the person as well (two John Smiths, one without a birth date)."""
        if any(who == {cid} and K.key_kind(k) != "name_dob" for k, who in matched):
            return False
        names = {K.name_dob_name(k) for k, who in matched if who == {cid} and K.key_kind(k) == "name_dob"}
        others = {o for n in names for o in self._by_key_name.get(n, ())}
        others |= set(self._by_name.get(facts.name, ())) if facts.name else set()
        return any(o != cid and not any(K.key_kind(k) == "name_dob" for k in self.clients[o].keys) for o in others)

    def _said_another(self, facts: DocFacts, linked: AbstractSet[str]) -> list[str]:
        """Why a mail's participants say it is someone else's (each a key and the check): a
        display name that cannot be the client its address leads to
        (:mod:`engine.clients.namematch`), or is another client's very name: ``Tim Doe
        <ann.doe@example.com>`` is the son writing from his mother's address, and a message
        signed "Paul Gray" from an address now on file for Paula Gray is Paul's. A participant
        whose address leads to no one (unknown, shared, none given) is still someone by name:
        ``Ben Reed <ben@school.example>`` with his mother in Cc is Ben's message, and the mail
        goes to no chart unless it links to Ben too."""
        out: list[str] = []
        for key, name in facts.said:
            who = self.holders.get(key, set()) if key and not key.startswith(OWN) else set()
            if len(who) != 1:
                named = self._by_name.get(name, ())
                if named and any(c in linked for c in named):
                    continue  # a linked client's very name
                listed = self._listed(name, linked)
                if listed:
                    out.append(f"{key or 'a participant without an address'}; its display name is client "
                               f"{listed}'s, who is not linked")
                continue
            cid = next(iter(who))
            client = self.clients[cid]
            names = {*client.names, self._names.get(cid) or ""}
            if name in names and not self._listed(name, linked | {cid}):
                continue  # the client's own record's name (two clients may share it)
            if (any(other != cid for other in self._by_name.get(name, ()))
                    or not could_be(name, names | self._aliases[cid], self._family(cid))):
                out.append(f"{key}; a display name cannot be the address holder's")
            elif listed := self._listed(name, linked | {cid}):
                out.append(f"{key}; its display name is client {listed}'s too, who is not linked")
        return out

    def _names_another(self, facts: DocFacts, cid: str) -> bool:
        """True when the document names another client, by the very name, and not this one:
        a son's billing record under his mother's e-mail and phone ("Tim Doe" with Ann's
        keys) is Tim's whatever the keys say, and no birth date is there to tell them apart.
        A name that is no client's (a nickname, a married name) does not count."""
        if facts.name is None:
            return False
        if facts.name != self._names.get(cid) and any(other != cid for other in self._by_name.get(facts.name, ())):
            return True
        return self._listed(facts.name, {cid}) is not None

    def _identity_differs(self, facts: DocFacts, cid: str) -> bool:
        """True when the document's birth date is none of the client's: a child or parent who
        shares the client's phone or e-mail, or a contact the ``where`` conditions left out,
        is someone else whatever the shared number says, so nothing links. Names are not
        compared here (the name rule, :meth:`_someone_else`, does that: twins, one birth date
        and two given names, are told apart there)."""
        mine = {K.name_dob_date(k) for k in facts.keys if K.key_kind(k) == "name_dob"}
        if not mine:
            return False
        theirs = {K.name_dob_date(k) for k in self.clients[cid].keys if K.key_kind(k) == "name_dob"}
        return bool(theirs) and not theirs & mine


def hold(first: str | None, now: str, kept: dict[tuple[str, str], str], key: tuple[str, str]) -> bool:
    """Whether a pin still holds (none yet, or the same as ``now``); the pin to keep goes to
    ``kept``: the first one, so a stale override stays stale until it is written anew."""
    kept[key] = first if first is not None and first != now else now
    return kept[key] == now


IDENTITY_V2 = "2:"
"""The prefix of an identity that also holds the document's time (pins stored before it
have none and are compared the first way once, then stored anew)."""
IDENTITY_V3 = "3:"
"""The prefix of an identity that also holds the name the document gives (a sheet row has
no time, and a family member's row without a birth date shares every key)."""


def identity(facts: DocFacts) -> str:
    """What makes a document someone's: its kind, keys, mail participants, references and
    the name it gives, or its time when it gives none: the pin of a ``link:`` override. The
    time tells two family members' form responses apart, which share every key (the
    family's address) and are exactly the documents that need a ``link:``; a row renumbered
    onto the other's gives another time, or another name. A contact's time is when it was
    last edited, so a record that gives a name is pinned by the name, not the time."""
    return IDENTITY_V3 + _digest(facts, None if facts.name else facts.time, facts.name)


def _digest(facts: DocFacts, *more: str | None) -> str:
    return hashlib.sha256(orjson.dumps([facts.ref.kind, sorted(facts.keys), sorted(facts.outside),
                                        sorted(r.text() for r in facts.refs), *more])).hexdigest()


def past_identity(stored: str, facts: DocFacts) -> str:
    """The document's identity as a pin stored by an earlier version spells it (compared
    once, then the pin is stored anew): version 2 held the time, version 1 neither; a version
    3 pin stored before names kept their combining marks (and before a form response's
    ``respondent.name`` was read) holds the name and its keys folded the older way."""
    if stored.startswith(IDENTITY_V3):
        return _legacy_v3(facts)
    if stored.startswith(IDENTITY_V2):
        return IDENTITY_V2 + _digest(facts, facts.time)
    return identity_v1(facts)


def _legacy_v3(facts: DocFacts) -> str:
    name = None if facts.ref.kind == "form_response" or facts.name is None else K.legacy_fold(facts.name)
    keys = [f"name_dob:{K.legacy_fold(k[9:k.rindex('|')])}{k[k.rindex('|'):]}"
            if k.startswith("name_dob:") and "|" in k else k for k in facts.keys]
    return IDENTITY_V3 + hashlib.sha256(orjson.dumps(
        [facts.ref.kind, sorted(keys), sorted(facts.outside), sorted(r.text() for r in facts.refs),
         None if name else facts.time, name])).hexdigest()


def before_apostrophes(facts: DocFacts) -> str | None:
    """The identity as pins stored before the name-and-birth-date key dropped a name's
    apostrophes spell it (``siobhan o neill``, now ``siobhan oneill``): compared once and
    stored anew, so no ``link:`` turns stale for it. None when no key changed."""
    name = facts.name
    if not name:
        return None
    keys = [f"name_dob:{name}|{K.name_dob_date(k)}"
            if k.startswith("name_dob:") and K.name_dob_name(k) != name
            and K.name_dob_name(k).replace(" ", "") == name.replace(" ", "") else k for k in facts.keys]
    if keys == list(facts.keys):
        return None
    return IDENTITY_V3 + hashlib.sha256(orjson.dumps(
        [facts.ref.kind, sorted(keys), sorted(facts.outside), sorted(r.text() for r in facts.refs),
         None, name])).hexdigest()


def identity_v1(facts: DocFacts) -> str:
    """The identity pins were stored with before the time was part of it (64 hex digits)."""
    return _digest(facts)
