"""Copies of one questionnaire submission linked to different clients: whose is it?

The same response arrives twice (the Google Forms API and the form's linked sheet) and is
scored once (:mod:`engine.measures.step`). Copies are told apart by the respondent's e-mail,
not by the client each copy is linked to, so an override on one copy (``link:`` in the
overrides file) cannot make the other look like another submission and put one score in two
charts. When the copies of one measurement are linked to different clients, the overrides
decide; copies that still disagree are scored for no one (``COPIES_DISAGREE``), never for two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from engine.clients.model import Projection
from engine.measures.score import COPIES_DISAGREE
from engine.measures.spill import Disputed, Spill


def respondent(email: str, client: str | None, ref: str) -> str:
    """Who answered, as the duplicate check tells copies apart: the respondent's e-mail, which
    both copies of one submission carry whichever client each copy is linked to (an override
    on one copy must not make the other look like another submission). Without an e-mail,
    the copy's client, else the copy itself (nothing else says two anonymous copies are one
    submission)."""
    if email:
        return f"e:{email}"
    return f"c:{client}" if client else f"r:{ref}"


class Overridden:
    """Whether the overrides file decided a form response's client (``link:``, a client or
    no one). Built on first use from the decisions: only a disputed measurement asks."""

    def __init__(self, p: Projection, spill: Spill) -> None:
        self.p = p
        self.spill = spill
        self.refs: set[tuple[str, str, str]] | None = None

    def __call__(self, ref: str) -> bool:
        if self.refs is None:
            if self.p.streamed is not None:
                self.refs = self.spill.overridden()
            else:
                docs = [link.doc for link in self.p.links if link.rule == "override"]
                docs += [u.doc for u in self.p.unlinked if u.reason == "override"]
                self.refs = {(d.source, d.account, d.entity_id) for d in docs if d.kind == "form_response"}
        source, account, entity = (ref.split("/", 2) + ["", ""])[:3]
        return (source, account, entity) in self.refs


def settle(d: Disputed, overridden: Callable[[str], bool]) -> tuple[bool, str | None]:
    """Who a disputed measurement belongs to (:func:`owner` of its copies)."""
    return owner([(c.client, c.response) for c in d.copies], overridden)


def owner(copies: Iterable[tuple[str | None, str]], overridden: Callable[[str], bool]) -> tuple[bool, str | None]:
    """Whose the copies (client, response) of one submission are: (True, client) when the
    copies an override decided all name one client (None: no one), or, with no override
    among them, when the copies agree after all; (False, None) when they disagree (a
    measurement is then scored for no one, a not-scored row is in no chart)."""
    pairs = list(copies)
    decided = {client or None for client, response in pairs if overridden(response)}
    chosen = decided or {client or None for client, _ in pairs}
    if len(chosen) == 1:
        return True, chosen.pop()
    return False, None


def same_account(ref: str, other: str) -> bool:
    """Whether two responses (``source/account/entity``) come from one account: a submission
    has at most one copy in an account (the Forms API's, or its linked sheet's row), so two
    responses of one account alike to the second (a family sharing an address, all answers 0)
    are two people's, never copies of one."""
    return ref.split("/", 2)[:2] == other.split("/", 2)[:2]


def settle_all(spill: Spill, overridden: Callable[[str], bool]) -> int:
    """Settle every disputed measurement of the spill; the copies left scored for no one."""
    unscored = 0
    for d in spill.disputes():
        agreed, client = settle(d, overridden)
        if not agreed:
            spill.unscore(d, COPIES_DISAGREE)
            unscored += len(d.copies)
        elif client != (d.copies[0].client or None):
            spill.reassign(d, client)
    return unscored
