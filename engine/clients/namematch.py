"""Whether a name written on a document can be a client's: the check behind "someone else".

Why a module of its own: keys (an e-mail, a phone) are shared inside a family, so a son's
billing record, a spouse's intake row or a sister's CRM contact can reach a client through
the client's keys alone. Their names tell them apart: "Tim Doe" cannot be "Ann Doe". The
decision pass (:mod:`engine.clients.decide`) asks :func:`could_be` before it links a
record, or a mail participant's display name, to the client its keys lead to; a name that
cannot be the client's leaves the document unlinked as ``disagree`` (reported, never
guessed).

The rule, on names folded by :func:`engine.clients.keys.name_text`: two names can be one
person when the words of one are all found in the other. Words match when equal, when one
is the other's initial (``A`` and ``Ann``), or when they differ only by a German ``ü`` or
``ö`` written out (``Mueller`` and ``Müller``, folded ``muller``; only in words of five letters
or more, so ``Joey`` is not ``Joy``); two words of one name written
as one in the other (``O'Neill`` folded ``o neill``, and ``ONeill``) are one word. So a middle
name, a title, a second family name or a note added on either side still fits (``Ann M.
Doe``, ``Dr Ann Doe``, ``Ann Doe-Smith``, ``Ann Doe (billing)`` against ``Ann Doe``), and a
name written without spaces fits its spaced form. A generational suffix (``Jr``, ``Sr``,
``Junior``, ``II``, ``III``, ``3rd``, ...) must be the same on both sides: a father and his son share every
other word, and so must a word of relation (``son``, ``mother``, ``guardian``: ``Ann Doe's son``
is not Ann Doe). What does not fit: another given name with the same family name (``Tim Doe``,
``Ben Doe (child)``), a short form or nickname (``Ben`` for ``Benjamin``, ``Bob`` for
``Robert``: ``Paul`` and ``Paula``, ``Daniel`` and ``Danielle``, ``Chris`` for Christopher
or Christine are different people as often as not), and a new family name with the given
name kept (``Maria Smith`` for ``Maria Garcia``) unless the client's record holds that name
too (a merge). A shared birth date excuses nothing: twins share one (``Olivia Brown`` and
``Emma Brown``, ``Paul`` and ``Paula``), and a name written family first without a comma
(``Brown Olivia``) gives no way to tell a new family name from a twin's given name. Those
are reported for review, where a ``link:`` override settles them once.

A name of one word fits only as the given name: the first word of the other name, and never
the client's family name (its record's family name field, :func:`could_be`'s ``families``):
``Park`` alone, like ``Mrs Park``, is anyone of the family; ``Lily`` still fits Lily Park.

A name may list several people (``Lily & Noah Park``, ``Noah Park, Lily Park``: folding drops
the ``&`` and turns the comma round, so the words are all that is left). Such a name fits each
of them, so fitting alone would link it to whichever the keys lead to; :func:`lists` says
whether it lists a given client beside the ones it is linked to (every word of that client's
name in it, one of them none of the linked client's), and the decision pass reports a name
that lists another client (``disagree``), as it reports that client's very name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from itertools import combinations
from math import comb

SUFFIXES = frozenset({"jr", "jnr", "sr", "snr", "junior", "senior", "ii", "iii", "iv", "2nd", "3rd", "4th"})
"""Generational suffixes: a name with one is not the same person as the name without."""
RELATIONS = frozenset({
    "son", "daughter", "child", "kid", "mother", "mom", "mum", "father", "dad", "parent", "guardian",
    "wife", "husband", "spouse", "partner", "brother", "sister", "sibling", "family", "household",
    "grandmother", "grandfather", "grandma", "grandpa", "grandparent", "aunt", "uncle", "niece", "nephew",
    "stepson", "stepdaughter", "stepmother", "stepfather", "caregiver", "carer",
    "sons", "daughters", "children", "kids", "parents", "brothers", "sisters", "siblings",
    "grandson", "granddaughter", "grandchild", "grandchildren", "grandkid", "grandkids", "grandparents",
    "stepchild", "stepchildren", "stepkid", "stepkids", "stepbrother", "stepsister", "stepparent",
    "baby", "infant", "twin", "twins", "cousin", "fiance", "fiancee", "boyfriend", "girlfriend",
    "dependent", "dependant", "dependents", "dependants", "relative", "nanny",
})
"""Words that name someone else by their relation to the person named (``Ann Doe's son``,
``Ann Doe (mother)``): a name with one is not the person without it."""


def words(folded: str) -> list[str]:
    """The words of a folded name."""
    return folded.split()


def _umlauts(word: str) -> str:
    """``ü`` and ``ö`` written out undone (``Mueller`` -> ``muller``). Not ``ae``: ``Michael``
    would be ``Michal``, another person's name."""
    return word.replace("ue", "u").replace("oe", "o") if len(word) > 3 else word


def word_fits(a: str, b: str) -> bool:
    """Whether two words can name the same part of a name: equal, an initial, an umlaut
    written out, only from five letters (``Juergen``, ``Joerg``, ``Mueller``): ``Joey`` is not
    ``Joy``, ``Joel`` not ``Jol``, in whichever position of the name they stand."""
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return max(len(a), len(b)) >= 5 and _umlauts(a) == _umlauts(b)


def _joined(some: list[str], other: list[str]) -> list[str]:
    """``some`` with two neighbouring words joined where ``other`` writes them as one."""
    out: list[str] = []
    i = 0
    while i < len(some):
        if i + 1 < len(some) and some[i] + some[i + 1] in other:
            out.append(some[i] + some[i + 1])
            i += 2
        else:
            out.append(some[i])
            i += 1
    return out


