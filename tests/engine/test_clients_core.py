"""Identity resolution core (engine/clients): keys, rules, conflicts, overrides, stable ids.

Pure functions and in-memory resolution over hand-written canonical documents: every trap
of the issue (shared family address, same name with different birth dates, Gmail dot and
plus variants, phones in several formats, staff-only mail, a customer with no contact).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.clients import keys as K
from engine.clients.model import DocRef, Link, Unlinked, client_id_for
from engine.clients.overrides import Overrides, OverridesError, check_pins, load_overrides
from engine.clients.resolve import Resolver
from engine.config import ClientsConfig

# -- keys ----------------------------------------------------------------------------------


def test_email_keys_fold_case_and_only_gmail_dots_and_tags() -> None:
    assert K.email_key(" Jane.Doe@Example.ORG ") == "email:jane.doe@example.org"
    assert K.email_key("janedoe@example.org") != K.email_key("jane.doe@example.org")
    assert K.email_key("jane+x@example.org") == "email:jane+x@example.org"
    assert K.email_key("J.a.n.e.Doe+therapy@gmail.com") == "email:janedoe@gmail.com"
    assert K.email_key("janedoe@googlemail.com") == "email:janedoe@gmail.com"
    assert K.email_key("<mailto:JaneDoe@Gmail.com>") == "email:janedoe@gmail.com"
    assert K.email_key("x.y@corp.example", ["corp.example"]) == "email:xy@corp.example"
    for bad in (None, "", "not an address", "a@b", "@example.org", 42, "+@gmail.com"):
        assert K.email_key(bad) is None


def test_phones_in_any_format_give_one_e164_key() -> None:
    forms = ["(212) 555-0123", "212-555-0123", "+1 212 555 0123", "212.555.0123", "2125550123"]
    assert {K.phone_key(f, "US") for f in forms} == {"phone:+12125550123"}
    assert K.phone_key("020 7946 0958", "GB") == "phone:+442079460958"
    assert K.phone_key("+44 20 7946 0958", "US") == "phone:+442079460958"
    for bad in ("555-0123", "", "call me", None, "12"):
        assert K.phone_key(bad, "US") is None


def test_names_fold_order_accents_and_case_and_need_a_birth_date() -> None:
    assert K.name_text("Doe, Jane") == K.name_text("  jane   DOE ") == "jane doe"
    assert K.name_text("Zoë O'Donnell") == "zoe o donnell"
    assert K.name_dob_key("Jane Doe", "1980-02-03") == "name_dob:jane doe|1980-02-03"
    assert K.name_dob_key("Jane Doe", None) is None
    assert K.name_dob_key("Jane Doe", "03/02/1980") is None
    assert K.name_dob_key(None, "1980-02-03") is None


def test_own_address_globs() -> None:
    assert K.is_own("ben@mensio.example", ["*@mensio.example"])
    assert K.is_own("owner@gmail.example", ["*@mensio.example", "OWNER@gmail.example"])
    assert not K.is_own("client@example.org", ["*@mensio.example"])


# -- resolution over hand-written documents -----------------------------------------------


def contact(source: str, account: str, sid: str, name: str | None, *, emails: list[str] = (),  # type: ignore[assignment]
            phones: list[str] = (), dob: str | None = None, given: str | None = None,  # type: ignore[assignment]
            family: str | None = None, **extra: Any) -> tuple[DocRef, dict[str, Any]]:
    comps = ([{"kind": "given", "value": given}] if given else []) + (
        [{"kind": "surname", "value": family}] if family else [])
    doc = {"kind": "contact", "source": source, "account": account, "source_id": sid,
           "name": {"full": name, "components": comps} if name else None,
           "emails": {f"e{i}": {"address": e} for i, e in enumerate(emails)} or None,
           "phones": {f"p{i}": {"number": p} for i, p in enumerate(phones)} or None,
           "birth_date": dob, **extra}
    return DocRef(source, account, "contact", sid), doc


def mail(sid: str, frm: str, to: list[str], cc: list[str] = (), account: str = "box") -> tuple[DocRef, dict[str, Any]]:  # type: ignore[assignment]
    doc = {"kind": "email", "source": "gmail", "account": account, "source_id": sid,
           "from": [{"email": frm}], "to": [{"email": t} for t in to],
           "cc": [{"email": c} for c in cc] or None, "subject": "s"}
    return DocRef("gmail", account, "email", sid), doc


def ref_doc(kind: str, source: str, account: str, sid: str, field: str,
            target: str | None) -> tuple[DocRef, dict[str, Any]]:
    doc = {"kind": kind, "source": source, "account": account, "source_id": sid,
           field: {"type": "x", "id": target, "display": "Some Name"}}
    return DocRef(source, account, kind, sid), doc


CFG = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example"])


def resolve(docs: list[tuple[DocRef, dict[str, Any]]], cfg: ClientsConfig = CFG,
            overrides: Overrides | None = None) -> tuple[Any, dict[DocRef, list[Link] | Unlinked]]:
    r = Resolver(cfg, overrides)
    for ref, doc in docs:
        r.add(ref, None, None, doc)
    p = r.resolve()
    out: dict[DocRef, list[Link] | Unlinked] = {}
    for link in p.links:
        out.setdefault(link.doc, []).append(link)  # type: ignore[union-attr]
    for u in p.unlinked:
        out[u.doc] = u
    assert set(out) == set(p.docs), "every document is decided exactly once"
    return p, out


def cid(sid: str, account: str = "mensio") -> str:
    return client_id_for("dataverse", account, sid)


def clients_of(decision: list[Link] | Unlinked) -> set[str]:
    return set() if isinstance(decision, Unlinked) else {link.client_id for link in decision}


def people() -> list[tuple[DocRef, dict[str, Any]]]:
    return [
        contact("dataverse", "mensio", "A", "Ann Lee", given="Ann", family="Lee",
                emails=["Lee.Family@example.org"], phones=["(212) 555-0101"], dob="1980-01-01"),
        contact("dataverse", "mensio", "B", "Ben Lee", given="Ben", family="Lee",
                emails=["lee.family@example.org"], phones=["212-555-0102"], dob="2010-05-05"),
        contact("dataverse", "mensio", "C", "Cy Park", emails=["cy.park@gmail.com"],
                phones=["+1 212 555 0103"], dob="1990-03-03"),
        contact("dataverse", "mensio", "D1", "Dee Moss", dob="1970-07-07"),
        contact("dataverse", "mensio", "D2", "Dee Moss", dob="1985-08-08"),
        contact("dataverse", "mensio", "E", "Eve Ray", emails=["frontdesk@practice.example"],
                phones=["212.555.0105"]),
    ]


def test_clients_come_from_the_sources_with_stable_ids_and_no_own_addresses() -> None:
    p, _ = resolve(people())
    assert set(p.clients) == {cid(s) for s in ("A", "B", "C", "D1", "D2", "E")}
    assert cid("A") == client_id_for("dataverse", "mensio", "A")
    assert len(cid("A")) == 16 and cid("A") != cid("A", "other")
    assert p.clients[cid("E")].keys == {"phone:+12125550105"}  # the practice's address is no key
    assert p.clients[cid("A")].card.sort_name == "Lee, Ann"
    assert p.clients[cid("C")].card.sort_name == "Cy Park"


def test_shared_family_address_is_a_conflict_that_links_no_one() -> None:
    p, out = resolve(people() + [mail("m1", "lee.family@example.org", ["ben@practice.example"])])
    m1 = out[DocRef("gmail", "box", "email", "m1")]
    assert isinstance(m1, Unlinked) and m1.reason == "conflict"
    (conflict,) = p.conflicts
    assert conflict.key == "email:lee.family@example.org"
    assert set(conflict.clients) == {cid("A"), cid("B")} and conflict.documents == 1
    assert p.counts()["conflicts"] == 1


def test_a_unique_key_beside_a_shared_one_links_when_consistent() -> None:
    row = contact("sheets", "intake", "r1", "Ben Lee", emails=["lee.family@example.org"],
                  phones=["2125550102"])
    bad = contact("sheets", "intake", "r2", "?", emails=["lee.family@example.org"],
                  phones=["2125550103"])  # Cy's phone with the Lee address: disagree
    _, out = resolve(people() + [row, bad])
    (link,) = out[row[0]]  # type: ignore[misc]
    assert link.client_id == cid("B") and link.rule == "phone" and link.via == "phone:+12125550102"
    assert isinstance(out[bad[0]], Unlinked) and out[bad[0]].reason == "disagree"  # type: ignore[union-attr]


def test_gmail_variants_link_with_direction() -> None:
    inbound = mail("in", "C.Y.Park+therapy@googlemail.com", ["ben@practice.example"])
    outbound = mail("out", "ben@practice.example", ["cypark@gmail.com"])
    staff = mail("staff", "ben@practice.example", ["frontdesk@practice.example"])
    stranger = mail("x", "someone@example.net", ["ben@practice.example"])
    _, out = resolve(people() + [inbound, outbound, staff, stranger])
    (a,) = out[inbound[0]]  # type: ignore[misc]
    (b,) = out[outbound[0]]  # type: ignore[misc]
    assert (a.client_id, a.rule, a.direction) == (cid("C"), "email", "in")
    assert (b.client_id, b.rule, b.direction) == (cid("C"), "email", "out")
    assert out[staff[0]].reason == "internal"  # type: ignore[union-attr]
    assert out[stranger[0]].reason == "no_match"  # type: ignore[union-attr]


def test_mail_to_two_clients_links_both_and_dots_matter_outside_gmail() -> None:
    both = mail("2", "ben@practice.example", ["cy.park@gmail.com", "lee.family@example.org",
                                             "ann.lee@example.org"])
    dots = mail("d", "leefamily@example.org", ["ben@practice.example"])
    _, out = resolve(people() + [both, dots])
    assert clients_of(out[both[0]]) == {cid("C")}  # the family address links neither Lee
    assert out[dots[0]].reason == "no_match"  # type: ignore[union-attr]


def test_name_and_birth_date_links_only_a_unique_pair_and_a_name_never_alone() -> None:
    d2 = contact("sheets", "intake", "r3", "Moss, Dee", dob="1985-08-08")
    name_only = contact("sheets", "intake", "r4", "Dee Moss")
    wrong_dob = contact("sheets", "intake", "r5", "Dee Moss", dob="1999-09-09")
    _, out = resolve(people() + [d2, name_only, wrong_dob])
    (link,) = out[d2[0]]  # type: ignore[misc]
    assert (link.client_id, link.rule) == (cid("D2"), "name_dob")
    assert out[name_only[0]].reason == "no_key"  # type: ignore[union-attr]
    assert out[wrong_dob[0]].reason == "no_match"  # type: ignore[union-attr]


def test_same_name_and_birth_date_for_two_clients_is_a_conflict() -> None:
    twins = people() + [contact("dataverse", "mensio", "D3", "Dee Moss", dob="1985-08-08")]
    row = contact("sheets", "intake", "r6", "Dee Moss", dob="1985-08-08")
    p, out = resolve(twins + [row])
    assert out[row[0]].reason == "conflict"  # type: ignore[union-attr]
    (c,) = [c for c in p.conflicts if c.key == "name_dob:dee moss|1985-08-08"]
    assert c.documents == 1 and c.clients == tuple(sorted((cid("D2"), cid("D3"))))


def test_merges_chain_through_earlier_groups() -> None:
    docs = people() + [contact("dataverse", "mensio", "C2", "Cy Park", emails=["cy.park@gmail.com"]),
                       contact("dataverse", "mensio", "C3", "Cy Park", phones=["2125550103"])]
    ov = Overrides(merge=[[cid("C"), cid("C2")], [cid("C2"), cid("C3")]])
    p, _ = resolve(docs, overrides=ov)
    assert p.clients[cid("C")].merged == [cid("C2"), cid("C3")] and p.unused_overrides == 0
    assert not [c for c in p.conflicts if cid("C") in c.clients]
    # the keeper of an earlier group merged into a later group's keeper: every id it had goes along
    ov = Overrides(merge=[[cid("C2"), cid("C3")], [cid("C"), cid("C2")]])
    p, _ = resolve(docs, overrides=ov)
    assert set(p.clients) >= {cid("C")} and p.clients[cid("C")].merged == [cid("C2"), cid("C3")]


def test_references_follow_the_contact_they_point_at() -> None:
    qbo_known = contact("quickbooks", "co", "7", "Cy Park", phones=["212 555 0103"])
    qbo_stranger = contact("quickbooks", "co", "8", "Acme EAP", emails=["billing@acme.example"])
    session = ref_doc("clinical_session", "dataverse", "mensio", "s1", "subject", "A")
    invoice = ref_doc("invoice", "quickbooks", "co", "i1", "customer", "7")
    orphan = ref_doc("invoice", "quickbooks", "co", "i2", "customer", "8")
    missing = ref_doc("payment", "quickbooks", "co", "p1", "customer", "99")
    by_name = ref_doc("clinical_session", "sheets", "intake", "s2", "subject", None)
    _, out = resolve(people() + [qbo_known, qbo_stranger, session, invoice, orphan, missing, by_name])
    assert [(lk.client_id, lk.rule) for lk in out[session[0]]] == [(cid("A"), "source_ref")]  # type: ignore[union-attr]
    assert [(lk.client_id, lk.rule) for lk in out[qbo_known[0]]] == [(cid("C"), "phone")]  # type: ignore[union-attr]
    assert [(lk.client_id, lk.rule) for lk in out[invoice[0]]] == [(cid("C"), "source_ref")]  # type: ignore[union-attr]
    assert out[qbo_stranger[0]].reason == "no_match"  # type: ignore[union-attr]
    assert out[orphan[0]].reason == "ref_unlinked"  # type: ignore[union-attr]
    assert out[missing[0]].reason == "ref_missing"  # type: ignore[union-attr]
    assert out[by_name[0]].reason == "no_key"  # type: ignore[union-attr]


def test_a_reference_is_the_id_as_written_never_trimmed() -> None:
    """A session naming contact `" 42"` (Henry) went to Gina's `"42"`: references were
    trimmed, the index's ids are not. `"A "` names no document: `ref_missing`, not A."""
    gina = contact("dataverse", "mensio", "42", "Gina Num", emails=["gina@example.org"], dob="1980-01-01")
    henry = contact("dataverse", "mensio", " 42", "Henry Space", emails=["henry@example.org"], dob="1981-01-01")
    his = ref_doc("clinical_session", "dataverse", "mensio", "s-henry", "subject", " 42")
    hers = ref_doc("clinical_session", "dataverse", "mensio", "s-gina", "subject", "42")
    padded = ref_doc("clinical_session", "dataverse", "mensio", "s-ws", "subject", "A ")
    _, out = resolve(people() + [gina, henry, his, hers, padded])
    assert clients_of(out[his[0]]) == {cid(" 42")} != {cid("42")}
    assert clients_of(out[hers[0]]) == {cid("42")}
    assert out[padded[0]].reason == "ref_missing"  # type: ignore[union-attr]


