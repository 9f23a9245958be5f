"""Who else a name lists: the index of every client's names by their words.

Why a module of its own: the decision pass (:mod:`engine.clients.decide`) asks, for each
document's name and each mail participant's display name, whether it names a client other
than the ones its keys lead to (``Lily & Noah Park`` from the address only Lily holds lists
Noah too: neither's alone, reported as ``disagree``). Asked of every document, this must not
cost per client: the clients are indexed by the sets of words of their names
(:func:`engine.clients.namematch.index_keys`), a name is looked up by its own words
(:func:`engine.clients.namematch.lookup_keys`), namesakes (a common name is many clients'
at a practice's size) are grouped and checked once, and the answers for (name, linked
clients) are kept, since a client's mail says the same display name many times over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet

from engine.clients.model import Client
from engine.clients.namematch import PLACEHOLDERS, index_keys, lists, lookup_keys

MEMO = 16_384
"""(name, linked clients) whose answer is kept (emptied when full)."""

Group = tuple[tuple[str, ...], tuple[tuple[int, str], ...]]
"""The names some clients go by, and those clients with their place under one index key."""


def own_names(clients: Mapping[str, Client], names: Mapping[str, str | None],
              aliases: Mapping[str, AbstractSet[str]], cids: AbstractSet[str]) -> set[str]:
    """Every name the clients ``cids`` go by: their records' (``names``: the folded record
    name of each) and the overrides' ``names:`` (``aliases``)."""
    out: set[str] = set()
    for cid in cids:
        out |= {*clients[cid].names, names.get(cid) or "", *aliases[cid]}
    return out - {""}


class NameIndex:
    """Every client's names by their words; :meth:`listed` answers who else a name lists."""

    def __init__(self, clients: Mapping[str, Client], names: Mapping[str, str | None],
                 by_name: Mapping[str, tuple[str, ...]],
                 own_names: Callable[[AbstractSet[str]], set[str]]) -> None:
        """``names``: each client's folded record name; ``by_name``: the clients by it;
        ``own_names``: every name some clients go by (records and ``names:`` overrides)."""
        self._clients, self._names, self._by_name, self._own_names = clients, names, by_name, own_names
        by_words: dict[tuple[str, ...], list[str]] = {}
        for cid, c in clients.items():
            for folded in {*c.names, names[cid] or ""} - {"", *PLACEHOLDERS}:
                for words in index_keys(folded):
                    by_words.setdefault(words, []).append(cid)
        self._by_words: dict[tuple[str, ...], tuple[Group, ...]] = {
            w: self._grouped(tuple(dict.fromkeys(c))) for w, c in by_words.items()}
        by_size: dict[int, list[tuple[str, ...]]] = {}
        for words in self._by_words:
            by_size.setdefault(len(words), []).append(words)
        self._by_size = by_size
        self._vocabulary = frozenset(w for words in self._by_words for w in words)
        self._memo: dict[tuple[str, frozenset[str]], str | None] = {}

    def _grouped(self, cids: tuple[str, ...]) -> tuple[Group, ...]:
        """``cids`` grouped by the names each goes by, in order, each with its place in ``cids``."""
        groups: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        for pos, cid in enumerate(cids):
            names = tuple(sorted({*self._clients[cid].names, self._names.get(cid) or ""} - {""}))
            groups.setdefault(names, []).append((pos, cid))
        return tuple((names, tuple(members)) for names, members in groups.items())

    def listed(self, name: str, linked: AbstractSet[str]) -> str | None:
        """The first client besides ``linked`` whom the folded ``name`` lists among its people
        (:func:`engine.clients.namematch.lists`), or None: ``Lily & Noah Park`` lists Noah
        Park as well as Lily. Their very name counts too (``Noah Park``), unless a linked
        client's record has it as well (two clients of one name). The first is all a
        decision needs."""
        named = self._by_name.get(name, ())
        if named and not any(c in linked for c in named):
            return named[0]
        key = (name, linked if isinstance(linked, frozenset) else frozenset(linked))
        if key in self._memo:
            return self._memo[key]
        if len(self._memo) >= MEMO:
            self._memo.clear()
        found = self._memo[key] = self._by_words_of(name, linked)
        return found

    def _by_words_of(self, name: str, linked: AbstractSet[str]) -> str | None:
        """:meth:`listed` past the very-name check: through the word index. Another client is
        listed by a word of the name that is none of the linked clients' (a name all of whose
        words are theirs lists no one else: the usual case); the answer is the first such
        client under the first key that has one, a linked one skipped."""
        mine = self._own_names(linked)
        checked: dict[str, bool] = {}

        def lists_person(person: str) -> bool:
            found = checked.get(person)
            if found is None:
                found = checked[person] = lists(name, person, mine)
            return found
        for words in lookup_keys(name, {w for n in mine for w in n.split()}, self._by_size, self._vocabulary):
            best: tuple[int, str] | None = None
            for persons, members in self._by_words.get(words, ()):
                first = next((m for m in members if m[1] not in linked), None)
                if first is not None and (best is None or first[0] < best[0]) and any(map(lists_person, persons)):
                    best = first
            if best is not None:
                return best[1]
        return None
