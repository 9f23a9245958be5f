"""``O'Neill`` and ``ONeill`` give one name-and-birth-date key, as the name rule takes them for one name.

The acceptance reviewer's case: client "Siobhán O'Neill" (1995-04-04) and an intake row
"Siobhan ONeill" with her birth date stayed ``no_match``: the key folded the apostrophe into
a space (``siobhan o neill``) and the row wrote none (``siobhan oneill``). The key now drops
an apostrophe instead (every letter stays, in order, so no two names that differ in a letter
or in where a space stands become one key): the row links. "O Neill", with a space, is still
another key (recall only: no link, never a wrong one).
End to end: the real taps, transforms, index and project stage (:mod:`tests.engine.people_pipeline`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.clients.decide import before_apostrophes, identity
from engine.clients.keys import name_dob_key, name_text
from engine.clients.model import DocFacts, DocRef
from tests.engine.people_pipeline import contact, intake, outcome, practice, run


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    tmp: Path = tmp_path_factory.mktemp("apostrophe")
    cfg = practice(tmp, contacts=[
        contact("c-siobhan", "Siobhán", "O'Neill", dob="1995-04-04"),
        contact("c-dangelo", "Marco", "D’Angelo", dob="1970-07-07"),
    ], intakes=[
        intake(2, "Siobhan ONeill", "1995-04-04"),
        intake(3, "ONeill, Siobhan", "1995-04-04"),
        intake(4, "Marco DAngelo", "1970-07-07"),
        intake(5, "Siobhan O Neill", "1995-04-04"),
    ])
    run(cfg)
    return outcome(tmp / "ws")


def test_a_name_written_without_its_apostrophe_links_by_name_and_birth_date(done: dict[tuple[str, str], str]) -> None:
    assert done[("contact", "1IntakeSheet/0/2")] == "Siobhán O'Neill"
    assert done[("contact", "1IntakeSheet/0/3")] == "Siobhán O'Neill"
    assert done[("contact", "1IntakeSheet/0/4")] == "Marco D’Angelo"
    assert done[("contact", "1IntakeSheet/0/5")] == "unlinked no_match: name_dob:siobhan o neill|1995-04-04"


def test_only_the_apostrophe_goes() -> None:
    same = {name_dob_key(n, "1995-04-04") for n in ("Siobhán O'Neill", "Siobhan ONeill", "SIOBHAN O’NEILL",
                                                       "O'Neill, Siobhan")}
    assert same == {"name_dob:siobhan oneill|1995-04-04"}
    assert name_dob_key("Siobhan O Neill", "1995-04-04") == "name_dob:siobhan o neill|1995-04-04"
    assert name_dob_key("Jo'Ann Lee", "1990-01-01") != name_dob_key("Jo Ann Lee", "1990-01-01")


def test_a_link_pinned_with_the_key_of_before_holds() -> None:
    """A ``link:`` pinned before the key dropped apostrophes is compared that way once."""
    name = name_text("Siobhan O'Neill")
    assert name == "siobhan o neill"
    facts = DocFacts(DocRef("sheets", "intake", "contact", "x/0/2"), None, None,
                     keys=(name_dob_key("Siobhan O'Neill", "1995-04-04") or "",), name=name)
    before = DocFacts(facts.ref, None, None, keys=("name_dob:siobhan o neill|1995-04-04",), name=name)
    assert before_apostrophes(facts) == identity(before) != identity(facts)
