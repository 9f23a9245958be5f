"""The form responses the project task's reader keeps for the measures step, in a file of their own.

Why a module of its own: the kept responses are shared by three parties that must never wait
on one another, so where they live and how they are read is one small contract. The reader
(:class:`engine.clients.stream.Scratch`) writes them beside the scratch database
(:func:`kept_path`, attached as ``kept``) and commits them once (``Scratch.seal``); a forked
scorer (:mod:`engine.measures.prescore`) reads them while the task writes its decisions to
the main scratch file and writes its outcomes to a third file (:func:`scores_path`); the
measures step (:mod:`engine.measures.spill`) reads either, in scoring order, with each
response's one client from the decisions (:data:`CLIENT_OF`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KEPT_CACHE_KIB = 1024
"""Page cache of the attached kept responses (written and read in key order: SQLite's
default of 2 MiB per attached database held pages never read again, at a peak of 199 MiB)."""

KEPT_SCHEMA = """
CREATE TABLE kept.responses (
    pass      INTEGER NOT NULL,
    acct      INTEGER NOT NULL,
    entity_id TEXT NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (pass, acct, entity_id)
) WITHOUT ROWID;
"""
"""``responses`` keeps the bytes of each document of the kind
:data:`engine.clients.stream.KEPT_KIND` (the form responses, which the measures step scores
next: read here sequentially instead of one object file each), ``pass`` 0 for those with a
``response_id``, 1 for the others, so ``ORDER BY pass, acct, entity_id`` is the order the
measures step scores them in (:func:`kept_documents`)."""
CLIENT_OF = ("(SELECT CASE WHEN count(*) = 1 THEN max(l.client_id) END FROM links l "
             "WHERE l.kind = 'form_response' AND l.source = {s} AND l.account = {a} AND l.entity_id = {e})")
"""A response's one client (NULL when it has none or several), from the decisions."""


def kept_path(path: Path) -> Path:
    """The database file of the kept responses of the scratch database at ``path``."""
    return path.with_name(path.name + "-kept")


def scores_path(path: Path) -> Path:
    """The database file the forked scorer writes (:mod:`engine.measures.prescore`)."""
    return path.with_name(path.name + "-scores")


def attach_kept(conn: sqlite3.Connection, path: Path) -> bool:
    """Attach the kept responses of the scratch database at ``path`` as ``kept`` (no
    journal: the scratch files are rebuilt by every run); False when there are none."""
    kept = kept_path(path)
    if not kept.is_file():
        return False
    conn.execute("ATTACH DATABASE ? AS kept", (str(kept),))
    for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{KEPT_CACHE_KIB}"):
        conn.execute(f"PRAGMA kept.{pragma}")
    return True


def kept_documents(conn: sqlite3.Connection, batch: int = 512, *, table: str = "kept.responses",
                   columns: tuple[str, ...] = ("data",)) -> Iterator[tuple[Any, ...]]:
    """(source, account, entity_id, bytes, its one client or None) of every kept document
    (:data:`engine.clients.stream.KEPT_KIND`), those with a ``response_id`` first, each group in (source, account,
    entity_id) order (call after :meth:`engine.clients.stream.Scratch.resolve`).

    ``conn`` is any connection whose main database is the scratch database, with the kept
    responses attached (the measures step's, which writes other tables meanwhile: rows are
    fetched ``batch`` at a time, each batch a query of its own, so no statement stays open
    across those writes). ``table`` and ``columns``: another table keyed like the kept
    responses (a forked scorer's, :mod:`engine.measures.prescore`) and the columns to give
    in place of the bytes."""
    names = {acct: (source, account) for acct, source, account in conn.execute("SELECT * FROM accts")}
    client = CLIENT_OF.format(s="a.source", a="a.account", e="r.entity_id")
    wanted = ", ".join(f"r.{c}" for c in columns)
    last: tuple[int, int, str] = (-1, -1, "")
    while True:
        rows = conn.execute(f"SELECT r.pass, r.acct, r.entity_id, {wanted}, {client} "  # noqa: S608
                            f"FROM {table} r JOIN accts a ON a.acct = r.acct "
                            "WHERE (r.pass, r.acct, r.entity_id) > (?, ?, ?) "
                            "ORDER BY r.pass, r.acct, r.entity_id LIMIT ?", (*last, batch)).fetchall()
        if not rows:
            return
        for _, acct, entity, *rest in rows:
            source, account = names[acct]
            yield source, account, entity, *rest
        last = rows[-1][:3]


def kept_client(conn: sqlite3.Connection, source: str, account: str, entity_id: str) -> str | None:
    """One form response's one client (None: none or several), from the decisions."""
    row = conn.execute("SELECT " + CLIENT_OF.format(s="?", a="?", e="?"), (source, account, entity_id)).fetchone()
    return None if row is None else row[0]


def kept_count(conn: sqlite3.Connection) -> int:
    """How many documents the scratch database kept (:data:`engine.clients.stream.KEPT_KIND`)."""
    return int(conn.execute("SELECT count(*) FROM kept.responses").fetchone()[0])
