"""Whether a name written on a document can be a client's: the check behind "someone else".

Why a module of its own: keys (an e-mail, a phone) are shared inside a family, so a son's
billing record, a spouse's intake row or a sister's CRM contact can reach a client through
the client's keys alone. Their names tell them apart: "Tim Doe" cannot be "Ann Doe". The
decision pass (:mod:`engine.clients.decide`) asks :func:`could_be` before it links a
record that names a person by a key; a name that cannot be the client's leaves the record
unlinked as ``disagree`` (reported, never guessed).

The rule, on names folded by :func:`engine.clients.keys.name_text`: two names can be one
person when the words of one are all found in the other. Words match when equal, when one
is the other's initial (``A`` and ``Ann``), or when one begins the other (``Ben`` and
``Benjamin``). So a middle name, a title, a second family name or a suffix added on either
side still fits (``Ann M. Doe``, ``Dr Ann Doe``, ``Ann Doe-Smith``, ``Ann Doe (billing)``
against ``Ann Doe``), and a name written without spaces fits its spaced form. What does
not fit: another given name with the same family name (``Tim Doe``, ``Ben Doe (child)``),
a nickname that is not a beginning (``Bob`` for ``Robert``, ``Kathy`` for ``Katherine``),
and a new family name with the given name kept (``Maria Smith`` for ``Maria Garcia``)
unless the client's record holds that name too (a merge) or the birth dates agree. Those
are reported for review, where a ``link:`` override settles them once.
"""

from __future__ import annotations

from collections.abc import Iterable


def words(folded: str) -> list[str]:
    """The words of a folded name."""
    return folded.split()


def word_fits(a: str, b: str) -> bool:
    """Whether two words can name the same part of a name: equal, an initial, a beginning."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return long_.startswith(short)


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
    return _covered(a, b) or _covered(b, a)


def could_be(name: str | None, names: Iterable[str]) -> bool:
    """Whether the folded ``name`` can be the person of any of ``names`` (True when either
    side has no name: nothing contradicts)."""
    if not name:
        return True
    known = [n for n in names if n]
    return not known or any(fits(name, n) for n in known)