def test_unknown_kinds_wait_for_a_rule() -> None:
    ref = DocRef("forms", "a", "measurement", "1")
    _, out = resolve(people() + [(ref, {"kind": "measurement", "email": "cy.park@gmail.com"})])
    assert out[ref].reason == "no_rule"  # type: ignore[union-attr]


def test_where_picks_the_defining_contacts() -> None:
    docs = people() + [contact("dataverse", "other", "A", "Ann Lee", emails=["ann@example.org"],
                               active=False)]
    p, out = resolve(docs, ClientsConfig(sources=["dataverse"], where={"account": "mensio"}))
    assert cid("A", "other") not in p.clients and cid("A") in p.clients
    p2, _ = resolve(docs, ClientsConfig(sources=["dataverse"], where={"active": [False]}))
    assert set(p2.clients) == {cid("A", "other")}


def test_overrides_merge_apart_link_and_ignore() -> None:
    extra = [contact("dataverse", "mensio", "C2", "Cy Park", emails=["cypark@gmail.com"]),
             mail("m", "cy.park@gmail.com", ["ben@practice.example"]),
             mail("fam", "lee.family@example.org", ["ben@practice.example"]),
             mail("noise", "ben@practice.example", ["212@fax.example"])]
    p0, out0 = resolve(people() + extra)
    assert out0[DocRef("gmail", "box", "email", "m")].reason == "conflict"  # type: ignore[union-attr]
    ov = Overrides(merge=[[cid("C"), cid("C2")]], apart=[[cid("A"), cid("B")]],
                   link=[{"document": "gmail:box:email:fam", "client": cid("A")},  # type: ignore[list-item]
                         {"document": "gmail:box:email:nope", "client": cid("A")}],
                   ignore=["*@fax.example"])
    p, out = resolve(people() + extra, overrides=ov)
    assert cid("C2") not in p.clients and p.clients[cid("C")].merged == [cid("C2")]
    assert [(lk.client_id, lk.rule) for lk in out[DocRef("gmail", "box", "email", "m")]] == [(cid("C"), "email")]  # type: ignore[union-attr]
    assert [(lk.client_id, lk.rule) for lk in out[DocRef("dataverse", "mensio", "contact", "C2")]] == [(cid("C"), "override")]  # type: ignore[union-attr]
    assert [(lk.client_id, lk.rule) for lk in out[DocRef("gmail", "box", "email", "fam")]] == [(cid("A"), "override")]  # type: ignore[union-attr]
    assert out[DocRef("gmail", "box", "email", "noise")].reason == "no_key"  # type: ignore[union-attr]
    assert all(c.reviewed for c in p.conflicts) and p.counts()["conflicts"] == 0
    assert p.unused_overrides == 1
    nobody = Overrides(link=[{"document": "gmail:box:email:m", "client": None}])  # type: ignore[list-item]
    _, out2 = resolve(people() + extra[:2], overrides=nobody)
    assert out2[DocRef("gmail", "box", "email", "m")].reason == "override"  # type: ignore[union-attr]


