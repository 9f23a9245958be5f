"""Family members reached through a client's shared keys, told apart by the names they give.

A reviewer's practice (a mother and her two sons, one a client; a client's husband) found
records of the relatives linked into the client's chart: "Tim Doe" with Ann Doe's mobile,
QuickBooks customers "Ben Doe (child)" and "Doe, Benjamin" under the family's e-mail, a
spouse's intake row with the wife's address, a mail signed "Ben Doe" from Ann's address, a
mail from Paul Gray's old address (now on file for Paula Gray), and a `link:` on an intake
row that followed the row number onto the brother's row. Each is resolved here by the real
:class:`engine.clients.resolve.Resolver` over hand-written canonical documents.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.clients.decide import IDENTITY_V2, _digest, identity
from engine.clients.keys import name_text
from engine.clients.model import DocFacts, DocRef, Link, Unlinked
from engine.clients.namematch import could_be, fits
from engine.clients.overrides import Overrides
from engine.clients.resolve import Resolver
from engine.config import ClientsConfig
from tests.engine.test_clients_core import cid, clients_of, contact, resolve

CFG = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example"])


@pytest.mark.parametrize(("one", "other"), [
    ("Ann Doe", "Doe, Ann"), ("Ann M. Doe", "Ann Doe"), ("Dr Ann Doe", "Ann Doe"), ("A. Doe", "Ann Doe"),
    ("Ann Doe-Smith", "Ann Doe"), ("Ann Doe (billing)", "Ann Doe"), ("山田 太郎", "山田太郎"), ("Ann", "Ann Doe"),
    ("ONeill, Siobhan M.", "Siobhan O'Neill"), ("Juergen Mueller", "Jürgen Müller"), ("YAMADA Taro", "Taro Yamada"),
    ("Smith, John A., Jr.", "John Smith Jr"), ("Ryan M. Mc Donald", "Ryan McDonald"), ("ANN  DOE 🌸", "Ann Doe"),
])
def test_names_that_can_be_one_person(one: str, other: str) -> None:
    a, b = name_text(one), name_text(other)
    assert a and b and fits(a, b) and fits(b, a)


@pytest.mark.parametrize(("one", "other"), [
    ("Tim Doe", "Ann Doe"), ("Ben Doe (child)", "Ann Doe"), ("Doe, Benjamin", "Ann Doe"),
    ("Mr. Mark White", "Carol White"), ("Bob Smith", "Robert Smith"), ("Maria Smith", "Maria Garcia"),
    ("Paul Gray", "Paula Gray"), ("Daniel Roy", "Danielle Roy"), ("Chris Lee", "Christine Lee"),
    ("Ben Doe", "Benjamin Doe"), ("John Smith", "John Smith Jr"), ("John Smith Sr.", "John Smith Jr"),
    ("Jo March", "John March"), ("Ann Doe's son", "Ann Doe"), ("Ann Doe (mother)", "Ann Doe"),
    ("Doe Family", "Ann Doe"), ("Robert Doe Junior", "Robert Doe"), ("Ann Doe 2nd", "Ann Doe"),
    ("Michal Nowak", "Michael Nowak"), ("Jo Doe", "Joe Doe"), ("Joey Park", "Joy Park"), ("Park, Joey", "Joy Park"),
    ("Joel Smith", "Jol Smith"), ("Ann Doe's grandson", "Ann Doe"), ("Ann Doe's stepchild", "Ann Doe"),
    ("Joy Park (kids)", "Joy Park"), ("Ann Doe Jnr", "Ann Doe"), ("Ann Doe (dependent)", "Ann Doe"),
    ("Ann Doe twin", "Ann Doe"), ("Ann Doe's fiance", "Ann Doe"), ("Ann Doe's granddaughter", "Ann Doe"),
    ("Dr Joey Park", "Dr Joy Park"), ("Park Joey", "Park Joy"),
])
def test_names_that_cannot_be_one_person(one: str, other: str) -> None:
    """Another given name, a short form (as often another person as the same: Paul and
    Paula), a generational suffix on one side: reported, never linked by a shared key."""
    a, b = name_text(one), name_text(other)
    assert a and b and not fits(a, b) and not fits(b, a)


def test_no_name_on_either_side_contradicts_nothing() -> None:
    assert could_be(None, ["ann doe"]) and could_be("tim doe", []) and could_be("tim doe", [""])
    for placeholder in ("N/A", "Unknown", "none"):  # what a clerk types for a missing name
        assert could_be(name_text(placeholder), ["ann doe"]), placeholder
    assert could_be("maria smith", ["maria garcia", "maria smith"])  # a merged client's other name


def family() -> list[tuple[DocRef, dict[str, Any]]]:
    return [
        contact("dataverse", "sor", "ann", "Ann Doe", given="Ann", family="Doe",
                emails=["ann.doe@example.com"], phones=["212-555-0101"], dob="1980-01-01"),
        contact("dataverse", "sor", "carol", "Carol White", emails=["carol.w@example.com"], dob="1975-05-05"),
        contact("dataverse", "sor", "maria", "Maria Garcia", emails=["maria.gl@example.net"], dob="1985-02-02"),
    ]


def sor(sid: str) -> str:
    return cid(sid, "sor")


def _decided(extra: list[tuple[DocRef, dict[str, Any]]], overrides: Overrides | None = None
             ) -> dict[DocRef, list[Link] | Unlinked]:
    return resolve(family() + extra, CFG, overrides)[1]


def test_a_relative_named_otherwise_with_the_client_s_keys_is_no_one_s() -> None:
    tim = contact("crm", "farm", "101", "Tim Doe", phones=["(212) 555-0101"])
    ben = contact("quickbooks", "qb", "6", "Ben Doe (child)", emails=["ann.doe@example.com"])
    benjamin = contact("quickbooks", "qb", "7", "Doe, Benjamin", phones=["2125550101"])
    mark = contact("sheets", "intake", "ss/0/12", "Mr. Mark White", emails=["carol.w@example.com"])
    out = _decided([tim, ben, benjamin, mark])
    for doc in (tim, ben, benjamin, mark):
        got = out[doc[0]]
        assert isinstance(got, Unlinked) and got.reason == "disagree", doc[0]
        client = sor("carol") if doc is mark else sor("ann")  # the detail says which check and whose
        assert got.detail.endswith(f"; its name cannot be client {client}'s"), got.detail


def test_the_client_s_own_name_in_other_spellings_still_links() -> None:
    spellings = ["Doe, Ann", "Ann M. Doe", "Dr Ann Doe", "A. Doe", "Ann Doe (billing)", "ANN DOE-SMITH", None,
                 "Ann Doe 🌸"]
    docs = [contact("quickbooks", "qb", f"c{i}", name, phones=["212 555 0101"]) for i, name in enumerate(spellings)]
    out = _decided(docs)
    for doc in docs:
        assert clients_of(out[doc[0]]) == {sor("ann")}, doc[1]["name"]


def test_a_new_family_name_is_reported_with_or_without_the_birth_date() -> None:
    """A shared birth date once excused a new family name; twins share one too, and a name
    written family first (`Brown Olivia`) cannot be told from a twin's: reported, a `link:`
    settles it."""
    married_dob = contact("quickbooks", "qb", "4", "Maria Smith", emails=["maria.gl@example.net"], dob="1985-02-02")
    married = contact("quickbooks", "qb", "5", "Maria Smith", emails=["maria.gl@example.net"])
    out = _decided([married_dob, married])
    for doc in (married_dob, married):
        got = out[doc[0]]
        assert isinstance(got, Unlinked) and got.reason == "disagree", doc[0]
    merged = contact("dataverse", "sor", "maria2", "Maria Smith", emails=["m.smith@example.net"], dob="1985-02-02")
    out = _decided([merged, married], Overrides(merge=[[sor("maria"), sor("maria2")]]))  # type: ignore[arg-type]
    assert clients_of(out[married[0]]) == {sor("maria")}, "a merged record's name is the client's"


def named_mail(sid: str, frm: tuple[str | None, str], to: list[tuple[str | None, str]]
               ) -> tuple[DocRef, dict[str, Any]]:
    doc = {"kind": "email", "source": "gmail", "account": "box", "source_id": sid,
           "from": [{"name": frm[0], "email": frm[1]}], "to": [{"name": n, "email": e} for n, e in to]}
    return DocRef("gmail", "box", "email", sid), doc


def test_a_client_named_at_an_address_no_one_holds_is_no_one_else_s_mail() -> None:
    """A reviewer's practice: Ben writes from his school address with his mother in Cc, the
    practice writes to Cal with Ben's name alone in Bcc, Carol's mail copies "Maria Garcia"
    at the family address two clients share. Each went to the other participant's chart
    only: the name rule skipped every participant whose address led to no single client."""
    ben = contact("dataverse", "sor", "ben", "Ben Doe", emails=[], dob="2012-02-02")
    cy = contact("dataverse", "sor", "cy", "Cy Garcia", emails=["garcia.home@example.net"], dob="1984-04-04")
    mg = contact("dataverse", "sor", "mg2", "Maria Garcia", emails=["garcia.home@example.net"], dob="1985-02-02")
    school = named_mail("n1", ("Ben Doe", "ben.doe@school.example"), [("Ann Doe", "ann.doe@example.com")])
    bcc = named_mail("n2", ("Dr Smith", "drsmith@practice.example"), [("Carol White", "carol.w@example.com")])
    bcc[1]["bcc"] = [{"name": "Ben Doe", "email": None}]
    shared = named_mail("n3", ("Carol White", "carol.w@example.com"), [("Maria Garcia", "garcia.home@example.net")])
    work = named_mail("n4", ("Ann Doe", "ann.work@elsewhere.example"), [("Doe, Ann", "ann.doe@example.com")])
    stranger = named_mail("n5", ("Pat Stone", "pat@elsewhere.example"), [("Ann Doe", "ann.doe@example.com")])
    out = _decided([ben, cy, mg, school, bcc, shared, work, stranger])
    for doc in (school, bcc, shared):
        got = out[doc[0]]
        assert isinstance(got, Unlinked) and got.reason == "disagree", (doc[0], got)
        assert "who is not linked" in got.detail
    # her own name at another address, or a name no client has: the mail stays hers
    assert clients_of(out[work[0]]) == {sor("ann")} and clients_of(out[stranger[0]]) == {sor("ann")}


def test_mail_signed_with_a_name_the_client_cannot_have_is_no_one_s() -> None:
    ben = contact("dataverse", "sor", "ben", "Ben Doe", emails=["ben.doe@example.com"], dob="2010-05-05")
    paul_now = contact("dataverse", "sor", "paula", "Paula Gray", emails=["pg@example.com"], dob="1990-09-09")
    paul = contact("dataverse", "sor", "paul", "Paul Gray", emails=["paul.gray@example.org"], dob="1960-06-06")
    from_ann = named_mail("g2", ("Ben Doe", "ann.doe@example.com"), [("Dr Smith", "drsmith@practice.example")])
    old_address = named_mail("g6", ("Paul Gray", "pg@example.com"), [(None, "drsmith@practice.example")])
    own = named_mail("g7", ("Doe, Ann", "ann.doe@example.com"), [(None, "drsmith@practice.example")])
    son = named_mail("g8", ("Tim Doe", "ann.doe@example.com"), [(None, "drsmith@practice.example")])
    to_both = named_mail("g9", ("Dr Smith", "drsmith@practice.example"),
                         [("Carol White", "carol.w@example.com"), ("Ben Doe", "ann.doe@example.com")])
    spelled = named_mail("g10", ("ann.doe@example.com", "ann.doe@example.com"),
                         [("A. Doe", "drsmith@practice.example")])
    initial = named_mail("g11", ("A. M. Doe", "ann.doe@example.com"), [(None, "drsmith@practice.example")])
    out = _decided([ben, paul_now, paul, from_ann, old_address, own, son, to_both, spelled, initial])
    for doc, key in ((from_ann, "email:ann.doe@example.com"), (old_address, "email:pg@example.com"),
                     (to_both, "email:ann.doe@example.com"), (son, "email:ann.doe@example.com")):
        got = out[doc[0]]
        assert isinstance(got, Unlinked) and (got.reason, got.detail.split("; ")[0]) == ("disagree", key), doc[0]
        assert got.detail.endswith("a display name cannot be the address holder's")
    for doc in (own, spelled, initial):  # her name in another spelling, or her address as the name
        assert clients_of(out[doc[0]]) == {sor("ann")}, doc[0]


def test_a_link_on_an_intake_row_does_not_follow_the_row_number_to_a_brother() -> None:
    """Intake rows have no time and a family's rows share the family's keys: the name the
    row gives is part of what the link holds to."""
    ben = contact("dataverse", "sor", "ben", "Ben Doe", emails=["ben.doe@example.com"], dob="2010-05-05")
    shared = ["family@example.com"]
    ann_row = contact("sheets", "intake", "ss1/0/5", "Ann Doe", emails=shared)
    ben_row = contact("sheets", "intake", "ss1/0/5", "Ben Doe", emails=shared)
    docs = family() + [ben]
    docs[0][1]["emails"]["e1"] = {"address": "family@example.com"}
    ben[1]["emails"]["e1"] = {"address": "family@example.com"}
    ov = Overrides(link=[{"document": "sheets:intake:contact:ss1/0/5", "client": sor("ann")}])  # type: ignore[list-item]

    def run(row: tuple[DocRef, dict[str, Any]], pins: dict[tuple[str, str], str]) -> tuple[Any, list[Link] | Unlinked]:
        r = Resolver(CFG, ov, pins)
        for ref, doc in [*docs, row]:
            r.add(ref, None, None, doc)
        p = r.resolve()
        mine = [lk for lk in p.links if lk.doc == row[0]]
        return p, mine or next(u for u in p.unlinked if u.doc == row[0])

    p, got = run(ann_row, {})
    assert clients_of(got) == {sor("ann")} and p.stale_overrides == 0
    p, got = run(ben_row, p.override_pins)
    assert p.stale_overrides == 1, "the link no longer names the row it was applied to"
    assert isinstance(got, Unlinked) and got.reason == "conflict", "decided by the rules: the family's address"


def test_a_pin_stored_with_the_time_only_is_read_that_way_once() -> None:
    facts = DocFacts(DocRef("sheets", "intake", "contact", "ss1/0/5"), None, None,
                     keys=("email:family@example.com",), name="ann doe")
    v2 = IDENTITY_V2 + _digest(facts, facts.time)
    key = ("sheets:intake:contact:ss1/0/5", sor("ann"))
    ov = Overrides(link=[{"document": key[0], "client": key[1]}])  # type: ignore[list-item]
    r = Resolver(CFG, ov, {key: v2})
    for ref, doc in family() + [contact("sheets", "intake", "ss1/0/5", "Ann Doe", emails=["family@example.com"])]:
        r.add(ref, None, None, doc)
    p = r.resolve()
    assert p.stale_overrides == 0 and p.override_pins[key] == identity(facts) != v2


def test_a_link_on_a_named_record_holds_through_edits_that_keep_who_it_is() -> None:
    """A contact's time is when it was last edited: a pin holding it went stale at every edit
    of the billing clerk's (an address, a note), and the record fell back to `disagree`."""
    bob = contact("quickbooks", "qb", "108", "Bob Jones", emails=["bob.jones@example.com"])
    robert = contact("dataverse", "sor", "robert", "Robert Jones", emails=["bob.jones@example.com"])
    ov = Overrides(link=[{"document": "quickbooks:qb:contact:108", "client": sor("robert")}])  # type: ignore[list-item]

    def run(time: str, name: str, pins: dict[tuple[str, str], str]) -> tuple[Any, list[Link] | Unlinked]:
        bob[1]["name"]["full"] = name
        r = Resolver(CFG, ov, pins)
        for ref, doc in [*family(), robert]:
            r.add(ref, None, None, doc)
        r.add(bob[0], time, None, bob[1])
        p = r.resolve()
        return p, [lk for lk in p.links if lk.doc == bob[0]] or next(u for u in p.unlinked if u.doc == bob[0])

    p, got = run("2024-01-01T10:00:00Z", "Bob Jones", {})
    assert clients_of(got) == {sor("robert")}
    p, got = run("2024-06-01T09:00:00Z", "Bob Jones", p.override_pins)  # edited: a new address
    assert clients_of(got) == {sor("robert")} and p.stale_overrides == 0
    p, got = run("2024-07-01T09:00:00Z", "Bobby Jones", p.override_pins)  # another name: look again
    assert p.stale_overrides == 1 and isinstance(got, Unlinked) and got.reason == "disagree"


