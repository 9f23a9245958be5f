"""``lorchestra clients show X --measures``: a client's outcome measures over time (PHI).

Reads the ``measurement`` documents the project stage linked to the client and prints one
table per measure (date, score, band, change from first and from previous, flags): the same
table as the chart's ``measures.md``. Output goes to this process's stdout only.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.index.query import ObjectCorrupt
from engine.measures.read import client_measurements, trend_tables
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