def resolve_pinned(docs: list[tuple[DocRef, dict[str, Any]]], overrides: Overrides,
                   pins: dict[tuple[str, str], str]) -> tuple[Any, dict[DocRef, list[Link] | Unlinked]]:
    r = Resolver(CFG, overrides, pins)
    for ref, doc in docs:
        r.add(ref, None, None, doc)
    p = r.resolve()
    out: dict[DocRef, list[Link] | Unlinked] = {lk.doc: [] for lk in p.links}
    for lk in p.links:
        out[lk.doc].append(lk)  # type: ignore[union-attr]
    out.update({u.doc: u for u in p.unlinked})
    return p, out


def test_a_link_holds_for_the_document_it_was_first_applied_to() -> None:
    """A sheet row's id is its row number: after a row above it is deleted, the link that
    named row 3 for Ben names Cy's row. Its keys are not those the link was first applied to:
    the link no longer holds, and Cy's row goes by the rules, to Cy. A change that keeps the
    keys (a transform edit, a new field) keeps the link."""
    benny = contact("sheets", "intake", "1Sx/0/3", "Benny K", emails=["benny.k@work.example"])
    cy = contact("sheets", "intake", "1Sx/0/3", "Cy Park", emails=["cy.park@gmail.com"], dob="1990-03-03")
    ov = Overrides(link=[{"document": "sheets:intake:contact:1Sx/0/3", "client": cid("B")}])  # type: ignore[list-item]
    key = ("sheets:intake:contact:1Sx/0/3", cid("B"))
    p, out = resolve_pinned(people() + [benny], ov, {})
    assert [(lk.client_id, lk.rule) for lk in out[benny[0]]] == [(cid("B"), "override")]  # type: ignore[union-attr]
    pins = p.override_pins
    assert {k for k in pins if not k[0].startswith("client:")} == {key} and p.stale_overrides == 0
    assert (f"client:{cid('B')}", "") in pins, "and the client it names, to its record's person"
    edited = (benny[0], {**benny[1], "notes": "a field the transform now adds"})
    p, out = resolve_pinned(people() + [edited], ov, pins)
    assert clients_of(out[benny[0]]) == {cid("B")} and p.stale_overrides == 0 and p.override_pins == pins
    p, out = resolve_pinned(people() + [cy], ov, pins)  # another person's row at that number now
    assert clients_of(out[cy[0]]) == {cid("C")} and p.stale_overrides == 1
    assert p.override_pins == pins, "it stays stale until the link is written anew or pinned"
    pinned = Overrides(link=[{"document": "sheets:intake:contact:1Sx/0/3", "client": cid("B"), "sha256": "ab" * 32}])  # type: ignore[list-item]
    p, out = resolve_pinned(people() + [cy], pinned, pins)  # the operator confirmed this content
    assert clients_of(out[cy[0]]) == {cid("B")} and p.stale_overrides == 0


