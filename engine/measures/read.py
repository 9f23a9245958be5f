"""Reading a client's measurements back from the index (``clients show X --measures``)."""

from __future__ import annotations

from typing import Any

from engine.clients.markdown import Dates
from engine.index.query import Query, Store
from engine.measures.chart import measure_rows, ordered


def client_measurements(store: Store, client_id: str) -> list[dict[str, Any]]:
    """Every measurement linked to the client, oldest first."""
    docs = store.find(Query(kind="measurement", client_id=client_id, limit=None))
    return ordered([store.document(d) for d in docs])


def trend_tables(measurements: list[dict[str, Any]], zone: str = "UTC") -> dict[str, list[list[str]]]:
    """``"<measure> v<version> (<code>)"`` -> its rows (date, score, band, changes, flags),
    days in ``zone`` (``clients.timezone``) as in the chart's ``measures.md``."""
    dates = Dates(zone)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in measurements:
        groups.setdefault((str(m["measure"]), int(m["measure_version"])), []).append(m)
    return {f"{mid} v{v} ({items[-1].get('code')})": measure_rows(items, dates)
            for (mid, v), items in sorted(groups.items())}
