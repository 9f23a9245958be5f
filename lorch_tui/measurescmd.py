"""``lorchestra clients show X --measures``: a client's outcome measures over time (PHI).

Reads the ``measurement`` documents the project stage linked to the client and prints one
table per measure (date, score, band, change from first and from previous, flags): the same
table as the chart's ``measures.md``, and says when a response of the client that could not
be scored carries a critical flag. Output goes to this process's stdout only.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.canon.publish import AccountFiles
from engine.config.load import load
from engine.index.query import ObjectCorrupt
from engine.measures.read import client_measurements, trend_tables
from engine.measures.score import MEASURES_ACCOUNT, MEASURES_SOURCE, raised
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


def critical_unscored(ns: argparse.Namespace, conn: Any, client_id: str) -> list[dict[str, Any]]:
    """The client's responses that could not be scored and carry a critical flag (a positive
    item 9, or one whose answer is not known), from the measures' rejects file: they are in
    the chart's measures.md, and `--measures` said nothing of them."""
    ws = Workspace(load(getattr(ns, "config", None), getattr(ns, "workspace", None)).workspace)
    path = AccountFiles(ws.canonical / MEASURES_SOURCE, MEASURES_ACCOUNT).rejects
    out: list[dict[str, Any]] = []
    try:
        lines = read_regular(path).splitlines()
    except OSError:
        return out  # none yet (every response scored), or unreadable: the chart still lists them
    for raw in lines:
        try:
            line = orjson.loads(raw)
            source, account, entity = str(line["response"]).split("/", 2)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if raised(line.get("flags")) and conn.execute(
                "SELECT 1 FROM client_links WHERE client_id = ? AND source = ? AND account = ? "
                "AND kind = 'form_response' AND entity_id = ?", (client_id, source, account, entity)).fetchone():
            out.append({k: line.get(k) for k in ("response", "measure", "reason")} | {"flags": raised(line["flags"])})
    return out


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