def _with_response(ov: Overrides, pins: dict[tuple[str, str], str], time: str | None,
                   email: str | None) -> tuple[Any, list[Link] | Unlinked | None]:
    """People plus (when ``email``) one form response in sheet row 2 at ``time``."""
    r = Resolver(CFG, ov, pins)
    for dref, doc in people():
        r.add(dref, None, None, doc)
    ref = DocRef("sheets", "phq", "form_response", "1Sx/0/2")
    if email is not None:
        r.add(ref, time, None, {"kind": "form_response", "source": "sheets", "account": "phq",
                                "source_id": "1Sx/0/2", "respondent": {"email": email}})
    p = r.resolve()
    mine = [lk for lk in p.links if lk.doc == ref] or [u for u in p.unlinked if u.doc == ref]
    return p, (mine if mine and isinstance(mine[0], Link) else (mine[0] if mine else None))  # type: ignore[return-value]


def test_a_link_on_a_family_members_response_does_not_pass_to_the_other() -> None:
    """Ben's and Ann's questionnaires come from the family address (a conflict: exactly the
    documents that need a `link:`). Ben's row deleted, Ann's response takes its number: the
    same keys, another submission time. The link must not put Ann's PHQ-9 in Ben's chart."""
    ov = Overrides(link=[{"document": "sheets:phq:form_response:1Sx/0/2", "client": cid("B")}])  # type: ignore[list-item]
    p, got = _with_response(ov, {}, "2024-03-01T10:00:00Z", "lee.family@example.org")
    assert clients_of(got) == {cid("B")}  # type: ignore[arg-type]
    pins = p.override_pins
    p, got = _with_response(ov, pins, "2024-03-01T10:00:00Z", "lee.family@example.org")
    assert clients_of(got) == {cid("B")} and p.stale_overrides == 0  # type: ignore[arg-type]
    p, got = _with_response(ov, pins, "2024-04-09T16:30:00Z", "lee.family@example.org")  # Ann's
    assert clients_of(got) == set() and p.stale_overrides == 1, "the family address links no one"  # type: ignore[arg-type]


