"""The SQL of an index load's transaction: the account's mark, new rows, the ``accounts`` row.

Why a module of its own: the two ways a load reaches its transaction (prepared without the
write lock and swapped under it, or the one-pass fallback that holds the lock while it reads:
:mod:`engine.index.load`) write the same rows with the same statements, defined here once.
:func:`mark` is what phase B compares with what phase A started from: if another writer
changed the account in between, phase A's look-ups are stale and it is done again.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple


class Mark(NamedTuple):
    """What an account's rows looked like at one instant (compared, never shown)."""

    documents: int
    """How many documents the account has (0: a first load)."""
    first_id: int
    last_id: int
    gc_pending: int
    """Objects of the account waiting for removal (a removal run changes this)."""
    fields_version: int | None
    inputs_sha256: str | None
    canonical_sha256: str | None
    generation: int | None
    """``accounts.generation``: every committed load of the account raises it."""


def mark(conn: sqlite3.Connection, source: str, account: str) -> Mark:
    """The account's :class:`Mark` as ``conn`` sees it (a covering index scan of its rows)."""
    key = (source, account)
    count, low, high = conn.execute(
        "SELECT count(*), coalesce(min(doc_id), 0), coalesce(max(doc_id), 0) FROM documents "
        "INDEXED BY documents_account_time WHERE account = ? AND source = ?", (account, source)).fetchone()
    pending = conn.execute("SELECT count(*) FROM gc_pending WHERE source = ? AND account = ?", key).fetchone()[0]
    acc = conn.execute("SELECT fields_version, inputs_sha256, canonical_sha256, generation FROM accounts "
                       "WHERE source = ? AND account = ?", key).fetchone() or (None, None, None, None)
    return Mark(int(count), int(low), int(high), int(pending), *acc)


def next_doc_id(conn: sqlite3.Connection) -> int:
    """The first doc_id after the index's largest (inside the write transaction)."""
    return int(conn.execute("SELECT coalesce(max(doc_id), 0) + 1 FROM documents").fetchone()[0])


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], first_id: int, *, source: str,
                account: str, vault_run: str | None, transforms: dict[str, str]) -> None:
    """A first load's batch: documents and FTS rows, doc_ids from ``first_id`` in order.

    ``rows`` are :data:`engine.index.diff.NEW_SQL` parameters (line number, kind, entity_id,
    sha256, time, title, dedupe_key, body, names, notes)."""
    conn.executemany(
        "INSERT INTO documents (doc_id, kind, source, account, entity_id, sha256, vault_run, transform, "
        "time, title, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(first_id + i, r[1], source, account, r[2], r[3], vault_run, transforms.get(r[1]), r[4], r[5], r[6])
         for i, r in enumerate(rows)])
    conn.executemany("INSERT INTO fts (rowid, title, body, names, notes) VALUES (?, ?, ?, ?, ?)",
                     [(first_id + i, r[5], r[7], r[8], r[9]) for i, r in enumerate(rows)])


def refresh_provenance(conn: sqlite3.Connection, source: str, account: str, vault_run: str | None,
                       transforms: dict[str, str]) -> None:
    """``vault_run`` and ``transform`` of the account's unchanged rows, when the provenance moved."""
    where = "WHERE source = ? AND account = ?"
    conn.execute(f"UPDATE documents SET vault_run = ? {where} AND vault_run IS NOT ?",
                 (vault_run, source, account, vault_run))
    for kind, transform in transforms.items():
        conn.execute(f"UPDATE documents SET transform = ? {where} AND kind = ? AND transform IS NOT ?",
                     (transform, source, account, kind, transform))


def account_row(conn: sqlite3.Connection, source: str, account: str, *, file_sha: str, inputs_sha: str,
                fields_version: int, vault_run: str | None, documents: int) -> None:
    """Insert or update the ``accounts`` row (its ``generation`` goes up by one)."""
    conn.execute(
        "INSERT INTO accounts (source, account, canonical_sha256, inputs_sha256, fields_version, "
        "vault_run, documents, generation, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, "
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT (source, account) DO UPDATE SET "
        "canonical_sha256 = excluded.canonical_sha256, inputs_sha256 = excluded.inputs_sha256, "
        "fields_version = excluded.fields_version, vault_run = excluded.vault_run, "
        "documents = excluded.documents, generation = accounts.generation + 1, "
        "indexed_at = excluded.indexed_at",
        (source, account, file_sha, inputs_sha, fields_version, vault_run, documents))
