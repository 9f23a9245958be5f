"""The LATEST table's drift column, driven with Pilot on a workspace the real CLI filled.

mail-alpha has two runs of the same shape; its LATEST manifest is then edited as if the
source had dropped ``snippet``, a field the Gmail transform reads: the row shows ``!``.
"""

from __future__ import annotations

from typing import Any

import orjson
from textual.widgets import DataTable

from lorch_tui.app import LorchApp
from tests.tui.conftest import Setup
from tests.tui.dash import cell, until
from tests.tui.fake_engine import FakeEngine

SIZE = (130, 35)


def drop_field(setup: Setup, account: str, path: str) -> None:
    acct = next(setup.workspace.glob(f"vault/*/*/{account}"))
    latest = orjson.loads((acct / "LATEST.json").read_bytes())
    mpath = acct / f"dt={latest['dt']}" / f"run_id={latest['run_id']}" / "manifest.json"
    m = orjson.loads(mpath.read_bytes())
    for info in m["streams"].values():
        info["fields"]["paths"].remove(path)
    mpath.write_bytes(orjson.dumps(m))


async def test_drift_marks_in_the_latest_table(populated: Setup) -> None:
    drop_field(populated, "mail-alpha", "snippet")
    loaded = populated.load()
    app = LorchApp(loaded, FakeEngine(loaded), watch=False)
    async with app.run_test(size=SIZE) as pilot:
        table: DataTable[Any] = app.query_one("#latest-table", DataTable)
        await until(pilot, lambda: table.row_count == 3, what="the first scan")
        assert cell(table, "mail-alpha", "drift") == "!"
        others = {cell(table, k, "drift") for k in ("clinic-bravo",)}
        assert others <= {"✓", "?"}
