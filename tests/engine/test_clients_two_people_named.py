"""A name that lists two clients is neither's alone: it is reported, never linked to one.

The acceptance reviewer's case: clients Lily Park (the family's address) and her brother Noah
(no address). A check-in form from the family address whose child's name is "Lily & Noah
Park" or "Noah Park, Lily Park" (PHQ-9 item 9 positive) went into Lily's chart, and so did a
QuickBooks customer "Lily & Noah Park" with the family's address, and its invoice (one payer
for two children must not be linked as a customer record), and a mail from ``Lily & Noah
Park <parkfamily@...>``: "a record naming two people fits each" linked it to the one whose
keys it has. Now a name that also lists another client, not the one linked, is
``disagree`` (as "Noah Park" alone already was), whichever way it lists them. A couple of
whom only one is a client ("Mark & Carol White", Mark no client) still links to Carol.
End to end: the real taps, transforms, index and project stage (:mod:`tests.engine.people_pipeline`).
"""

from __future__ import annotations

import pytest

from engine.clients.keys import name_text
from engine.clients.namematch import lists
from tests.engine.people_pipeline import (
    contact,
    customer,
    form_row,
    invoice,
    mail,
    outcome,
    practice,
    run,
)

FAMILY = "parkfamily@home.example"
SHEET_ID = "1IntakeDemoLinkedResponses000000000000000000/1650287441"


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    tmp = tmp_path_factory.mktemp("two-named")
    cfg = practice(tmp, contacts=[
        contact("c-lily", "Lily", "Park", email=FAMILY, dob="2012-03-04"),
        contact("c-noah", "Noah", "Park", dob="2014-06-06"),
        contact("c-carol", "Carol", "White", email="carol.white@mail.example", dob="1975-05-05"),
    ], mails=[
        mail("m-both", f"Lily & Noah Park <{FAMILY}>", "ruth@calmwaters.example"),
        mail("m-both-and", f"Noah and Lily Park <{FAMILY}>", "ruth@calmwaters.example"),
        mail("m-lily", f"Lily Park <{FAMILY}>", "ruth@calmwaters.example"),
        mail("m-couple", "Mark & Carol White <carol.white@mail.example>", "ruth@calmwaters.example"),
    ], forms=[
        form_row(2, FAMILY, "Lily & Noah Park", "Nearly every day"),
        form_row(3, FAMILY, "Noah Park, Lily Park", "Nearly every day"),
        form_row(4, FAMILY, "Lily Park"),
    ], customers=[
        customer("13", "Lily & Noah Park", FAMILY),
        customer("14", "Mark & Carol White", "carol.white@mail.example"),
    ], invoices=[invoice("113", "13", "Lily & Noah Park"), invoice("114", "14", "Mark & Carol White")])
    run(cfg)
    return outcome(tmp / "ws")


def test_a_form_naming_both_children_is_in_no_chart(done: dict[tuple[str, str], str]) -> None:
    for row in (2, 3):
        got = done[("form_response", f"{SHEET_ID}/{row}")]
        assert got.startswith(f"unlinked disagree: email:{FAMILY}; it names another client, not client "), got
        assert ("measurement", f"sheets/checkin/{SHEET_ID}/{row}/phq9.v1") not in done  # item 9: no chart
    assert done[("form_response", f"{SHEET_ID}/4")] == "Lily Park"


def test_a_customer_paying_for_both_children_is_not_linked_nor_its_invoices(done: dict[tuple[str, str], str]) -> None:
    assert done[("contact", "13")].startswith(f"unlinked disagree: email:{FAMILY}; it names another client, not ")
    assert done[("invoice", "113")] == "unlinked ref_unlinked: quickbooks:books:contact:13"


def test_a_mail_signed_by_both_children_is_in_no_chart(done: dict[tuple[str, str], str]) -> None:
    for mid in ("m-both", "m-both-and"):
        got = done[("email", mid)]
        assert got.startswith(f"unlinked disagree: email:{FAMILY}; its display name is client "), got
        assert got.endswith("'s too, who is not linked")
    assert done[("email", "m-lily")] == "Lily Park"


def test_a_couple_of_whom_one_is_a_client_still_links_to_that_one(done: dict[tuple[str, str], str]) -> None:
    assert done[("contact", "14")] == "Carol White"
    assert done[("invoice", "114")] == "Carol White"
    assert done[("email", "m-couple")] == "Carol White"


@pytest.mark.parametrize(("name", "person", "besides", "listed"), [
    ("Lily & Noah Park", "Noah Park", ["Lily Park"], True),
    ("Noah Park, Lily Park", "Noah Park", ["Lily Park"], True),
    ("Noah and Lily Park", "Noah Park", ["Lily Park"], True),
    ("Lily Park", "Noah Park", ["Lily Park"], False),
    ("Ann Marie Doe", "Ann Doe", ["Ann Marie Doe"], False),   # no word beyond the linked client's
    ("Ann M Doe", "Mark Doe", ["Ann Doe"], False),           # an initial names no one
    ("Siobhan ONeill & Ann Doe", "Siobhán O'Neill", ["Ann Doe"], True),
    ("Lily & Noah Park", "Noah Park", ["Lily Park", "Noah Park"], False),  # both linked
])
def test_who_a_name_lists(name: str, person: str, besides: list[str], listed: bool) -> None:
    folded = name_text(name)
    assert folded
    assert lists(folded, name_text(person) or "", [name_text(b) or "" for b in besides]) is listed
