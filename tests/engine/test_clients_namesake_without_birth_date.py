"""Name and birth date link only when no other client of that name could be the person.

The acceptance reviewer's case: two clients named John Smith, one without a birth date on
file, the other born 1960-01-01. An intake row "John Smith, 1960-01-01" with no other key
was linked to the second by ``name_dob``, silently: the first might be that person (their
birth date is not on file). Now it is ``disagree`` ("another client of its name has no birth
date on file"), listed by ``clients unlinked``; a ``link:`` settles it. A row that also has a
key of its own (an address only that client holds) still links; with one John Smith, or
when the other's birth date is known, the name and birth date link as before.
End to end: the real taps, transforms, index and project stage (:mod:`tests.engine.people_pipeline`).
"""

from __future__ import annotations

import pytest

from tests.engine.people_pipeline import client_ids, contact, intake, outcome, practice, run


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    tmp = tmp_path_factory.mktemp("namesake")
    cfg = practice(tmp, contacts=[
        contact("c-john-nodob", "John", "Smith", email="js.old@mail.example"),
        contact("c-john-1960", "John", "Smith", email="john.smith60@mail.example", dob="1960-01-01"),
        contact("c-ava-1990", "Ava", "Chen", dob="1990-02-02"),
        contact("c-ava-1991", "Ava", "Chen", dob="1991-03-03"),
        contact("c-kim", "Alex", "Kim", dob="1985-05-05"),
        # the same name written with and without its apostrophe (one name_dob key)
        contact("c-siobhan-1980", "Siobhan", "ONeill", dob="1980-01-01"),
        contact("c-siobhan-nodob", "Siobhan", "O'Neill", email="siobhan@mail.example"),
    ], intakes=[
        intake(2, "John Smith", "1960-01-01"),
        intake(3, "John Smith", "1960-01-01", email="john.smith60@mail.example"),
        intake(4, "Ava Chen", "1990-02-02"),
        intake(5, "Alex Kim", "1985-05-05"),
        intake(6, "Siobhan ONeill", "1980-01-01"),
    ])
    run(cfg)
    ws = tmp / "ws"
    with_ids = {cid: name for name, cid in client_ids(ws).items()}
    return outcome(ws), with_ids


def test_a_namesake_without_a_birth_date_leaves_the_row_unlinked(
        done: tuple[dict[tuple[str, str], str], dict[str, str]]) -> None:
    got = done[0][("contact", "1IntakeSheet/0/2")]
    assert got.startswith("unlinked disagree: name_dob:john smith|1960-01-01; another client of its name has "
                          "no birth date on file, not only client "), got


def test_a_key_of_the_client_s_own_still_links(done: tuple[dict[tuple[str, str], str], dict[str, str]]) -> None:
    assert done[0][("contact", "1IntakeSheet/0/3")] == "John Smith"


def test_name_and_birth_date_link_when_no_one_else_could_be_the_person(
        done: tuple[dict[tuple[str, str], str], dict[str, str]]) -> None:
    assert done[0][("contact", "1IntakeSheet/0/4")] == "Ava Chen"   # the other Ava Chen's birth date is known
    assert done[0][("contact", "1IntakeSheet/0/5")] == "Alex Kim"


def test_a_namesake_written_with_an_apostrophe_counts_too(
        done: tuple[dict[tuple[str, str], str], dict[str, str]]) -> None:
    """"Siobhan O'Neill" without a birth date may be the "Siobhan ONeill, 1980-01-01" of the
    row as much as the client of that spelling born then: the lookup went by the exact
    spelling and linked silently."""
    got = done[0][("contact", "1IntakeSheet/0/6")]
    assert got.startswith("unlinked disagree: name_dob:siobhan oneill|1980-01-01; another client of its name "), got
