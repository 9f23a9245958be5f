"""The project task's largest phase keeps one small object per client where it kept several.

At 1,000,000 demo records the task peaked at 217 MiB (goal: 200) once each client carried
a set of names, an empty set of aliases, and each of its keys a set of holders of its own.
These tests hold the shapes that brought it back under the goal, through the real
:class:`engine.clients.resolve.Resolver`, and that the decisions are the same: a key two
clients share is still a conflict, a merged client still answers to both names.
"""

from __future__ import annotations

from engine.clients import keys as K
from engine.clients.model import Unlinked
from engine.clients.overrides import Overrides
from engine.clients.resolve import Resolver, _holders
from tests.engine.test_clients_core import CFG, cid, contact, mail, people, resolve


def test_the_keys_of_one_client_share_one_holder_set_and_a_shared_key_holds_both() -> None:
    p, _ = resolve(people())
    holders = _holders(p.clients.values())
    cy = [who for key, who in holders.items() if who == {cid("C")}]
    assert len(cy) >= 2 and all(who is cy[0] for who in cy)  # Cy's e-mail and phone: one object
    shared = holders[K.email_key("lee.family@example.org", ())]
    assert shared == {cid("A"), cid("B")} and len(p.conflicts) >= 1


def test_clients_without_aliases_share_the_empty_one_and_names_are_kept_once() -> None:
    p, _ = resolve(people())
    assert p.clients[cid("A")].aliases is p.clients[cid("C")].aliases == frozenset()
    twice = contact("dataverse", "mensio", "A2", "Ann Lee", emails=["ann.other@example.org"])
    other = contact("dataverse", "mensio", "R", "Rita Bloom", emails=["rita@example.org"])
    merged, out = resolve([*people(), twice, other], overrides=Overrides(
        merge=[[cid("A"), cid("A2"), cid("R")]], names={cid("A"): ["Ann Bloom"]}))
    ann = merged.clients[cid("A")]
    assert ann.names == ("ann lee", "rita bloom") and ann.aliases == frozenset({"ann bloom"})
    signed = mail("m1", "rita@example.org", ["ben@practice.example"])
    renamed = mail("m2", "ann.other@example.org", ["ben@practice.example"])
    _, out = resolve([*people(), twice, other, signed, renamed], overrides=Overrides(
        merge=[[cid("A"), cid("A2"), cid("R")]], names={cid("A"): ["Ann Bloom"]}))
    assert not isinstance(out[signed[0]], Unlinked) and {lk.client_id for lk in out[signed[0]]} == {cid("A")}
    assert not isinstance(out[renamed[0]], Unlinked)


def test_the_folded_name_memo_is_emptied_when_the_reading_ends() -> None:
    r = Resolver(CFG)
    for ref, doc in people():
        r.add(ref, None, None, doc)
    assert K._folded_name.cache_info().currsize > 0
    r.read_done()
    assert K._folded_name.cache_info().currsize == 0
    assert K.name_text("Lee, Ann") == "ann lee"  # and folds as before afterwards