def test_a_twin_with_the_client_s_birth_date_and_keys_is_reported_not_linked() -> None:
    """A shared birth date excused every name: a twin's record (her sister's e-mail, their one
    birth date) and the appointment that refers to it went into the sister's chart; then a
    new family name only, which let `Paula` (a prefix) and `Brown Olivia` (family first) in.
    It excuses nothing now."""
    emma = contact("dataverse", "sor", "emma", "Emma Brown", emails=["emma.b@example.com"],
                   phones=["212-555-0188"], dob="2010-03-03")
    olivia = contact("crm", "c", "12", "Brown, Olivia R.", emails=["emma.b@example.com"], dob="2010-03-03")
    initial = contact("crm", "c", "13", "Brown, O.", phones=["212 555 0188"], dob="2010-03-03")
    herself = contact("crm", "c", "14", "Brown, Emma", emails=["emma.b@example.com"], dob="2010-03-03")
    married = contact("crm", "c", "15", "Dr Emma Stone", emails=["emma.b@example.com"], dob="2010-03-03")
    family_first = contact("crm", "c", "16", "BROWN Olivia", emails=["emma.b@example.com"], dob="2010-03-03")
    paul = contact("dataverse", "sor", "paul", "Paul Grey", emails=["grey.home@example.com"], dob="2011-04-04")
    paula = contact("crm", "c", "17", "Paula Grey", emails=["grey.home@example.com"], dob="2011-04-04")
    out = _decided([emma, olivia, initial, herself, married, family_first, paul, paula])
    for doc in (olivia, initial, family_first, married):
        got = out[doc[0]]
        assert isinstance(got, Unlinked) and got.reason == "disagree", doc[0]
        assert got.detail.endswith(f"its name cannot be client {sor('emma')}'s"), got.detail
    assert clients_of(out[herself[0]]) == {sor("emma")}
    got = out[paula[0]]
    assert isinstance(got, Unlinked) and got.reason == "disagree"


