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
``ö`` written out (``Mueller`` and ``Müller``, folded ``muller``; in a name's first word only
from five letters, so ``Joey`` is not ``Joy``); two words of one name written
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
too (a merge) or the birth dates agree. A shared birth date excuses only the family name:
the given name, suffixes and relation words must still agree (twins share a birth date:
``Olivia Brown`` is not ``Emma Brown``). Those are reported for review, where a ``link:``
override settles them once.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def word_fits(a: str, b: str, given: bool = False) -> bool:
    """Whether two words can name the same part of a name: equal, an initial, an umlaut
    written out. For a ``given`` name (a name's first word) the umlaut only from five letters
    (``Juergen``, ``Joerg``): ``Joey`` is not ``Joy``."""
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return (not given or max(len(a), len(b)) >= 5) and _umlauts(a) == _umlauts(b)


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
    """Every word of ``some`` fits a word of ``other`` (a name's first word as a given name)."""
    return all(any(word_fits(w, o, i == 0 or j == 0) for j, o in enumerate(other)) for i, w in enumerate(some))


def fits(one: str, other: str) -> bool:
    """Whether two folded names can be one person (see the module's rule)."""
    a, b = words(one), words(other)
    if not a or not b:
        return True
    if "".join(a) == "".join(b):
        return True
    marks = SUFFIXES | RELATIONS
    if {w for w in a if w in marks} != {w for w in b if w in marks}:
        return False
    a, b = _joined(a, b), _joined(b, a)
    return _covered(a, b) or _covered(b, a)


TITLES = frozenset({"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "rev"})
"""Words before a given name that are no part of it."""


def same_given(one: str, other: str) -> bool:
    """Whether two folded names have the same given name (the first word that is no title:
    ``Family, Given`` is folded ``given family``; fitting as :func:`word_fits` says, or one
    the start of the other from three letters: ``Jon`` and ``Jonathan``) and the same suffixes
    and relation words:
    the test a birth date both share still needs, so that a twin (``Olivia Brown`` for
    ``Emma Brown``, one birth date) is not taken for her sister while a new family name after
    a marriage (``Maria Smith`` for ``Maria Garcia``) is."""
    a = [w for w in words(one) if w not in TITLES]
    b = [w for w in words(other) if w not in TITLES]
    if not a or not b:
        return True
    marks = SUFFIXES | RELATIONS
    if {w for w in a if w in marks} != {w for w in b if w in marks}:
        return False
    x, y = sorted((a[0], b[0]), key=len)
    return word_fits(x, y, given=True) or (len(x) >= 3 and y.startswith(x))  # Jon, Jonathan


PLACEHOLDERS = frozenset({"unknown", "n a", "na", "none", "null", "no name", "tbd", "tba"})
"""Folded names that name no one (what a form or a clerk writes for a missing name)."""


def could_be_renamed(name: str | None, names: Iterable[str]) -> bool:
    """:func:`could_be`, or another family name with the same given name (:func:`same_given`):
    what a document that shares the client's birth date may still be."""
    if could_be(name, names):
        return True
    assert name is not None
    return any(same_given(name, n) for n in names if n)


def could_be(name: str | None, names: Iterable[str]) -> bool:
    """Whether the folded ``name`` can be the person of any of ``names`` (True when either
    side has no name, or a placeholder such as ``N/A``: nothing contradicts)."""
    if not name or name in PLACEHOLDERS:
        return True
    known = [n for n in names if n]
    return not known or any(fits(name, n) for n in known)