def test_a_links_pin_outlives_a_run_without_its_document() -> None:
    """Row 2 deleted for one run (the pin was dropped), then Cy's new response lands in it:
    taken for a new decision, Cy's PHQ-9 went to Ben's chart."""
    ov = Overrides(link=[{"document": "sheets:phq:form_response:1Sx/0/2", "client": cid("B")}])  # type: ignore[list-item]
    p, _ = _with_response(ov, {}, "2024-03-01T10:00:00Z", "lee.family@example.org")
    pins = p.override_pins
    p, got = _with_response(ov, pins, None, None)  # the row is gone this run
    assert got is None and p.override_pins == pins and p.unused_overrides == 1
    p, got = _with_response(ov, p.override_pins, "2024-05-02T09:00:00Z", "cy.park@gmail.com")
    assert clients_of(got) == {cid("C")} and p.stale_overrides == 1  # type: ignore[arg-type]


def test_a_pin_outlives_a_run_without_its_entry_too() -> None:
    """The overrides file moved away for one run, then restored from a backup after Cy's
    response took row 2: the restored link was taken for a new decision and put Cy's PHQ-9 in
    Ben's chart. Every stored pin is stored again, named by the file or not."""
    ov = Overrides(link=[{"document": "sheets:phq:form_response:1Sx/0/2", "client": cid("B")}])  # type: ignore[list-item]
    p, _ = _with_response(ov, {}, "2024-03-01T10:00:00Z", "lee.family@example.org")
    pins = p.override_pins
    assert (f"client:{cid('B')}", "") in pins
    p, got = _with_response(Overrides(), pins, "2024-03-01T10:00:00Z", "lee.family@example.org")
    assert p.override_pins == pins, "no entry names them this run: kept all the same"
    p, got = _with_response(ov, p.override_pins, "2024-05-02T09:00:00Z", "cy.park@gmail.com")
    assert clients_of(got) == {cid("C")} and p.stale_overrides == 1  # type: ignore[arg-type]


