"""A family name alone is anyone of the family: it never fits a client by itself.

The acceptance reviewer's case: client Lily Park (the family's address parkfamily@...) and
her brother Noah (a client without an address). A check-in form answered from the family
address with the child's name "Park" (PHQ-9 item 9 positive) went into Lily's chart, as did
a mail from ``Park <parkfamily@...>`` and one from ``White <carol.white@...>`` into Carol
White's. "Mr Park" was already anyone of the family; a lone "Park" is too: ``disagree``,
listed by ``clients unlinked``. A lone given name ("Lily") still fits its client.
End to end: the real taps, transforms, index and project stage (:mod:`tests.engine.people_pipeline`).
"""

from __future__ import annotations

import pytest

from engine.clients.keys import name_text
from engine.clients.namematch import could_be, fits
from tests.engine.people_pipeline import contact, form_row, mail, outcome, practice, run

FAMILY = "parkfamily@home.example"


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    tmp = tmp_path_factory.mktemp("lone-family")
    cfg = practice(tmp, contacts=[
        contact("c-lily", "Lily", "Park", email=FAMILY, dob="2012-03-04"),
        contact("c-noah", "Noah", "Park", dob="2014-06-06"),
        contact("c-carol", "Carol", "White", email="carol.white@mail.example", dob="1975-05-05"),
    ], mails=[
        mail("m-park", f"Park <{FAMILY}>", "Dr Ruth Hale <ruth@calmwaters.example>"),
        mail("m-park-caps", f"PARK <{FAMILY}>", "ruth@calmwaters.example"),
        mail("m-white", "White <carol.white@mail.example>", "ruth@calmwaters.example"),
        mail("m-lily", f"Lily <{FAMILY}>", "ruth@calmwaters.example"),
        mail("m-lily-park", f"Lily Park <{FAMILY}>", "ruth@calmwaters.example"),
    ], forms=[
        form_row(2, FAMILY, "Park", "Nearly every day"),
        form_row(3, FAMILY, "Lily"),
    ])
    run(cfg)
    return outcome(tmp / "ws")


def test_a_lone_family_name_fits_no_one(done: dict[tuple[str, str], str]) -> None:
    for mid in ("m-park", "m-park-caps", "m-white"):
        assert done[("email", mid)].startswith("unlinked disagree: "), (mid, done[("email", mid)])
        assert "a display name cannot be the address holder's" in done[("email", mid)]
    row = done[("form_response", f"{SHEET_ID}/2")]
    assert row.startswith("unlinked disagree: email:parkfamily@home.example; its name cannot be client "), row
    # its scores (item 9 positive) are in no chart either; Lily's own are in hers
    assert ("measurement", f"sheets/checkin/{SHEET_ID}/2/phq9.v1") not in done
    assert done[("measurement", f"sheets/checkin/{SHEET_ID}/3/phq9.v1")] == "Lily Park"


def test_a_lone_given_name_and_the_full_name_still_fit(done: dict[tuple[str, str], str]) -> None:
    assert done[("email", "m-lily")] == "Lily Park"
    assert done[("email", "m-lily-park")] == "Lily Park"
    assert done[("form_response", f"{SHEET_ID}/3")] == "Lily Park"


@pytest.mark.parametrize(("lone", "name", "ok"), [
    ("Park", "Lily Park", False), ("PARK", "Lily Park", False), ("White", "Carol Ann White", False),
    ("Ann", "Carol Ann White", False), ("Lily", "Lily Park", True), ("L.", "Lily Park", True),
    ("Park", "Park", True), ("Lily Park", "Park", False),
    # a generational suffix or a word of relation counts before the lone-word rule: the
    # shortcut let "Tim" be "Tim Doe Jr" and "Lily (mother)" a client recorded as "Lily"
    ("Tim", "Tim Doe Jr", False), ("Lily (mother)", "Lily", False), ("Lily's mom", "Lily", False),
    ("Tim Doe Sr", "Tim", False), ("Ben (child)", "Ben", False), ("Tim", "Tim Doe", True),
])
def test_the_lone_word_rule(lone: str, name: str, ok: bool) -> None:
    a, b = name_text(lone), name_text(name)
    assert a and b and fits(a, b) is ok and fits(b, a) is ok


def test_a_lone_family_name_written_first_on_the_record_fits_no_one() -> None:
    """``山田 太郎`` (family first): the record's family name field says which word it is."""
    assert could_be("山田", ["山田 太郎"]) and not could_be("山田", ["山田 太郎"], ["山田"])
    assert not could_be("park", ["park lily"], ["park"])


SHEET_ID = "1IntakeDemoLinkedResponses000000000000000000/1650287441"
