"""The on-disk document store of the index stage: SQLite schema, connections and objects.

``vector-store/index.sqlite`` (WAL, 0600) holds one row per canonical document with a few
derived columns for queries and an FTS5 table over its searchable text; the documents
themselves live once each, content-addressed, in ``vector-store/objects/ab/cd/<sha256>.json``
(0600 files in 0700 folders, created once under their final name, never rewritten except
to repair one that no longer matches its name). Every read of an object goes
through :func:`read_object`, which checks the bytes against the sha256 in the file's name:
a damaged object is an error (``OBJECT_CORRUPT``), never wrong content. Object files are written by :mod:`engine.index.objects`. Loading (:mod:`engine.index.load`) and querying (:mod:`engine.index.query`) share the
definitions here, so the layout is written down once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine import cancel
from engine.store.fsutil import FILE_MODE, ensure_dir
from engine.store.workspace import Workspace

T = TypeVar("T")

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the index; a store with another version is not touched."""

WRITE_WAIT_S = 3600.0
"""How long a writer waits for another writer's transaction (index workers of other accounts).

An index load holds the lock for its swap (:mod:`engine.index.load`, phase B: the staged
rows into the index, seconds per 100,000 documents) and, in its one-pass fallback, for its
whole pass over the file: minutes for an account of a million documents on a slow disk, so
the wait is long; it stays cancellable (short tries in Python)."""

_BUSY_SLICE_MS = 2_000
"""SQLite's own busy wait per statement: short enough that a cancel (SIGTERM) is seen within
the engine's grace period, long enough for a reader to ride out a WAL recovery."""