def test_a_pin_stored_before_the_time_counted_is_read_the_old_way_once() -> None:
    from engine.clients.decide import identity, identity_v1
    from engine.clients.model import DocFacts

    ov = Overrides(link=[{"document": "sheets:phq:form_response:1Sx/0/2", "client": cid("B")}])  # type: ignore[list-item]
    facts = DocFacts(DocRef("sheets", "phq", "form_response", "1Sx/0/2"), "2024-03-01T10:00:00Z", None,
                     keys=("email:lee.family@example.org",))
    key = ("sheets:phq:form_response:1Sx/0/2", cid("B"))
    old = {key: identity_v1(facts)}
    p, got = _with_response(ov, old, "2024-03-01T10:00:00Z", "lee.family@example.org")
    assert clients_of(got) == {cid("B")} and p.stale_overrides == 0  # type: ignore[arg-type]
    assert p.override_pins[key] == identity(facts) != old[key], "stored anew, with the time"


def test_an_override_naming_a_client_whose_record_is_another_person_now_is_not_applied() -> None:
    """Client ids come from the record's id, and a sheet row's id is its number: after a row
    above them was deleted, `merge` joined Cy's record to Bob's client (Cy's mail then went to
    Bob) and a `link:` to row 5's client put a referral in Dee's chart."""
    def rows(*people_: tuple[str, str, str, str]) -> list[tuple[DocRef, dict[str, Any]]]:
        return [contact("dataverse", "mensio", sid, name, emails=[mail], dob=dob) for sid, name, mail, dob in people_]

    bob3 = ("R3", "Bob Roe", "bob@roe.example", "1975-01-01")
    bob4 = ("R4", "Bob Roe", "bob.work@corp.example", "1975-01-01")
    cy5 = ("R5", "Cy Poe", "cy@poe.example", "1990-09-09")
    referral = mail("m2", "fax@clinic.example", ["intake@practice.example"], account="fax")
    ov = Overrides(merge=[[cid("R3"), cid("R4")]],  # type: ignore[arg-type]
                   link=[{"document": "gmail:fax:email:m2", "client": cid("R5")}])  # type: ignore[list-item]
    p, out = resolve_pinned(rows(bob3, bob4, cy5) + [referral], ov, {})
    assert set(p.clients) == {cid("R3"), cid("R5")} and clients_of(out[referral[0]]) == {cid("R5")}
    pins = p.override_pins
    assert {k for k, _ in pins} >= {f"client:{cid('R3')}", f"client:{cid('R4')}", f"client:{cid('R5')}"}
    # a row above was deleted: every row moved up one number
    cy3 = ("R3", "Cy Poe", "cy@poe.example", "1990-09-09")
    dee5 = ("R5", "Dee Qoe", "dee@qoe.example", "1966-06-06")
    p, out = resolve_pinned(rows(cy3, bob4, dee5) + [referral], ov, pins)
    assert set(p.clients) == {cid("R3"), cid("R4"), cid("R5")}, "Cy is not merged into Bob"
    assert p.clients[cid("R3")].card.name == "Cy Poe" and not p.clients[cid("R4")].merged
    assert clients_of(out[referral[0]]) == set(), "the referral is not forced into Dee's chart"
    assert p.stale_overrides == 2 and p.override_pins[(f"client:{cid('R3')}", "")] == pins[(f"client:{cid('R3')}", "")]
    # an e-mail changed in the record is the same person: the overrides still apply
    p, out = resolve_pinned(rows(bob3, bob4, ("R5", "Cy Poe", "cy.new@poe.example", "1990-09-09")) + [referral], ov, pins)
    assert set(p.clients) == {cid("R3"), cid("R5")} and clients_of(out[referral[0]]) == {cid("R5")}
    assert p.stale_overrides == 0


