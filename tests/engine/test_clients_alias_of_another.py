"""A ``names:`` entry that is another client's name is reported and not applied.

The acceptance reviewer's case: the overrides file's ``names:`` gave client Lily Park the
other name "Noah Park" (her brother's, also a client: a typo, a line pasted under the wrong
id), and nothing said so. ``lorchestra validate`` now warns, counting such entries without
showing the name (validate prints no PHI), the project stage does not apply them (a name
listing both, "Lily & Noah Park", would have been excused as hers) and counts them in
``OVERRIDE_UNUSED``, and ``lorchestra clients conflicts`` names the client id.
End to end: the real taps, transforms, index and project stage (:mod:`tests.engine.people_pipeline`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.people_pipeline import client_ids, contact, form_row, outcome, practice, run
from tests.helpers import clean_env, run_cli

FAMILY = "parkfamily@home.example"
SHEET_ID = "1IntakeDemoLinkedResponses000000000000000000/1650287441"


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("alias-of-another")
    contacts = [contact("c-lily", "Lily", "Park", email=FAMILY, dob="2012-03-04"),
                contact("c-noah", "Noah", "Park", dob="2014-06-06"),
                contact("c-emily", "Emily", "Stone", email="emily@mail.example", dob="1990-01-01")]
    forms = [form_row(2, FAMILY, "Lily & Noah Park"), form_row(3, FAMILY, "Noah Park"),
             form_row(4, "emily@mail.example", "Emily Brown")]
    cfg = practice(tmp, contacts=contacts, forms=forms)
    run(cfg)  # the ids, for the overrides file
    ids = client_ids(tmp / "ws")
    cfg = practice(tmp, contacts=contacts, forms=forms,
                   overrides={"names": {ids["Lily Park"]: ["Noah Park"], ids["Emily Stone"]: ["Emily Brown"]}})
    run(cfg)
    return tmp, cfg


def test_validate_warns_without_the_name(done: tuple[Path, Path]) -> None:
    res = run_cli("--config", str(done[1]), "validate", "--skip-permissions", env=clean_env())
    out = res.stdout + res.stderr
    assert "1 names: entr(y/ies) are another client's name in the last projection" in out, out
    assert "Noah" not in out and "Park" not in out and "Emily" not in out


def test_the_entry_is_not_applied_and_conflicts_names_its_client(done: tuple[Path, Path]) -> None:
    tmp, cfg = done
    got = outcome(tmp / "ws")
    assert got[("form_response", f"{SHEET_ID}/2")].startswith("unlinked disagree: ")
    assert got[("form_response", f"{SHEET_ID}/3")].startswith("unlinked disagree: ")
    assert got[("form_response", f"{SHEET_ID}/4")] == "Emily Stone"  # a name of her own is applied
    lily = client_ids(tmp / "ws")["Lily Park"]
    res = run_cli("--config", str(cfg), "clients", "conflicts", env=clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"names:{lily} (another client's name)" in res.stdout, res.stdout
    log = "".join(p.read_text() for p in (tmp / "ws" / "logs").glob("*.log"))
    assert '"code":"OVERRIDE_UNUSED","count":1}' in log