DB_NAME = "index.sqlite"
OBJECTS = "objects"

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    source           TEXT NOT NULL,
    account          TEXT NOT NULL,
    canonical_sha256 TEXT NOT NULL,
    inputs_sha256    TEXT NOT NULL,
    fields_version   INTEGER NOT NULL,
    vault_run        TEXT,
    documents        INTEGER NOT NULL,
    generation       INTEGER NOT NULL,
    indexed_at       TEXT NOT NULL,
    PRIMARY KEY (source, account)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS documents (
    doc_id     INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    source     TEXT NOT NULL,
    account    TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    vault_run  TEXT,
    transform  TEXT,
    time       TEXT,
    title      TEXT,
    dedupe_key TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_key ON documents (entity_id, kind, source, account);
CREATE INDEX IF NOT EXISTS documents_account_time ON documents (account, source, time);
CREATE INDEX IF NOT EXISTS documents_kind_time ON documents (kind, time);
CREATE INDEX IF NOT EXISTS documents_time ON documents (time);
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents (sha256);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5 (
    title, body, names, notes, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS gc_pending (
    sha256  TEXT PRIMARY KEY,
    source  TEXT NOT NULL,
    account TEXT NOT NULL
) WITHOUT ROWID;
"""
"""Tables: ``accounts`` (what each account's rows were built from), ``documents`` (one row per
canonical document, ``doc_id`` = FTS rowid), ``fts`` (title/body/names/notes) and
``gc_pending`` (objects to re-check after a replacement; written in the same transaction, so
a crash between commit and clean-up is finished by the account's next run)."""


INDEX_CORRUPT = "INDEX_CORRUPT"
"""The index file exists but is not a readable SQLite database (or its pages are damaged)."""
INDEX_UNREADABLE = "INDEX_UNREADABLE"
"""The index file exists and may be whole, but cannot be opened now (a full disk, a read-only
folder, an I/O error): never to be taken for a missing index and rebuilt."""
UNREADABLE_HINT = ("a full disk (`df -h`), a read-only folder or a disk error; the index itself is kept: "
                   "fix that and ask again (do not rebuild it)")
"""What every face says to do about :data:`INDEX_UNREADABLE`."""


class StoreError(Exception):
    """The index cannot be opened or written; ``code`` is a stable ErrorCode value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


OBJECT_MISSING = "OBJECT_MISSING"
"""A row's object file is not in the store."""
OBJECT_CORRUPT = "OBJECT_CORRUPT"
"""An object file's bytes do not hash to the sha256 in its name (damaged on disk, edited)."""
REPAIR_HINT = ("rebuild the index's objects with `lorchestra run --stage index --force` (it "
               "re-checks every object and rewrites damaged ones from the canonical files; for "
               "the scored questionnaires, source measures, `lorchestra run --stage project --force`), "
               "or `lorchestra clean --stage index` and run the index stage again")
"""What to do about a missing or damaged object (PHI-free)."""


class ObjectMissing(StoreError):
    """A row's object is gone: the account was replaced after the row was read."""

    def __init__(self, sha256: str) -> None:
        super().__init__(OBJECT_MISSING, f"object {sha256} is not in the store")
        self.sha256 = sha256


class ObjectCorrupt(StoreError):
    """An object's bytes do not match its name: never handed out as the document."""

    def __init__(self, sha256: str, path: str) -> None:
        super().__init__(OBJECT_CORRUPT, f"index object {path} does not match its sha256")
        self.sha256 = sha256
        self.path = path
        """The object file (inside the workspace)."""


def read_object(objects: Path | str, sha256: str) -> bytes:
    """The bytes of the object named ``sha256``, checked against that name.

    ObjectMissing when there is no such file, ObjectCorrupt when its bytes hash to something
    else (a truncated write, a flipped bit, an edit). Hashing costs about 1 ms per MB.
    """
    path = str(object_path(Path(objects), sha256))
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ObjectMissing(sha256) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ObjectCorrupt(sha256, path)
    return data


def store_dir(ws: Workspace) -> Path:
    """``{workspace}/vector-store``."""
    return ws.vector_store


def db_path(ws: Workspace) -> Path:
    """``{workspace}/vector-store/index.sqlite``."""
    return ws.vector_store / DB_NAME


def objects_dir(ws: Workspace) -> Path:
    """``{workspace}/vector-store/objects``."""
    return ws.vector_store / OBJECTS


def object_path(objects: Path, sha256: str) -> Path:
    """Where the object with this sha256 lives: ``objects/ab/cd/<sha256>.json``."""
    return objects / sha256[:2] / sha256[2:4] / f"{sha256}.json"


def _pragmas(conn: sqlite3.Connection, *, writer: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_SLICE_MS if writer else 30_000}")
    # Temporary b-trees (sorts, big transactions) stay in memory: never PHI in /tmp.
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA synchronous = NORMAL")
    if writer:
        conn.execute("PRAGMA cache_size = -16384")  # 16 MiB: the worker stays small (docs/index.md 6)


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def with_write_wait(action: Callable[[], T], wait_s: float = WRITE_WAIT_S) -> T:
    """Run ``action`` again while another writer holds the lock, up to ``wait_s`` seconds.

    SQLite waits inside C where nothing else runs; short tries in a Python loop keep a
    waiting worker cancellable (:func:`engine.cancel.check` between two tries).
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
            cancel.check()
            time.sleep(0.01)


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: take the write lock, waiting for other writers (cancellably)."""
    with_write_wait(lambda: conn.execute("BEGIN IMMEDIATE"))


def lock_free(conn: sqlite3.Connection) -> bool:
    """Whether no other writer holds the write lock at this instant (tried without waiting)."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise
        return False
    finally:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_SLICE_MS}")


def open_writer(ws: Workspace, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the index for writing, in autocommit mode; check its version.

    ``check_same_thread=False`` for a loader that hands the connection to its insert thread
    (one thread uses it at a time: :mod:`engine.index.sink`)."""
    return with_write_wait(lambda: _open_writer(ws, check_same_thread))


def _open_writer(ws: Workspace, check_same_thread: bool = True) -> sqlite3.Connection:
    ensure_dir(ws.vector_store)
    ensure_dir(objects_dir(ws))
    path = db_path(ws)
    if not path.exists():
        # Create the file 0600 ourselves: SQLite gives -wal and -shm the main file's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    os.chmod(path, FILE_MODE)
    conn = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_SLICE_MS / 1000,
                           check_same_thread=check_same_thread)
    try:
        _pragmas(conn, writer=True)
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:  # a new index: create the schema once, under the write lock
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                version = SCHEMA_VERSION
            conn.execute("COMMIT")
        if version != SCHEMA_VERSION:
            raise StoreError("INDEX_SCHEMA_MISMATCH",
                             f"{path} has index schema {version}; this version writes {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(ws: Workspace, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open an existing index for queries only (StoreError INDEX_MISSING if there is none)."""
    path = db_path(ws)
    if not path.is_file():
        raise StoreError("INDEX_MISSING", f"no index at {path}")
    conn = sqlite3.connect(path, check_same_thread=check_same_thread, timeout=30)
    try:
        _pragmas(conn, writer=False)
        conn.execute("PRAGMA query_only = 1")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            conn.execute("SELECT 1 FROM accounts LIMIT 1").fetchall()
    except sqlite3.OperationalError as exc:
        conn.close()
        if "no such table" in str(exc):  # created, never loaded
            raise StoreError("INDEX_MISSING", f"{path} is not a readable index") from None
        reason = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        raise StoreError(INDEX_UNREADABLE, f"{path} cannot be opened now ({reason})") from None
    except sqlite3.DatabaseError:  # "file is not a database", "database disk image is malformed"
        conn.close()
        raise StoreError(INDEX_CORRUPT, f"{path} is damaged (not a readable SQLite database)") from None
    if version != SCHEMA_VERSION:
        conn.close()
        if version == 0:
            raise StoreError("INDEX_MISSING", f"the index at {path} is empty")
        raise StoreError("INDEX_SCHEMA_MISMATCH",
                         f"{path} has index schema {version}; this version reads {SCHEMA_VERSION}")
    return conn


def sync_filesystem(path: Path) -> None:
    """Flush the file system holding ``path`` to disk (``syncfs``; ``sync`` where missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = getattr(libc, "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    except OSError:
        os.sync()
    finally:
        os.close(fd)


def remove_unreferenced(conn: sqlite3.Connection, objects: Path, source: str, account: str) -> int:
    """Delete the objects listed in ``gc_pending`` for this account that no document references.

    Runs in a write transaction, so no other writer can add a reference between the check and
    the unlink; the pending rows go in the same transaction. Returns the objects removed.
    """
    removed = 0
    if conn.execute("SELECT 1 FROM gc_pending WHERE source = ? AND account = ? LIMIT 1",
                    (source, account)).fetchone() is None:
        return 0
    begin_immediate(conn)
    try:
        pending = [r[0] for r in conn.execute(
            "SELECT sha256 FROM gc_pending WHERE source = ? AND account = ?", (source, account))]
        for sha in pending:
            if conn.execute("SELECT 1 FROM documents WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None:
                try:
                    object_path(objects, sha).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        conn.execute("DELETE FROM gc_pending WHERE source = ? AND account = ?", (source, account))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return removed