def test_a_pinned_link_holds_for_its_content_only() -> None:
    row = contact("sheets", "intake", "1Sx/0/3", "Cy Park", emails=["cy.park@gmail.com"], dob="1990-03-03")
    pin = "ab" * 32
    ov = Overrides(link=[{"document": "sheets:intake:contact:1Sx/0/3", "client": cid("B"), "sha256": pin}])  # type: ignore[list-item]
    same, stale = check_pins(ov, lambda ref: pin)
    assert stale == [] and same is ov
    _, out = resolve(people() + [row], overrides=same)
    assert [(lk.client_id, lk.rule) for lk in out[row[0]]] == [(cid("B"), "override")]  # type: ignore[union-attr]
    moved, stale = check_pins(ov, lambda ref: "cd" * 32)  # the row's content changed
    assert stale == [("sheets:intake:contact:1Sx/0/3", cid("B"))] and moved.link == []
    _, out = resolve(people() + [row], overrides=moved)
    assert clients_of(out[row[0]]) == {cid("C")}
    unindexed, stale = check_pins(ov, lambda ref: None)  # left for the resolver to count unused
    assert stale == [] and len(unindexed.link) == 1
    with pytest.raises(ValueError, match="64 lower-case hex"):
        Overrides(link=[{"document": "a:b:c:d", "client": None, "sha256": "XYZ"}])  # type: ignore[list-item]


def test_overrides_file_errors_name_the_file(tmp_path: Any) -> None:
    assert load_overrides(tmp_path / "missing.yaml")[0] == Overrides()
    bad = tmp_path / "o.yaml"
    bad.write_text("merge: [[onlyone]]\n")
    with pytest.raises(OverridesError, match="o.yaml: merge"):
        load_overrides(bad)
    bad.write_text("link: [{document: nocolons, client: x}]\n")
    with pytest.raises(OverridesError, match="source:account:kind:source_id"):
        load_overrides(bad)
    bad.write_text("surprise: 1\n")  # a key of the file is never echoed: it may be a name or an address
    with pytest.raises(OverridesError, match="<a key of the file>: is not a known key \\(known keys here: version, "):
        load_overrides(bad)
    bad.write_text("links: []\n")  # a typo of a format key is named, with the key meant
    with pytest.raises(OverridesError, match=r"links \(did you mean link\?\): is not a known key"):
        load_overrides(bad)
    for text in ('names: {"Jane Qzxc Brown": "Emily Stone"}\n', 'names: {"Jane Qzxc Brown": ["Emily"]}\n',
                 'link: [{document: "a:b:c:d", client: null, jane.qzxc@example.org: 1}]\n',
                 "jane.qzxc@example.org: ignore\n", "names: {2125550177: [Qzxc]}\n",
                 'names:\n  "Qzxc Name": [a]\n  "Qzxc Name": [b]\n', '"Qzxc Jane": 1\n"Qzxc Jane": 2\n',
                 'link:\n  - {"qzxc@x.org": 1, "qzxc@x.org": 2}\n'):
        bad.write_text(text)
        with pytest.raises(OverridesError) as info:
            load_overrides(bad)
        said = str(info.value)
        assert "qzxc" not in said.lower() and "2125550177" not in said and "o.yaml:" in said, said
    bad.write_text("merge: [[1234567890123456, abcdef0123456789]]\nnames: {1234567890123456: [Ann]}\n")
    read = load_overrides(bad)[0]  # an id of 16 digits reads as a YAML number: its digits are the id
    assert read.merge == [["1234567890123456", "abcdef0123456789"]] and read.names == {"1234567890123456": ["Ann"]}
    bad.write_text("ignore: [[nobody@example.invalid]]\n")  # our words; the value (PHI) never shown
    with pytest.raises(OverridesError) as info:
        load_overrides(bad)
    assert "ignore[0]: must be text, got a list" in str(info.value)
    assert "Input should" not in str(info.value) and "nobody@" not in str(info.value)


def test_resolution_is_deterministic_whatever_the_input_order() -> None:
    docs = people() + [mail("m1", "cy.park@gmail.com", ["x@practice.example"]),
                       contact("sheets", "i", "r", "Ben Lee", phones=["2125550102"])]
    p1, _ = resolve(docs)
    p2, _ = resolve(list(reversed(docs)))
    assert p1.links == p2.links and p1.unlinked == p2.unlinked
    assert [c.key for c in p1.conflicts] == [c.key for c in p2.conflicts]


