"""The dashboard's scan counts the client layer once per change of the index database, not
on every rescan (counting links reads a table as large as the linked documents)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.clients.tables import ensure_schema
from engine.store.workspace import Workspace
from lorch_tui import scan


def unlinked(con: sqlite3.Connection, n: int) -> None:
    con.execute("INSERT INTO client_unlinked VALUES ('gmail', 'a', 'email', ?, 'no_key', '')", (f"m{n}",))
    con.commit()


def test_counts_are_read_once_per_change_of_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.vector_store.mkdir(parents=True)
    assert scan.client_counts(ws) is None  # no index yet
    con = sqlite3.connect(ws.vector_store / "index.sqlite")
    con.execute("PRAGMA journal_mode=WAL")
    ensure_schema(con)
    unlinked(con, 1)
    reads: list[Path] = []
    real = scan._count_clients

    def counted(path: Path) -> dict[str, int] | None:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(scan, "_count_clients", counted)
    first = scan.client_counts(ws)
    assert first is not None and first["unlinked"] == 1 and first["clients"] == 0
    for _ in range(5):  # rescans while the index stays as it is
        assert scan.client_counts(ws) == first
    assert len(reads) == 1
    unlinked(con, 2)  # the index changes (a project run, a review)
    again = scan.client_counts(ws)
    assert again is not None and again["unlinked"] == 2 and len(reads) == 2
    con.close()
