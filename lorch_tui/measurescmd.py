"""``lorchestra clients show X --measures``: a client's outcome measures over time (PHI).

Reads the ``measurement`` documents the project stage linked to the client and prints one
table per measure (date, score, band, change from first and from previous, flags): the same
table as the chart's ``measures.md``, and says when a response of the client that could not
be scored carries a critical flag. Output goes to this process's stdout only.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.config.load import load
from engine.index.query import ObjectCorrupt
from engine.measures.read import client_measurements, trend_tables
from engine.measures.score import raised
from engine.store.fsutil import read_regular
from engine.store.workspace import Workspace
from lorch_tui.bigtable import clean
from lorch_tui.docread import object_corrupt
from lorch_tui.querycmd import open_store

COLUMNS = ["date", "score", "band", "change from first", "change from previous", "flags"]


def for_client(ns: argparse.Namespace, client_id: str) -> list[dict[str, Any]]:
    """The client's measurements, oldest first."""
    store, _ws = open_store(ns)
    try:
        return client_measurements(store, client_id)
    except ObjectCorrupt as exc:
        raise object_corrupt(exc) from None
    finally:
        store.close()


CRITICAL_LINE = re.compile(r"^\*\*A critical item was answered, or its answer is not known, in (\d+) response\(s\)")
"""The bold line of a chart's ``measures.md`` (:mod:`engine.measures.chart`)."""


def critical_unscored(ns: argparse.Namespace, folder: str) -> dict[str, Any] | None:
    """What the client's chart says of responses that could not be scored and carry a
    critical flag (a positive item 9, or one whose answer is not known): their count and
    flags, read from the chart's ``measures.md``, which settled the copies of a submission
    (one answered on the Forms API and in its linked sheet is one response there); None when
    it says nothing. `--measures` listed the scores only."""
    ws = Workspace(load(getattr(ns, "config", None), getattr(ns, "workspace", None)).workspace)
    try:
        text = read_regular(ws.root / "clients" / folder / "measures.md").decode("utf-8", "replace")
    except (OSError, ValueError):
        return None  # no chart yet, or not a regular file: nothing to say
    lines = text.splitlines()
    count = next((int(m.group(1)) for m in map(CRITICAL_LINE.match, lines) if m), 0)
    if not count:
        return None
    table = lines[lines.index("## Not scored"):] if "## Not scored" in lines else []
    flags = sorted({f.strip() for row in table if row.startswith("| ") and row.count(" | ") >= 5
                    for f in row.split(" | ")[4].split(",") if "_" in f and raised([f.strip()])})
    return {"responses": count, "flags": flags, "chart": str(ws.root / "clients" / folder / "measures.md")}


def print_trends(console: Console, measurements: list[dict[str, Any]], zone: str = "UTC") -> None:
    """One table per measure, days in ``zone`` (``clients.timezone``), or a line saying there
    is none."""
    tables = trend_tables(measurements, zone)
    if not tables:
        console.print("no scored questionnaires", markup=False)
    else:
        console.print(f"Dates are the day ({zone}) each questionnaire was answered; responses that "
                      "could not be scored are listed in the chart's measures.md.", markup=False)
    for title, rows in tables.items():
        table = Table(title=title)
        for col in COLUMNS:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(Text(clean(v)) for v in row))
        console.print(table)
