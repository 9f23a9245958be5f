"""Every stable error code has its meaning in the task detail view and a row in
docs/architecture.md's table (a reviewer found 17 codes, INDEX_CORRUPT and DISK_FULL among
them, shown as "see the error-code table")."""

from __future__ import annotations

import re

from engine.events import ErrorCode
from lorch_tui.errorinfo import MEANINGS
from tests.helpers import REPO


def test_every_error_code_has_a_meaning() -> None:
    assert [c.value for c in ErrorCode if c.value not in MEANINGS] == []


def test_each_code_is_in_the_architecture_table_and_said_in_words() -> None:
    """The detail view's sentence may be shorter than the table's, never missing."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    for code in ErrorCode:
        row = re.search(rf"^\| `{code.value}` \| (.*) \|$", doc, re.M)
        assert row is not None, f"{code.value} is not in the error-code table of docs/architecture.md"
        assert len(MEANINGS[code.value].split()) >= 5, code.value
