"""Identity edges a reviewer found linking one person's documents into another's chart.

Each test is a wrong link that used to happen, resolved over hand-written canonical
documents by the real :class:`engine.clients.resolve.Resolver` (the helpers come from
``test_clients_core``), plus the key functions it rests on:

* the practice's own Gmail mailbox written with dots or a ``+tag`` became a client key, so
  the practice's mail to anyone went into the chart of the client who had that address on file;
* a relative who shares a client's phone or e-mail, with another name and birth date on the
  record, was linked to the client;
* placeholder phone numbers (``000-000-0000``) were keys;
* ``mailto:<address>`` gave no key; kana differing only by a voicing mark were one name;
* extensions of one office line were one key; an overrides file of an unknown version was read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.clients import keys as K
from engine.clients.model import DocRef, Link, Unlinked
from engine.clients.overrides import OverridesError, load_overrides
from engine.config import ClientsConfig
from tests.engine.test_clients_core import cid, contact, mail, people, resolve


def test_the_practice_s_gmail_in_any_spelling_is_its_own_and_never_a_key() -> None:
    cfg = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example", "drsmith@gmail.com"])
    olga = contact("dataverse", "mensio", "O", "Olga Owens", emails=["Dr.Smith@gmail.com"], dob="1960-01-01")
    out_mail = mail("m15", "dr.smith@gmail.com", ["cy.park@gmail.com"])
    tagged = mail("m13", "dr.smith+intake@googlemail.com", ["someone@example.net"])
    staff = mail("m14", "DrSmith@gmail.com", ["frontdesk@practice.example"])
    p, out = resolve(people() + [olga, out_mail, tagged, staff], cfg)
    assert not any(k.startswith("email:") for k in p.clients[cid("O")].keys)
    (link,) = out[out_mail[0]]  # type: ignore[misc]
    assert (link.client_id, link.direction) == (cid("C"), "out")  # Cy's, sent by the practice
    assert isinstance(out[tagged[0]], Unlinked) and out[tagged[0]].reason == "no_match"  # type: ignore[union-attr]
    assert isinstance(out[staff[0]], Unlinked) and out[staff[0]].reason == "internal"  # type: ignore[union-attr]
    assert all(cid("O") not in {lk.client_id for lk in d} for d in out.values() if isinstance(d, list)
               if d and d[0].doc != olga[0])


def test_a_dotted_own_pattern_covers_the_undotted_spelling_too() -> None:
    cfg = ClientsConfig(sources=["dataverse"], own_addresses=["Dr.Smith@gmail.com"])
    olga = contact("dataverse", "mensio", "O", "Olga Owens", emails=["drsmith+x@gmail.com"])
    p, _ = resolve([olga], cfg)
    assert p.clients[cid("O")].keys == set()


def test_ignored_gmail_addresses_are_ignored_in_any_spelling() -> None:
    from engine.clients.overrides import Overrides

    olga = contact("dataverse", "mensio", "O", "Olga Owens", emails=["olga.owens@gmail.com"])
    sent = mail("m1", "Olga.Owens+news@gmail.com", ["ben@practice.example"])
    _, out = resolve([olga, sent], overrides=Overrides(ignore=["olgaowens@gmail.com"]))
    assert isinstance(out[sent[0]], Unlinked)


def test_a_relative_sharing_a_phone_with_another_name_and_birth_date_links_no_one() -> None:
    rita = contact("dataverse", "mensio", "R", "Rita Quill", phones=["212-555-0300"], dob="1975-03-03")
    sam = contact("dataverse", "mensio", "S", "Sam Quill", phones=["(212) 555-0300"], dob="2012-05-05",
                  active=False)
    sam_elsewhere = contact("billing", "x", "b1", "Quill, Sam", phones=["2125550300"], dob="2012-05-05")
    same_person = contact("billing", "x", "b2", "Quill, Rita", phones=["2125550300"], dob="1975-03-03")
    no_dob = contact("billing", "x", "b3", "R. Quill", phones=["2125550300"])
    cfg = ClientsConfig(sources=["dataverse"], where={"active": True})
    rita[1]["active"] = True
    p, out = resolve([rita, sam, sam_elsewhere, same_person, no_dob], cfg)
    assert set(p.clients) == {cid("R")}
    for wrong in (sam, sam_elsewhere):  # another person by name and birth date: no link
        got = out[wrong[0]]
        assert isinstance(got, Unlinked) and got.reason == "disagree", wrong[0]
    (link,) = out[same_person[0]]  # type: ignore[misc]
    assert (link.client_id, link.rule) == (cid("R"), "phone")
    (link,) = out[no_dob[0]]  # type: ignore[misc]
    assert link.client_id == cid("R")  # nothing on the record says it is someone else


def test_another_birth_date_alone_is_another_person() -> None:
    ann = contact("dataverse", "mensio", "A", "Ann Lee", emails=["ann@example.org"], dob="1980-01-01")
    junior = contact("sheets", "intake", "r1", "Ann Lee", emails=["ann@example.org"], dob="2008-01-01")
    _, out = resolve([ann, junior])
    assert isinstance(out[junior[0]], Unlinked) and out[junior[0]].reason == "disagree"  # type: ignore[union-attr]


def test_a_merged_client_accepts_either_record_s_name_and_birth_date() -> None:
    from engine.clients.overrides import Overrides

    a = contact("dataverse", "mensio", "A", "Ann Lee", phones=["212-555-0101"], dob="1980-01-01")
    b = contact("dataverse", "mensio", "B", "Ann Lee-Park", phones=["212-555-0199"], dob="1980-01-01")
    row = contact("sheets", "intake", "r1", "Ann Lee-Park", phones=["212-555-0101"], dob="1980-01-01")
    _, out = resolve([a, b, row], overrides=Overrides(merge=[[cid("A"), cid("B")]]))
    got = out[row[0]]
    assert isinstance(got, list) and {lk.client_id for lk in got} == {cid("A")}


def test_placeholder_phones_are_no_keys() -> None:
    for fake in ("000-000-0000", "123-456-7890", "999-999-9999", "(000) 000-0000"):
        assert K.phone_key(fake, "US") is None, fake
    pat = contact("dataverse", "mensio", "P", "Pat Placeholder", phones=["000-000-0000"])
    zed = contact("billing", "x", "b10", "Zed Zane", phones=["000-000-0000"])
    p, out = resolve([pat, zed])
    assert p.clients[cid("P")].keys == set()
    assert isinstance(out[zed[0]], Unlinked) and out[zed[0]].reason == "no_key"  # type: ignore[union-attr]


def test_mailto_in_angle_brackets_is_an_address() -> None:
    assert K.email_key("mailto:<Kai@Example.org>") == "email:kai@example.org"
    assert K.email_key("<mailto:<kai@example.org>>") == "email:kai@example.org"


def test_voicing_marks_make_other_names_while_latin_accents_fold() -> None:
    assert K.name_text("ガトウ ハナ") != K.name_text("カトウ ハナ")
    assert K.name_text("ｶﾞﾄｳ ﾊﾅ") == K.name_text("ガトウ ハナ")  # half-width kana are the same letters
    assert K.name_text("Андрей") != K.name_text("Андреи")
    assert K.name_text("José Muñoz") == K.name_text("jose munoz") == "jose munoz"
    # Latin letters no decomposition takes apart, written both ways in practice
    assert K.name_text("Ångström Øberg") == K.name_text("Angstrom Oberg") == "angstrom oberg"
    assert K.name_text("Łukasz Żółw") == K.name_text("LUKASZ ZOLW")
    assert K.name_text("Þórður Ærø") == "thordur aero" and K.name_text("Işık") == "isik"
    oberg = contact("dataverse", "mensio", "O", "Ångström Øberg", dob="1980-02-03")
    billed = contact("billing", "x", "b12", "Angstrom Oberg", dob="1980-02-03")
    _, decided = resolve([oberg, billed])
    got = decided[billed[0]]
    assert isinstance(got, list) and [(lk.client_id, lk.rule) for lk in got] == [(cid("O"), "name_dob")]
    kato = contact("dataverse", "mensio", "K", "カトウ ハナ", dob="1990-01-01")
    gato = contact("billing", "x", "b11", "ガトウ ハナ", dob="1990-01-01")
    _, out = resolve([kato, gato])
    assert isinstance(out[gato[0]], Unlinked) and out[gato[0]].reason == "no_match"  # type: ignore[union-attr]


def test_links_made_by_a_unique_key_still_name_it() -> None:
    row = contact("sheets", "intake", "r1", "Ben Lee", phones=["2125550102"], dob="2010-05-05")
    _, out = resolve(people() + [row])
    got = out[row[0]]
    assert isinstance(got, list) and isinstance(got[0], Link)
    assert (got[0].client_id, got[0].rule, got[0].via) == (cid("B"), "phone", "phone:+12125550102")


def test_extensions_of_one_office_line_are_different_people() -> None:
    assert K.phone_key("212-555-0177 ext. 12", "US") == K.phone_key("+1 212 555 0177;ext=12", "US") \
        == K.phone_key("(212) 555-0177 x12", "US") == "phone:+12125550177;ext=12"
    assert K.phone_key("212-555-0177 ext. 13", "US") != K.phone_key("212-555-0177 ext. 12", "US")
    assert K.phone_key("212-555-0177", "US") == "phone:+12125550177"
    max_ = contact("dataverse", "mensio", "M", "Max Moe", phones=["212-555-0177 ext. 12"], dob="1950-05-18")
    ned = contact("quickbooks", "x", "c9", "Ned Moe", phones=["212-555-0177 ext. 13"])
    same = contact("quickbooks", "x", "c10", "Moe, Max", phones=["212 555 0177 x12"])
    _, out = resolve([max_, ned, same])
    assert isinstance(out[ned[0]], Unlinked) and out[ned[0]].reason == "no_match"  # type: ignore[union-attr]
    (link,) = out[same[0]]  # type: ignore[misc]
    assert (link.client_id, link.via) == (cid("M"), "phone:+12125550177;ext=12")


def test_an_overrides_file_of_another_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    for version in ("2", "0", "99"):
        path.write_text(f"version: {version}\n")
        with pytest.raises(OverridesError, match="must be 1"):
            load_overrides(path)
    path.write_text("version: 1\nmerge: []\n")
    assert load_overrides(path)[0].version == 1


def test_a_record_naming_another_client_is_not_linked_by_the_keys_it_shares() -> None:
    """Tim's billing record carries his mother's e-mail and phone (she pays) and no birth
    date: the keys say Ann, the name says Tim. It went into Ann's billing; now it is left
    unlinked (`disagree`) for a person to decide. A nickname no client has is reported too
    (it could be a sister's record): only the client's own name in another spelling links."""
    ann = contact("dataverse", "mensio", "A", "Ann Doe", emails=["ann@doe.example"], phones=["617-555-0172"],
                  dob="1980-01-01")
    tim = contact("dataverse", "mensio", "T", "Doe, Tim", dob="2012-05-05")
    billed_tim = contact("quickbooks", "qbo", "20", "Tim Doe", emails=["ann@doe.example"], phones=["617-555-0172"])
    billed_ann = contact("quickbooks", "qbo", "21", "ANN DOE", emails=["ann@doe.example"])
    nickname = contact("quickbooks", "qbo", "22", "Annie Doe", phones=["617-555-0172"])
    _, out = resolve([ann, tim, billed_tim, billed_ann, nickname])
    got = out[billed_tim[0]]
    assert isinstance(got, Unlinked) and got.reason == "disagree", got
    assert [lk.client_id for lk in out[billed_ann[0]]] == [cid("A")]  # type: ignore[union-attr]
    got = out[nickname[0]]
    assert isinstance(got, Unlinked) and got.reason == "disagree", got


def test_a_pair_both_merged_and_kept_apart_is_refused(tmp_path: Path) -> None:
    """`merge: [[A, B]]` with `apart: [[B, A]]` was accepted and the merge silently won: one
    person's sessions in the other's chart. Merge groups chain (A-B, B-C makes A and C one)."""
    path = tmp_path / "overrides.yaml"
    a, b, c = "a" * 16, "b" * 16, "c" * 16
    for merge, apart in (([[a, b]], [[b, a]]), ([[a, b], [b, c]], [[c, a]])):
        path.write_text(f"merge: {merge}\napart: {apart}\n")
        with pytest.raises(OverridesError, match="keeps apart clients that a merge entry makes one"):
            load_overrides(path)
    path.write_text(f"merge: [[{a}, {b}]]\napart: [[{a}, {c}]]\n")
    assert load_overrides(path)[0].apart == [[a, c]]


def test_two_link_entries_deciding_one_document_otherwise_are_refused(tmp_path: Path) -> None:
    """The last of two contradictory entries silently won (one document in Cy's chart, the
    operator having also linked it to Tim)."""
    path = tmp_path / "overrides.yaml"
    doc = "gmail:inbox:email:m1"
    for second in ("{client: bbbbbbbbbbbbbbbb}", "{client: null}", "{client: aaaaaaaaaaaaaaaa, sha256: " + "f" * 64 + "}"):
        path.write_text(f"link:\n  - {{document: '{doc}', client: aaaaaaaaaaaaaaaa}}\n"
                        f"  - {{document: '{doc}', {second[1:]}\n")
        with pytest.raises(OverridesError, match="one document, one decision"):
            load_overrides(path)
    path.write_text("link:\n" + f"  - {{document: '{doc}', client: aaaaaaaaaaaaaaaa}}\n" * 2)
    assert len(load_overrides(path)[0].link) == 2  # the same decision twice is no contradiction
    path.write_text(f"link:\n  - {{document: '{doc}', client: aaaaaaaaaaaaaaaa}}\nignore: []\n"
                    f"link:\n  - {{document: 'x:y:email:2', client: bbbbbbbbbbbbbbbb}}\n")
    with pytest.raises(OverridesError, match=r":4: link: duplicate key \(already set on line 1\)"):
        load_overrides(path)  # YAML kept the second section only: the first link was lost


def test_the_same_birth_date_under_another_spelling_of_the_name() -> None:
    """The name as the client's record spells it links; a nickname with the same birth date is
    reported (twins share birth dates: Paul and Paula, Daniel and Danielle), never linked."""
    client = contact("dataverse", "mensio", "J", "Smith, Jonathan A.", emails=["jon@example.org"],
                     phones=["212-555-0140"], dob="1971-02-03")
    intake = contact("sheets", "intake", "r1", "Jonathan Smith", emails=["jon@example.org"], dob="1971-02-03")
    nickname = contact("sheets", "intake", "r2", "Jon Smith", phones=["(212) 555-0140"], dob="1971-02-03")
    _, out = resolve([client, intake, nickname])
    got = out[intake[0]]
    assert isinstance(got, list) and {lk.client_id for lk in got} == {cid("J")}
    got = out[nickname[0]]
    assert isinstance(got, Unlinked) and got.reason == "disagree"


def test_an_office_line_is_shared_by_every_client_on_it_whatever_their_extensions() -> None:
    max_ = contact("dataverse", "mensio", "M", "Max Moe", phones=["212-555-0177 ext. 12"], dob="1950-05-18")
    nina = contact("dataverse", "mensio", "N", "Nina Noe", phones=["212-555-0177"], dob="1960-06-06")
    bare = contact("quickbooks", "x", "c1", "Max Moe", phones=["(212) 555-0177"])
    ext = contact("quickbooks", "x", "c2", "Moe, Max", phones=["212 555 0177 x12"])
    p, out = resolve([max_, nina, bare, ext])
    assert "phone:+12125550177" in p.clients[cid("M")].keys  # the line, beside its extension
    got = out[bare[0]]
    assert isinstance(got, Unlinked) and got.reason == "conflict"  # Max's office or Nina's phone
    (link,) = out[ext[0]]  # type: ignore[misc]
    assert (link.client_id, link.via) == (cid("M"), "phone:+12125550177;ext=12")
    assert any(c.key == "phone:+12125550177" for c in p.conflicts)


def test_ignoring_an_office_line_ignores_its_extensions() -> None:
    from engine.clients.overrides import Overrides

    max_ = contact("dataverse", "mensio", "M", "Max Moe", phones=["212-555-0177 ext. 12"])
    p, _ = resolve([max_], overrides=Overrides(ignore=["212-555-0177"]))
    assert p.clients[cid("M")].keys == set()


def test_optional_accents_of_greek_and_cyrillic_fold_but_the_breve_stays() -> None:
    assert K.name_text("Γιώργος Παπαδόπουλος") == K.name_text("ΓΙΩΡΓΟΣ ΠΑΠΑΔΟΠΟΥΛΟΣ")
    assert K.name_text("Алёна Фёдорова") == K.name_text("Алена Федорова")
    assert K.name_text("Андрей") != K.name_text("Андреи")
    assert K.name_text("राम") != K.name_text("रम")  # a Devanagari vowel sign is part of the name


def test_vowel_signs_of_indic_and_thai_names_are_letters_not_punctuation() -> None:
    """Combining vowel signs were dropped as punctuation: twins अमित and अमृत (Amit and Amrit,
    one birth date) gave one name key, and the twin's intake row went into Amit's chart."""
    for one, other in (("अमित शर्मा", "अमृत शर्मा"), ("सुनीता", "सुनीति"), ("สุดา", "สิดา"), ("সুমন", "সামন"),
                       ("கமலா", "கமலி")):
        assert K.name_text(one) != K.name_text(other), (one, other)
    assert K.name_text("अमित  शर्मा,") == "अमित शर्मा"  # punctuation and spaces still fold
    assert K.name_text("क्\u200dष") == K.name_text("क्ष")  # a zero-width joiner is not a word break
    # vowel points of Hebrew and Arabic are optional, as Latin accents are (and IPA letters are Latin)
    for with_marks, plain in (("محمّد علي", "محمد علي"), ("דָּוִד כֹּהֵן", "דוד כהן"), ("Kɔ̃fi", "Kɔfi")):
        assert K.name_text(with_marks) == K.name_text(plain), with_marks
    assert K.name_text("Ann \u2764\ufe0f Doe") == "ann doe"  # an emoji's variation selector is no word
    amit = contact("dataverse", "mensio", "A", "अमित शर्मा", emails=["amit.s@example.in"], dob="1995-05-05")
    amrit = contact("sheets", "intake", "r1", "अमृत शर्मा", phones=["415-555-0199"], dob="1995-05-05")
    _, out = resolve([amit, amrit])
    assert isinstance(out[amrit[0]], Unlinked)


def test_a_questionnaire_signed_by_someone_else_is_not_the_address_holder_s() -> None:
    """A form response's `respondent.name` was never read: Jordan Lee's PHQ-9 sent from Cy's
    address went into Cy's chart, scores and item 9 included."""
    def response(sid: str, name: str | None) -> tuple[DocRef, dict[str, Any]]:
        doc = {"kind": "form_response", "source": "forms", "account": "phq", "source_id": sid,
               "respondent": {"email": "cy.park@gmail.com", "name": name}}
        return DocRef("forms", "phq", "form_response", sid), doc
    other, own, first_only, unnamed, address = (response("1", "Jordan Lee"), response("2", "Cy Park"),
                                                response("3", "cy"), response("4", None),
                                                response("5", "cy.park@gmail.com"))
    _, out = resolve(people() + [other, own, first_only, unnamed, address])
    assert isinstance(out[other[0]], Unlinked) and out[other[0]].reason == "disagree"  # type: ignore[union-attr]
    for doc in (own, first_only, unnamed, address):
        got = out[doc[0]]
        assert isinstance(got, list) and {lk.client_id for lk in got} == {cid("C")}, doc


def test_names_an_override_gives_a_client_fit_their_documents_and_link_nothing_alone() -> None:
    """A client renamed at the source after a marriage had her own earlier mail, signed with
    the old name, turned `disagree`; `names:` lets that name fit her. It is no key: a sheet
    row with the old name and no key of hers links to no one, and an unknown id is unused."""
    from engine.clients.overrides import Overrides

    emily = contact("dataverse", "mensio", "E2", "Emily Stone", emails=["emily.b@example.com"], dob="1988-02-02")
    old_mail = mail("m1", "emily.b@example.com", ["frontdesk@practice.example"])
    old_mail[1]["from"][0]["name"] = "Emily Brown"
    other = mail("m2", "emily.b@example.com", ["frontdesk@practice.example"])
    other[1]["from"][0]["name"] = "Jordan Lee"
    by_name = contact("sheets", "intake", "r9", "Emily Brown", phones=["415-555-0123"])
    cfg = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example"])
    _, before = resolve([emily, old_mail, other, by_name], cfg)
    assert isinstance(before[old_mail[0]], Unlinked) and before[old_mail[0]].reason == "disagree"  # type: ignore[union-attr]
    ov = Overrides(names={cid("E2"): ["Emily Brown"], "0" * 16: ["Nobody"]})
    p, after = resolve([emily, old_mail, other, by_name], cfg, ov)
    got = after[old_mail[0]]
    assert isinstance(got, list) and {lk.client_id for lk in got} == {cid("E2")}
    assert isinstance(after[other[0]], Unlinked) and after[other[0]].reason == "disagree"  # type: ignore[union-attr]
    assert isinstance(after[by_name[0]], Unlinked)  # a name is no key
    assert (f"names:{'0' * 16}", "") in p.unused and p.unused_overrides == 1


def test_pins_stored_before_marks_were_kept_and_form_names_read_still_hold() -> None:
    """Upgrading turned overrides stale: a client pin hashes the folded name (अमित शर्मा was
    folded `अम त शर म`), and a form response's pin held no name (`respondent.name` was not
    read). Each is compared the older way once and stored anew; another person stays stale."""
    import hashlib

    import orjson

    from engine.clients.card import CLIENT_PIN
    from engine.clients.decide import IDENTITY_V3
    from engine.clients.overrides import Overrides
    from engine.clients.resolve import Resolver

    cfg = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example"])
    a1 = contact("dataverse", "mensio", "A1", "अमित शर्मा", emails=["amit@example.in"], dob="1995-05-05")
    a2 = contact("dataverse", "mensio", "A2", "अमित शर्मा", phones=["415-555-0111"], dob="1995-05-05")
    form = (DocRef("forms", "f", "form_response", "r4"),
            {"kind": "form_response", "source": "forms", "account": "f", "source_id": "r4",
             "respondent": {"email": "amit@example.in", "name": "Amit"}})
    old_client = hashlib.sha256(orjson.dumps(["अम त शर म", "1995-05-05"])).hexdigest()
    old_form = IDENTITY_V3 + hashlib.sha256(orjson.dumps(
        ["form_response", ["email:amit@example.in"], [], [], "2024-03-03T10:00:00Z", None])).hexdigest()
    doc_key = ("forms:f:form_response:r4", cid("A1"))
    ov = Overrides(merge=[[cid("A1"), cid("A2")]], link=[{"document": doc_key[0], "client": cid("A1")}])  # type: ignore[list-item]
    pins = {(f"{CLIENT_PIN}{cid('A1')}", ""): old_client, (f"{CLIENT_PIN}{cid('A2')}", ""): old_client,
            doc_key: old_form}
    r = Resolver(cfg, ov, pins)
    for ref, doc in (a1, a2):
        r.add(ref, None, None, doc)
    r.add(form[0], "2024-03-03T10:00:00Z", None, form[1])
    p = r.resolve()
    assert p.stale_overrides == 0 and set(p.clients) == {cid("A1")}, "the merge holds"
    assert [lk.client_id for lk in p.links if lk.doc == form[0]] == [cid("A1")]
    assert p.override_pins[doc_key] != old_form and p.override_pins[doc_key].startswith(IDENTITY_V3)


def test_a_name_the_overrides_give_never_excuses_another_client_s_very_name() -> None:
    """`names:` giving Robert the name "Cy Park" (a mistake, or a shared former name) let a
    mail signed "Cy Park" from Robert's address into Robert's chart: Cy Park is a client."""
    from engine.clients.overrides import Overrides

    robert = contact("dataverse", "mensio", "R", "Robert Vekker", emails=["rv@mailbox.test"], dob="1970-01-01")
    signed = mail("m1", "rv@mailbox.test", ["frontdesk@practice.example"])
    signed[1]["from"][0]["name"] = "Cy Park"
    cfg = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example"])
    _, out = resolve(people() + [robert, signed], cfg, Overrides(names={cid("R"): ["Cy Park"]}))
    assert isinstance(out[signed[0]], Unlinked) and out[signed[0]].reason == "disagree"  # type: ignore[union-attr]


def test_a_questionnaire_kept_in_the_crm_links_by_its_contact_lookup() -> None:
    """A Dataverse questionnaire table (`abc_phq9response` with `_abc_client_value`) had no way
    to name its contact: every row was `no_key` and needed a `link:` override each."""
    def row(sid: str, subject: str | None, email: str | None = None) -> tuple[DocRef, dict[str, Any]]:
        doc = {"kind": "form_response", "source": "dataverse", "account": "mensio", "source_id": sid,
               "subject": {"type": "contact", "id": subject, "display": None} if subject else None,
               "respondent": {"email": email, "name": None}}
        return DocRef("dataverse", "mensio", "form_response", sid), doc
    by_lookup, by_mail, dangling = row("q1", "C"), row("q2", None, "cy.park@gmail.com"), row("q3", "nobody")
    _, out = resolve(people() + [by_lookup, by_mail, dangling])
    for doc in (by_lookup, by_mail):
        got = out[doc[0]]
        assert isinstance(got, list) and {lk.client_id for lk in got} == {cid("C")}, doc
    assert isinstance(out[dangling[0]], Unlinked) and out[dangling[0]].reason == "ref_missing"  # type: ignore[union-attr]