def test_two_contacts_with_one_phone_in_two_formats_is_a_conflict() -> None:
    docs = people() + [contact("dataverse", "mensio", "F", "Fay Ng", phones=["(212) 555-0103"])]
    row = contact("quickbooks", "co", "9", "Customer", phones=["+1 212 555 0103"])
    p, out = resolve(docs + [row])
    assert out[row[0]].reason == "conflict"  # type: ignore[union-attr]
    (c,) = [c for c in p.conflicts if c.key == "phone:+12125550103"]
    assert set(c.clients) == {cid("C"), cid("F")} and c.documents == 1


def test_a_name_that_looks_like_another_clients_id_prefix_is_ambiguous_never_that_client() -> None:
    import sqlite3

    from engine.clients.read import ClientLookupError, ClientTables
    from engine.clients.tables import ensure_schema
    conn = sqlite3.connect(":memory:")
    ensure_schema(conn)
    for cid_, name in (("dede0123456789ab", "Zed Other"), ("0123456789abcdef", "Dede"),
                       ("1111222233334444", "Ann Lee")):
        conn.execute("INSERT INTO clients VALUES (?, ?, ?, ?, 'dataverse', 'm', ?, NULL, '', 0)",
                     (cid_, name, name, f"{name} ({cid_[:8]})", cid_))
    t = ClientTables(conn)
    with pytest.raises(ClientLookupError) as info:
        t.find("Dede")  # Dede's name, and the prefix of Zed's id: the user must say which
    assert {c["client_id"] for c in info.value.candidates} == {"dede0123456789ab", "0123456789abcdef"}
    assert t.find("Zed Other")["client_id"] == "dede0123456789ab"
    assert t.find("dede01")["client_id"] == "dede0123456789ab"
    assert t.find("1111")["name"] == "Ann Lee"
    with pytest.raises(ClientLookupError, match="no client"):
        t.find("____")  # not a LIKE pattern
    with pytest.raises(ClientLookupError, match="no client"):
        t.find("11%")


def test_only_ascii_case_is_folded_in_addresses() -> None:
    """Full case folding and normalisation join mailboxes that are not one (IDNA2008 keeps ß;
    the long s and the Kelvin sign become ASCII): those stay apart, no link by a look-alike."""
    assert K.email_key("ann@straße.de") != K.email_key("ann@strasse.de")
    assert K.email_key("ſam@example.com") != K.email_key("sam@example.com")
    assert K.email_key("\u212aim@example.com") != K.email_key("kim@example.com")
    assert K.email_key("ANN@STRASSE.DE") == K.email_key("ann@strasse.de") == "email:ann@strasse.de"
    assert K.email_key("jose\u0301@example.com") != K.email_key("jos\u00e9@example.com")  # as written
    assert K.is_own("frontdesk@practice.example", ["FrontDesk@Practice.example"])
    docs = people() + [mail("k", "\u212aim@example.com", ["cy.park@gmail.com"]),
                       contact("dataverse", "mensio", "K", "Kim Oh", emails=["kim@example.com"])]
    _, out = resolve(docs)
    assert clients_of(out[DocRef("gmail", "box", "email", "k")]) == {cid("C")}, "only Cy takes part"


def test_apart_naming_a_merged_away_client_keeps_its_keeper_apart() -> None:
    """`merge: [[X, F]]` and `apart: [[F, W]]`: the conflict is X's and W's, and the apart,
    compared by its raw ids, left it open without a word; a merge chain (B into A, then A into
    C) left B's id pointing at A, which is no client."""
    from engine.clients.overrides import Overrides

    x = contact("dataverse", "mensio", "X", "Xena Park", phones=["212-555-0190"], dob="1980-01-01")
    f = contact("dataverse", "mensio", "F", "Xena Park", emails=["xp@example.org"], dob="1980-01-01")
    w = contact("dataverse", "mensio", "W", "Walt Park", phones=["212 555 0190"], dob="1979-01-01")
    ov = Overrides(merge=[[cid("X"), cid("F")]], apart=[[cid("F"), cid("W")]])  # type: ignore[arg-type]
    p, _ = resolve([x, f, w], overrides=ov)
    (c,) = [c for c in p.conflicts if c.key == "phone:+12125550190"]
    assert c.reviewed and p.unused_overrides == 0
    a = contact("dataverse", "mensio", "A", "Ann Chain", emails=["a@example.org"], dob="1970-01-01")
    b = contact("dataverse", "mensio", "B", "Ann Chain", emails=["b@example.org"], dob="1970-01-01")
    cc = contact("dataverse", "mensio", "C", "Ann Chain", emails=["c@example.org"], dob="1970-01-01")
    mail_to_b = mail("m1", "b@example.org", ["desk@practice.example"])
    chain = Overrides(merge=[[cid("A"), cid("B")], [cid("C"), cid("A")]])  # type: ignore[arg-type]
    p, out = resolve([a, b, cc, mail_to_b], overrides=chain)
    assert set(p.clients) == {cid("C")} and clients_of(out[mail_to_b[0]]) == {cid("C")}
