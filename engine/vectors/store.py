"""Where document vectors live: a ``vectors`` table inside the index database.

One row per canonical object (``sha256``, the same key as ``objects/ab/cd/<sha256>.json``),
with the model key it was computed with and the vector as a float16 BLOB (``DIM`` x 2 bytes,
little-endian; :data:`FORMAT`). float16 halves the bytes the index transaction writes and
the query command reads, and moves no ranking that matters: a unit vector's components are
stored to ~3 significant digits, so cosines move by < 0.001 (recall@10 re-measured in
bench/search.py, docs/index.md section 7). The query command widens the matrix to float32
once when it reads it. Inside ``index.sqlite`` the vectors get the index's protection (0600 file in a
0700 folder, WAL) and its atomicity: the loader writes and deletes them in the same
transaction that swaps the account's documents. This Python build has no
``enable_load_extension``, so no SQLite vector extension: similarity is computed with numpy
over the whole matrix (:mod:`engine.index.ranked`).

The table is created on demand (``CREATE TABLE IF NOT EXISTS``), so an index written before
vectors existed keeps its schema version and gains vectors on its next index run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

FORMAT = "f16"
"""How a vector is stored: part of the model key, so a store written in another format
(float32 before) is re-embedded by the next index run, like a model change."""

DTYPE = "<f2"
"""numpy dtype of the stored components (little-endian float16)."""

TABLE_SQL = ("CREATE TABLE IF NOT EXISTS vectors (sha256 TEXT PRIMARY KEY, model TEXT NOT NULL, "
             "vector BLOB NOT NULL)")
"""``sha256`` of the object, ``model`` key (:func:`model_key`), ``vector`` float16 BLOB.

A rowid table (rows appended in insert order, plus a small index on ``sha256``), not WITHOUT
ROWID: with 1 KiB rows keyed by random hashes, WITHOUT ROWID inserts were 3-4x slower
(measured: 20,000 vectors in 1.4-1.8 s against 0.43 s)."""


def model_key(model: str, text_version: int) -> str:
    """What a stored vector depends on: the model, the embedded-text table's version and the
    storage format."""
    return f"{model}+text{text_version}+{FORMAT}"


def to_blobs(matrix: Matrix) -> list[bytes]:
    """One stored BLOB per row of a float32 matrix (converted to :data:`DTYPE`)."""
    import numpy as np

    packed = np.ascontiguousarray(matrix, dtype=DTYPE).tobytes()
    step = matrix.shape[1] * np.dtype(DTYPE).itemsize
    return [packed[i:i + step] for i in range(0, len(packed), step)]


def from_blobs(blobs: list[bytes]) -> Matrix:
    """The float32 matrix of stored BLOBs (one row each, all of one model key)."""
    import numpy as np

    flat = np.frombuffer(b"".join(blobs), dtype=DTYPE)
    return flat.reshape(len(blobs), -1).astype(np.float32) if blobs else np.zeros((0, 0), np.float32)


def ensure_table(conn: sqlite3.Connection) -> None:
    """Create the vectors table if the index does not have it yet (a writer connection)."""
    conn.execute(TABLE_SQL)


def has_table(conn: sqlite3.Connection) -> bool:
    """Whether the index has a vectors table (an older index may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vectors'"
                        ).fetchone() is not None


def account_embedded(conn: sqlite3.Connection, source: str, account: str, model: str) -> set[str]:
    """sha256 of the account's documents that have a vector of ``model``."""
    return {r[0] for r in conn.execute(
        "SELECT d.sha256 FROM documents d JOIN vectors v ON v.sha256 = d.sha256 "
        "WHERE d.source = ? AND d.account = ? AND v.model = ?", (source, account, model))}


def account_missing(conn: sqlite3.Connection, source: str, account: str, model: str) -> int:
    """How many of the account's documents lack a vector of ``model``."""
    row = conn.execute(
        "SELECT count(*) FROM documents d LEFT JOIN vectors v ON v.sha256 = d.sha256 AND v.model = ? "
        "WHERE d.source = ? AND d.account = ? AND v.sha256 IS NULL", (model, source, account)).fetchone()
    return int(row[0])


def put(conn: sqlite3.Connection, model: str, rows: Iterable[tuple[str, bytes]]) -> None:
    """Insert or replace vectors (``(sha256, BLOB from to_blobs)``), inside the caller's transaction.

    In ``sha256`` order: the key index then grows at few places instead of 20,000 random ones
    (20,000 inserts into a table of 100,000: 0.15 -> 0.12 CPU-s; no change into an empty one)."""
    conn.executemany("INSERT OR REPLACE INTO vectors (sha256, model, vector) VALUES (?, ?, ?)",
                     ((sha, model, blob) for sha, blob in sorted(rows)))


def delete(conn: sqlite3.Connection, shas: Iterable[str]) -> None:
    """Remove the vectors of objects no document references any more."""
    conn.executemany("DELETE FROM vectors WHERE sha256 = ?", ((s,) for s in shas))
