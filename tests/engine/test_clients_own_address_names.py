"""A display name on the practice's own address is still checked: another client's name there is reported.

The acceptance reviewer's case: the booking portal writes ``From: Noah Park
<bookings@calmwaters...>`` to the family's address, which only Lily Park holds (her brother
Noah is a client with no address). The practice's own participants were left out of the
display-name check, so the mail (about Noah) went into Lily's chart; so did ``Noah Park via
Calm Waters <bookings@...>`` and a Cc of ``Noah Park <dr.hale@gmail.com>``. The same name on
an address outside the practice was already ``disagree`` ("its display name is client ...'s,
who is not linked"); on an own address it is now too. The practice's and the therapist's own
names ("Dr Ruth Hale", "Calm Waters") name no client and change nothing, and a display name
of the client the mail is linked to is fine.
End to end: the real taps, transforms, index and project stage (:mod:`tests.engine.people_pipeline`).
"""

from __future__ import annotations

import pytest

from tests.engine.people_pipeline import client_ids, contact, mail, outcome, practice, run

FAMILY = "parkfamily@home.example"


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    tmp = tmp_path_factory.mktemp("own-names")
    cfg = practice(tmp, contacts=[
        contact("c-lily", "Lily", "Park", email=FAMILY, dob="2012-03-04"),
        contact("c-noah", "Noah", "Park", dob="2014-06-06"),
    ], mails=[
        mail("m-portal", "Noah Park <bookings@calmwaters.example>", FAMILY),
        mail("m-via", "Noah Park via Calm Waters <bookings@calmwaters.example>", f"Lily Park <{FAMILY}>"),
        mail("m-cc", "Dr Ruth Hale <ruth@calmwaters.example>", FAMILY, cc="Noah Park <dr.hale@gmail.com>"),
        mail("m-school", "Noah Park <noah@school.example>", f"ruth@calmwaters.example, {FAMILY}"),
        mail("m-hale", "Dr Ruth Hale <ruth@calmwaters.example>", f"Lily Park <{FAMILY}>",
             cc="Calm Waters <frontdesk@calmwaters.example>"),
        mail("m-portal-lily", "Lily Park via Calm Waters <bookings@calmwaters.example>", FAMILY),
        mail("m-staff", "Noah Park <bookings@calmwaters.example>", "ruth@calmwaters.example"),
    ])
    run(cfg)
    return outcome(tmp / "ws"), client_ids(tmp / "ws")


def test_another_client_s_name_on_an_own_address_leaves_the_mail_unlinked(
        done: tuple[dict[tuple[str, str], str], dict[str, str]]) -> None:
    got, ids = done
    noah = ids["Noah Park"]
    for mid, own in (("m-portal", "bookings@calmwaters.example"), ("m-via", "bookings@calmwaters.example"),
                     ("m-cc", "drhale@gmail.com")):
        assert got[("email", mid)] == (f"unlinked disagree: own:{own}; its display name is client {noah}'s, "
                                       "who is not linked"), (mid, got[("email", mid)])
    # the control: the same name on an address outside the practice, as before
    assert got[("email", "m-school")] == (f"unlinked disagree: email:noah@school.example; its display name is "
                                          f"client {noah}'s, who is not linked")


def test_the_practice_s_own_names_and_the_linked_client_s_change_nothing(
        done: tuple[dict[tuple[str, str], str], dict[str, str]]) -> None:
    got = done[0]
    assert got[("email", "m-hale")] == "Lily Park"
    assert got[("email", "m-portal-lily")] == "Lily Park"
    assert got[("email", "m-staff")] == "unlinked internal: "  # staff only: no one's, whatever the name
