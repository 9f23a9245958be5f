"""The diff of a reloaded account, kept on disk: which rows stay, which go, which are new.

Why a module of its own, and why on disk: an account that already has rows is compared
line by line with them, and keeping that bookkeeping in Python (every sha256, every key,
every line position) cost about 500 bytes per document, so the index worker's memory grew
with the account (docs/index.md section 6). Here the loader records, per line, either the
unchanged row it matches (``kept``) or the new document's derived row (``new``) in a
scratch SQLite database attached to the writer connection; the resolution (repeated
entities: the later line wins; an entity both unchanged and new) and the swap of the
account's rows are then a few SQL statements over those tables, whose memory is SQLite's
page cache, whatever the account's size.

The scratch file is ``vector-store/.load-<pid>-<token>.scratch`` (0600, inside the
workspace: it holds document text like the index itself), written without a journal and
never synced, and removed when the load ends; one left by a killed worker is removed by the
next load (:func:`remove_stale`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.store.fsutil import create_private

SCRATCH_CACHE_KIB = 4096
"""Page cache of the scratch database (KiB)."""

_TABLES = """
CREATE TABLE scratch.new (number INTEGER PRIMARY KEY, kind TEXT, entity_id TEXT, sha256 TEXT,
    time TEXT, title TEXT, dedupe_key TEXT, body TEXT, names TEXT, notes TEXT);