def test_mail_from_an_address_that_does_not_parse_is_not_the_practice_s_own() -> None:
    """`N/A <n/a>` writing to the practice was listed as internal (staff only), a row an
    operator skips: it is someone the practice cannot tell, so `no_key`."""
    out = _decided([named_mail("m1", ("Kim Nguyen", "N/A"), [(None, "desk@practice.example")]),
                    named_mail("m2", (None, "frontdesk@practice.example"), [(None, "desk@practice.example")])])
    got = out[DocRef("gmail", "box", "email", "m1")]
    assert isinstance(got, Unlinked) and got.reason == "no_key", got
    staff = out[DocRef("gmail", "box", "email", "m2")]
    assert isinstance(staff, Unlinked) and staff.reason == "internal"
    out = _decided([named_mail("m3", ("Kim Nguyen", None), [(None, "desk@practice.example")]),  # type: ignore[list-item]
                    named_mail("m4", (None, "frontdesk@practice.example"), [(None, "undisclosed-recipients:;")]),
                    named_mail("m5", (None, "/O=EXCHANGELABS/OU=EXCHANGE/CN=RECIPIENTS/CN=FRONTDESK"),
                               [(None, "desk@practice.example")])])
    got = out[DocRef("gmail", "box", "email", "m3")]
    assert isinstance(got, Unlinked) and got.reason == "no_key", "a name with no address is someone"
    for sid in ("m4", "m5"):  # an empty group, an Exchange X.500 sender: the practice's own mail
        got = out[DocRef("gmail", "box", "email", sid)]
        assert isinstance(got, Unlinked) and got.reason == "internal", (sid, got)