def _covered(some: list[str], other: list[str]) -> bool:
    """Every word of ``some`` fits a word of ``other``."""
    return all(any(word_fits(w, o) for o in other) for w in some)


def fits(one: str, other: str) -> bool:
    """Whether two folded names can be one person (see the module's rule)."""
    a, b = words(one), words(other)
    if not a or not b:
        return True
    if "".join(a) == "".join(b):
        return True
    marks = SUFFIXES | RELATIONS  # before the lone-word rule: "Tim" is not "Tim Doe Jr"
    if {w for w in a if w in marks} != {w for w in b if w in marks}:
        return False
    if len(a) == 1 and len(b) > 1:  # a lone word: the given name, not the family's
        return word_fits(a[0], b[0]) and a[0] not in b[1:]
    if len(b) == 1 and len(a) > 1:
        return word_fits(b[0], a[0]) and b[0] not in a[1:]
    a, b = _joined(a, b), _joined(b, a)
    return _covered(a, b) or _covered(b, a)


PLACEHOLDERS = frozenset({"unknown", "n a", "na", "none", "null", "no name", "tbd", "tba"})
"""Folded names that name no one (what a form or a clerk writes for a missing name)."""


def could_be(name: str | None, names: Iterable[str], families: Iterable[str] = ()) -> bool:
    """Whether the folded ``name`` can be the person of any of ``names`` (True when either
    side has no name, or a placeholder such as ``N/A``: nothing contradicts). ``families``:
    the client's folded family names (its record's family name field), which a lone word
    never fits, wherever the record writes it (``山田 太郎``, ``PARK Lily``)."""
    if not name or name in PLACEHOLDERS:
        return True
    known = [n for n in names if n]
    if not known:
        return True
    if " " not in name and name in families and name not in known:
        return False  # "Park" is anyone of the family
    return any(fits(name, n) for n in known)


def _same_word(a: str, b: str) -> bool:
    """Words that name the same part of a name for sure: equal, or an umlaut written out
    (:func:`word_fits`), or the first an initial of the second; never a word of the second
    taken for the initial it starts with (``Ann M Doe`` does not name ``Mark Doe``)."""
    if len(a) == 1:
        return b[0] == a
    return len(b) > 1 and word_fits(a, b)


def lists(name: str, person: str, besides: Iterable[str] = ()) -> bool:
    """Whether the folded ``name`` names ``person`` among the people it lists, beyond the
    names in ``besides`` (the client a document is linked to): every word of ``person`` is
    in ``name`` (:func:`_same_word`), and one of them is in none of ``besides``. So ``Lily &
    Noah Park`` (folded ``lily noah park``) and ``Noah Park, Lily Park`` (``lily park noah
    park``) list Noah Park beside Lily Park; ``Ann Marie Doe`` does not list ``Ann Doe``
    beside ``Ann Marie Doe``. A name that lists two clients is either's as much as the
    other's: never linked to one of them (reported as ``disagree``)."""
    mine = words(name)
    theirs = words(person)
    if not mine or not theirs or person in PLACEHOLDERS:
        return False
    mine, theirs = _joined(mine, theirs), _joined(theirs, mine)
    if not all(any(_same_word(w, m) for m in mine) for w in theirs):
        return False
    known = [w for other in besides if other for w in _joined(words(other), theirs)]
    return any(not any(w == k or _same_word(w, k) for k in known) for w in theirs)


def index_keys(folded: str) -> set[tuple[str, ...]]:
    """The sets of words (umlauts undone; sorted tuples, a third of a frozenset's memory)
    under which a name is found (:func:`lookup_keys`):
    its words, and its words with two neighbours written as one (``o neill`` also as
    ``oneill``), initials left out (``Ann M Doe`` under ``ann doe``: :func:`lists` checks
    the initial). So a client recorded as ``J Smith`` is found by ``smith`` only, and not
    when ``smith`` is a word of the linked client's name too."""
    ws = [_umlauts(w) for w in words(folded)]
    out = {tuple(sorted({w for w in ws if len(w) > 1}))}
    for i in range(len(ws) - 1):
        out.add(tuple(sorted({w for w in (*ws[:i], ws[i] + ws[i + 1], *ws[i + 2:]) if len(w) > 1})))
    return {k for k in out if k}


def lookup_keys(folded: str, known: AbstractSet[str], by_size: Mapping[int, Collection[tuple[str, ...]]],
                vocabulary: AbstractSet[str]) -> Iterator[tuple[str, ...]]:
    """The index keys (:func:`index_keys`, grouped by their number of words in ``by_size``)
    a name can list: those made of its words (and of its neighbours written as one) with a
    word not in ``known`` (the words of the names the document is linked to: a client
    :func:`lists` has a word beyond them). Each size costs the fewer of its combinations of
    the name's words and its keys (a long display name against short names, or the other way);
    ``vocabulary``: every word of the keys (a word no client's name has is in no key)."""
    ws = [_umlauts(w) for w in words(folded)]
    pool = sorted({w for w in (*ws, *(a + b for a, b in zip(ws, ws[1:], strict=False))) if w in vocabulary})
    fresh = {w for w in pool if w not in known}
    if not fresh:
        return
    have = set(pool)
    for size, keys in by_size.items():
        if size > len(pool):
            continue
        if comb(len(pool), size) <= len(keys):
            yield from (combo for combo in combinations(pool, size) if not fresh.isdisjoint(combo))
        else:
            yield from (k for k in keys if have.issuperset(k) and not fresh.isdisjoint(k))