CREATE TABLE scratch.kept (doc_id INTEGER PRIMARY KEY, number INTEGER);
CREATE TABLE scratch.win (first INTEGER PRIMARY KEY, last INTEGER, kind TEXT, entity_id TEXT);
CREATE TABLE scratch.ins (doc_id INTEGER PRIMARY KEY, last INTEGER);
CREATE TABLE scratch.final (sha256 TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE scratch.gone (doc_id INTEGER PRIMARY KEY, sha256 TEXT);
CREATE TABLE scratch.leaving (sha256 TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE scratch.xf (kind TEXT PRIMARY KEY, transform TEXT) WITHOUT ROWID;
"""
"""``new``: one derived row per new line (keyed by line number); ``kept``: unchanged row ->
the last line that has it; ``win``: per entity of the new lines, its first and last line;
``ins``: the new rows' doc_id -> the line they come from; ``final``: sha256 of every object
the account references afterwards; ``gone``: rows that leave; ``leaving``: objects that may
have lost their last reference; ``xf``: kind -> transform."""

_PREFIX = ".load-"
_SUFFIX = ".scratch"
_LEFTOVERS = (_SUFFIX, ".spill")
"""A load's files: this scratch database and its spill (:mod:`engine.index.spill`, same stem)."""

NEW_SQL = ("INSERT INTO scratch.new (number, kind, entity_id, sha256, time, title, dedupe_key, body, "
           "names, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
KEPT_SQL = "INSERT OR REPLACE INTO scratch.kept (doc_id, number) VALUES (?, ?)"


def remove_stale(folder: Path) -> None:
    """Remove scratch and spill files of loaders that are no longer running (killed workers)."""
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{_PREFIX}*"):
            if path.suffix not in _LEFTOVERS:
                continue
            pid = path.name[len(_PREFIX):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    path.unlink()


def others_loading(folder: Path) -> bool:
    """Whether another running loader has its scratch or spill file in ``folder`` (a load
    under way for another account: this one should not hold the write lock while it reads)."""
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{_PREFIX}*"):
            pid = path.name[len(_PREFIX):].split("-", 1)[0]
            if path.suffix in _LEFTOVERS and pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def attach(conn: sqlite3.Connection, folder: Path) -> Path:
    """Create a private scratch file in ``folder`` and attach it as ``scratch`` (no transaction open)."""
    remove_stale(folder)
    path = folder / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{_SUFFIX}"
    create_private(path)
    try:
        conn.execute("ATTACH DATABASE ? AS scratch", (str(path),))
        conn.execute("PRAGMA scratch.journal_mode = OFF")
        conn.execute("PRAGMA scratch.synchronous = OFF")
        conn.execute(f"PRAGMA scratch.cache_size = -{SCRATCH_CACHE_KIB}")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def detach(conn: sqlite3.Connection, path: Path) -> None:
    """Detach and remove the scratch file (after the transaction ended)."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute("DETACH DATABASE scratch")
    path.unlink(missing_ok=True)


def create_tables(conn: sqlite3.Connection) -> None:
    """The scratch tables, empty (those of an earlier try of the same load are dropped)."""
    for name in ("new", "kept", "win", "ins", "final", "gone", "leaving", "xf"):
        conn.execute(f"DROP TABLE IF EXISTS scratch.{name}")
    for statement in _TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)


@dataclass
class Outcome:
    """What the swap did (counts)."""

    documents: int
    inserted: int
    deleted: int
    superseded: int
    """Entities both in ``new`` more than once, or both unchanged and new: lines that lost."""
    matched: int
    """Distinct unchanged rows the file's lines matched (before resolving clashes)."""


def put_transforms(conn: sqlite3.Connection, transforms: dict[str, str]) -> None:
    """kind -> transform id for :func:`swap` (before it, in or outside the transaction)."""
    conn.executemany("INSERT OR REPLACE INTO scratch.xf (kind, transform) VALUES (?, ?)", transforms.items())


def swap(conn: sqlite3.Connection, *, source: str, account: str, vault_run: str | None,
         vectors: bool) -> Outcome:
    """Replace the account's rows by the kept and the new ones (inside the transaction; the
    transforms in ``scratch.xf`` already: :func:`put_transforms`).

    Rows that went away leave ``documents`` and ``fts``; their objects, and those of new lines
    that lost to a later line, go to ``gc_pending`` (and their vectors away); the new rows are
    inserted in the order of their entity's first line, with the columns of its last line.
    """
    matched = _count(conn, "scratch.kept")
    conn.execute("CREATE INDEX scratch.new_key ON new (kind, entity_id, number)")
    conn.execute("INSERT INTO scratch.win (first, last, kind, entity_id) SELECT min(number), max(number), "
                 "kind, entity_id FROM scratch.new GROUP BY kind, entity_id")
    new_lines = _count(conn, "scratch.new")
    superseded = new_lines - _count(conn, "scratch.win")
    conn.execute("CREATE INDEX scratch.win_key ON win (kind, entity_id)")
    superseded += _resolve(conn)
    conn.execute("INSERT OR IGNORE INTO scratch.final (sha256) SELECT d.sha256 FROM scratch.kept k "
                 "JOIN main.documents d ON d.doc_id = k.doc_id")
    conn.execute("INSERT OR IGNORE INTO scratch.final (sha256) SELECT n.sha256 FROM scratch.win w "
                 "JOIN scratch.new n ON n.number = w.last")
    conn.execute("INSERT INTO scratch.gone (doc_id, sha256) SELECT doc_id, sha256 FROM main.documents "
                 "WHERE source = ? AND account = ? AND doc_id NOT IN (SELECT doc_id FROM scratch.kept)",
                 (source, account))
    # Objects that may lose their last reference (no UNION or IN list: those would build
    # temporary b-trees, in memory; ``leaving`` is a table on disk).
    for table in ("gone", "new"):
        conn.execute(f"INSERT OR IGNORE INTO scratch.leaving (sha256) SELECT t.sha256 FROM scratch.{table} t "
                     f"WHERE NOT EXISTS (SELECT 1 FROM scratch.final f WHERE f.sha256 = t.sha256)")
    conn.execute("INSERT OR IGNORE INTO main.gc_pending (sha256, source, account) "
                 "SELECT sha256, ?, ? FROM scratch.leaving", (source, account))
    if vectors:
        _delete_vectors(conn)
    deleted = _count(conn, "scratch.gone")
    _delete_gone(conn)
    inserted = _insert_new(conn, source, account, vault_run)
    kept = _count(conn, "scratch.kept")
    return Outcome(kept + inserted, inserted, deleted, superseded, matched)


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _resolve(conn: sqlite3.Connection) -> int:
    """An entity both unchanged and new (the file has two versions): the later line wins."""
    clashes = conn.execute(
        "SELECT k.doc_id, k.number, w.first, w.last FROM scratch.kept k JOIN main.documents d "
        "ON d.doc_id = k.doc_id JOIN scratch.win w ON w.kind = d.kind AND w.entity_id = d.entity_id").fetchall()
    for doc_id, number, first, last in clashes:
        if last > number:
            conn.execute("DELETE FROM scratch.kept WHERE doc_id = ?", (doc_id,))
        else:
            conn.execute("DELETE FROM scratch.win WHERE first = ?", (first,))
    return len(clashes)


def _delete_vectors(conn: sqlite3.Connection, step: int = 8192) -> None:
    """Remove the vectors of the objects in ``leaving``, a slice of its key at a time."""
    after = ""
    while True:
        shas = [r[0] for r in conn.execute("SELECT sha256 FROM scratch.leaving WHERE sha256 > ? "
                                           "ORDER BY sha256 LIMIT ?", (after, step))]
        if not shas:
            break
        conn.executemany("DELETE FROM main.vectors WHERE sha256 = ?", ((s,) for s in shas))
        after = shas[-1]


def _delete_gone(conn: sqlite3.Connection, step: int = 8192) -> None:
    """Rows that went away leave ``fts`` (one rowid at a time: FTS5's fast path) and ``documents``."""
    after = -1
    while True:
        ids = [r[0] for r in conn.execute("SELECT doc_id FROM scratch.gone WHERE doc_id > ? ORDER BY doc_id "
                                          "LIMIT ?", (after, step))]
        if not ids:
            break
        conn.executemany("DELETE FROM main.fts WHERE rowid = ?", ((d,) for d in ids))
        after = ids[-1]
    conn.execute("DELETE FROM main.documents WHERE doc_id IN (SELECT doc_id FROM scratch.gone)")


def _insert_new(conn: sqlite3.Connection, source: str, account: str, vault_run: str | None,
                step: int = 8192) -> int:
    """Insert the winning new lines with consecutive doc_ids after the index's largest, the
    rows this load removed included: a changed document never gets an id an earlier version
    of any document had (the project stage tells an unchanged document by its id:
    :mod:`engine.clients.moved`)."""
    next_id = conn.execute("SELECT max((SELECT coalesce(max(doc_id), 0) FROM main.documents), "
                           "(SELECT coalesce(max(doc_id), 0) FROM scratch.gone)) + 1").fetchone()[0]
    # A placeholder row makes SQLite number the following rows next_id, next_id + 1, ...
    conn.execute("INSERT INTO scratch.ins (doc_id, last) VALUES (?, NULL)", (next_id - 1,))
    conn.execute("INSERT INTO scratch.ins (last) SELECT last FROM scratch.win ORDER BY first")
    conn.execute("DELETE FROM scratch.ins WHERE doc_id = ?", (next_id - 1,))
    last_id = conn.execute("SELECT coalesce(max(doc_id), 0) FROM scratch.ins").fetchone()[0]
    # In slices of doc_ids: one INSERT ... SELECT of a whole account held about 55 MiB more at
    # 235,000 rows than the same rows a slice at a time.
    for low in range(next_id, last_id + 1, step):
        high = min(low + step - 1, last_id)
        conn.execute(
            "INSERT INTO main.documents (doc_id, kind, source, account, entity_id, sha256, vault_run, "
            "transform, time, title, dedupe_key) SELECT i.doc_id, n.kind, ?, ?, n.entity_id, n.sha256, ?, "
            "x.transform, n.time, n.title, n.dedupe_key FROM scratch.ins i JOIN scratch.new n ON n.number = i.last "
            "LEFT JOIN scratch.xf x ON x.kind = n.kind WHERE i.doc_id BETWEEN ? AND ? ORDER BY i.doc_id",
            (source, account, vault_run, low, high))
        conn.execute("INSERT INTO main.fts (rowid, title, body, names, notes) SELECT i.doc_id, n.title, n.body, "
                     "n.names, n.notes FROM scratch.ins i JOIN scratch.new n ON n.number = i.last "
                     "WHERE i.doc_id BETWEEN ? AND ? ORDER BY i.doc_id", (low, high))
    return _count(conn, "scratch.ins")


def new_rows(rows: Iterable[tuple[int, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Parameters of :data:`NEW_SQL` for ``(line number, Row)`` pairs."""
    return [(n, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for n, r in rows]
