"""Loading one account's canonical file into the index: the index worker's actual work.

The rules (docs/index.md has the long form):

* The input is ``canonical/{source}/{account}.jsonl`` as its ``.meta.json`` describes it: the
  file is opened once, hashed, and must match ``output.sha256`` (else CHECKSUM_MISMATCH).
* When the ``accounts`` row says the rows were built from the same file, provenance and
  field table, the load is ``skipped`` (unless forced).
* Otherwise each line is hashed; a line whose sha256 an existing row of the account already
  has is unchanged (no parse, no write). Other lines are parsed, their derived columns
  computed, and their objects written (straight to their final name, once) by writer
  threads that go on during the transaction's inserts; the commit waits until every object
  is written and the file system flushed.
* One ``BEGIN IMMEDIATE`` transaction then deletes the rows that went away, inserts the new
  ones (documents + FTS), updates provenance and the ``accounts`` row, and lists the objects
  that may have lost their last reference in ``gc_pending``. Readers see the old set or the
  new set, never a mix.
* After the commit, pending objects that no document references are removed under the
  write lock (:func:`engine.index.store.remove_unreferenced`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from engine.canon.publish import AccountFiles, NotAFile, open_current
from engine.events import is_disk_full
from engine.index.fields import FIELDS_VERSION, derive
from engine.index.store import (
    ObjectWriter,
    begin_immediate,
    objects_dir,
    open_writer,
    remove_unreferenced,
    with_write_wait,
)
from engine.store.workspace import Workspace
from engine.vectors import store as vector_store
from engine.vectors.model import shared as shared_embedder
from engine.vectors.pending import EmbedPass
from engine.vectors.text import TEXT_VERSION, DocText, embed_text

ROW_MEMORY_BUDGET = 32 * 1024 * 1024
"""Bytes of new documents whose derived rows are kept in memory between the two phases;
beyond it, rows are re-derived from the canonical file during the transaction."""

CATCH_UP_VECTORS = 262_144
"""Unchanged documents embedded per run when their vector is missing (after a model change):
their vectors wait in memory for the transaction (1 KiB each), so a large account catches up
over a few runs instead of holding gigabytes."""

Progress = Callable[[int, int | None], None]
Row = tuple[str, str, str, str | None, str | None, str | None, str, str, str]
"""kind, entity_id, sha256, time, title, dedupe_key, body, names, notes."""


SQLITE_FULL = 13


def sqlite_code(exc: sqlite3.Error) -> str:
    """``DISK_FULL`` when SQLite ran out of space (SQLITE_FULL or ENOSPC), else ``INDEX_DB_ERROR``."""
    if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == SQLITE_FULL or is_disk_full(exc):
        return "DISK_FULL"
    return "INDEX_DB_ERROR"


class LoadFailed(Exception):
    """The account cannot be indexed; ``code`` is an ErrorCode value, ``line`` the input line."""

    def __init__(self, code: str, line: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.line = line


@dataclass
class LoadResult:
    """What one load did (counts only: safe for events)."""

    status: Literal["success", "skipped"] = "success"
    documents: int = 0
    inserted: int = 0
    deleted: int = 0
    duplicates: int = 0
    objects_written: int = 0
    object_bytes: int = 0
    objects_removed: int = 0
    vectors: int = 0
    """Documents embedded by this load (new ones, and unchanged ones whose vector was missing)."""
    vectors_unavailable: bool = False
    """The embedding model could not load: the documents indexed without vectors."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per phase: read (hash, diff, parse), transaction (waiting for the lock,
    inserts and commit; it includes embed: waiting for the embedding thread after the
    documents' inserts), objects (also inside the transaction, but not counted in it: waiting
    for the writes left + flush; flush alone is also given) and gc."""


def canonical_paths(ws: Workspace, source: str, account: str) -> tuple[Path, Path]:
    """The canonical data file and its meta file."""
    base = ws.canonical / source
    return base / f"{account}.jsonl", base / f"{account}.meta.json"


def vault_run_of(inputs: dict[str, Any]) -> str | None:
    """``dt=.../run_id=...`` of the LATEST run the canonical file came from."""
    run = inputs.get("run") or {}
    if run.get("dt") and run.get("run_id"):
        return f"dt={run['dt']}/run_id={run['run_id']}"
    return None


_New = tuple[str, Row | None, int, int, int]
"""A new document: sha256, its row (None when it must be re-derived from the file), and its
line's offset, length and number in the canonical file."""


@dataclass
class _Plan:
    kept: dict[int, int] = field(default_factory=dict)
    """doc_id of an unchanged row -> the number of the line that has it."""
    new: dict[tuple[str, str], _New] = field(default_factory=dict)
    """(kind, entity_id) -> the new document."""
    old: dict[int, str] = field(default_factory=dict)
    """Every row of the account before the load: doc_id -> sha256."""
    vectors: dict[str, bytes] = field(default_factory=dict)
    """sha256 -> vector BLOB computed in phase 1 (new and re-embedded documents)."""
    generation: int = 0
    prev_inputs: str | None = None


class AccountLoader:
    """Indexes one (source, account); :meth:`run` returns a :class:`LoadResult`."""

    def __init__(self, ws: Workspace, source: str, account: str, *, force: bool = False,
                 transforms: dict[str, str] | None = None, progress: Progress | None = None,
                 vectors: bool = True, verify_objects: bool | None = None) -> None:
        self.ws, self.source, self.account, self.force = ws, source, account, force
        self.embed = EmbedPass() if vectors else None
        self.vector_model = vector_store.model_key(shared_embedder().model, TEXT_VERSION)
        self.transforms = transforms or {}
        self.progress = progress or (lambda done, total: None)
        self.data_path, self.meta_path = canonical_paths(ws, source, account)
        self.result = LoadResult()
        # --force re-reads every object its rows name and repairs damaged ones; a rerun whose
        # provenance changed (a new LATEST, the nightly case) diffs without that check.
        verify = force if verify_objects is None else verify_objects
        self.objects = ObjectWriter(objects_dir(ws), verify=verify)

    def run(self) -> LoadResult:
        """Load the account (or skip it); raise LoadFailed with a stable code.

        The data and the meta come from one generation of the account's canonical files
        (:func:`engine.canon.publish.open_current`), so they always belong together.
        """
        files = AccountFiles(self.data_path.parent, self.account)
        try:
            with open_current(files) as view:
                if view is None or view.data is None or not view.meta_present:
                    raise LoadFailed("NO_CANONICAL")
                meta = view.meta
                if meta is None or not isinstance(meta.get("output"), dict):
                    raise LoadFailed("CANONICAL_INVALID")
                return self._run(view.data.fileno(), meta)
        except NotAFile:  # a FIFO or folder planted as a canonical file never blocks
            raise LoadFailed("CANONICAL_INVALID") from None
        finally:
            self.objects.close()
            if self.embed is not None:
                self.embed.close()

    def _run(self, fd: int, meta: dict[str, Any]) -> LoadResult:
        file_sha = _fd_sha256(fd)
        if file_sha != meta["output"].get("sha256"):
            raise LoadFailed("CHECKSUM_MISMATCH")
        inputs = meta.get("inputs") if isinstance(meta.get("inputs"), dict) else {}
        assert isinstance(inputs, dict)
        inputs_sha = hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).hexdigest()
        total = meta["output"].get("records")
        total = total if isinstance(total, int) else None
        conn: sqlite3.Connection | None = None
        try:
            conn = open_writer(self.ws)
            if self.embed is not None:
                with_write_wait(lambda: vector_store.ensure_table(conn))
            state = conn.execute(
                "SELECT canonical_sha256, inputs_sha256, fields_version, documents FROM accounts "
                "WHERE source = ? AND account = ?", (self.source, self.account)).fetchone()
            if (not self.force and state is not None
                    and tuple(state[:3]) == (file_sha, inputs_sha, FIELDS_VERSION)
                    and (self.embed is None or vector_store.account_missing(
                        conn, self.source, self.account, self.vector_model) == 0)):
                self.result.status = "skipped"
                self.result.documents = int(state[3])
            else:
                self._load(conn, fd, file_sha, inputs, inputs_sha, total)
            started = time.monotonic()
            self.result.objects_removed = remove_unreferenced(
                conn, self.objects.objects, self.source, self.account)
            self.result.seconds["gc"] = time.monotonic() - started
        except sqlite3.Error as exc:
            if sqlite_code(exc) == "DISK_FULL":
                raise LoadFailed("DISK_FULL") from None
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                raise LoadFailed("INDEX_CORRUPT") from None  # not a database, or a malformed one
            raise LoadFailed("INDEX_DB_ERROR") from None
        finally:
            if conn is not None:
                conn.close()
        return self.result

    def _load(self, conn: sqlite3.Connection, fd: int, file_sha: str, inputs: dict[str, Any],
              inputs_sha: str, total: int | None) -> None:
        for _attempt in range(5):
            clock = time.monotonic()
            plan = self._plan(conn, fd, total)
            clock = self._lap("read", clock)
            if self.embed is not None:
                self.embed.start()  # embeds while the writer threads go on
            begin_immediate(conn)
            try:
                gen = conn.execute("SELECT generation FROM accounts WHERE source = ? AND account = ?",
                                   (self.source, self.account)).fetchone()
                if (gen[0] if gen else 0) != plan.generation:
                    conn.execute("ROLLBACK")  # another writer replaced this account meanwhile
                    continue
                # The inserts run while the writer threads finish the objects (both release
                # the GIL); the commit waits for every object to be written and flushed.
                self._replace(conn, fd, plan, file_sha, inputs, inputs_sha)
                clock = self._lap("transaction", clock)
                self.objects.finish(sync=bool(plan.new) or self.objects.verify)  # repairs durable too
                clock = self._lap("objects", clock)
                self.result.seconds["flush"] = self.objects.flush_s
                conn.execute("COMMIT")
                self._lap("transaction", clock)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self.result.objects_written = self.objects.written
            self.result.object_bytes = self.objects.bytes
            return
        raise LoadFailed("INDEX_DB_ERROR")

    def _lap(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.result.seconds[phase] = self.result.seconds.get(phase, 0.0) + now - since
        return now

    def _plan(self, conn: sqlite3.Connection, fd: int, total: int | None) -> _Plan:
        """Phase 1, outside any write lock: hash, diff, derive new rows, write new objects."""
        plan = _Plan()
        conn.execute("BEGIN")
        try:
            acc = conn.execute("SELECT generation, fields_version, inputs_sha256 FROM accounts "
                               "WHERE source = ? AND account = ?", (self.source, self.account)).fetchone()
            old_rows = conn.execute("SELECT doc_id, sha256 FROM documents WHERE source = ? AND account = ?",
                                    (self.source, self.account)).fetchall()
            embedded = (vector_store.account_embedded(conn, self.source, self.account, self.vector_model)
                        if self.embed is not None else set())
        finally:
            conn.execute("COMMIT")
        plan.generation = acc[0] if acc else 0
        plan.prev_inputs = acc[2] if acc else None
        plan.old = dict(old_rows)
        reuse = acc is not None and acc[1] == FIELDS_VERSION
        known = {sha: doc_id for doc_id, sha in old_rows} if reuse else {}
        kept, new = plan.kept, plan.new
        kept_bytes = offset = number = duplicates = catch_up = 0
        sha256 = hashlib.sha256
        for line in _lines(fd):
            number += 1
            data = line if line[-1:] == b"\n" else line + b"\n"
            sha = sha256(data).hexdigest()
            doc_id = known.get(sha)
            if doc_id is not None:
                if doc_id in kept:
                    duplicates += 1
                kept[doc_id] = number
                self.objects.check(sha, data)
                if self.embed is not None and sha not in embedded and catch_up < CATCH_UP_VECTORS:
                    catch_up += 1
                    self._queue_vector(self._derive(data, sha, number))
            else:
                row = self._derive(data, sha, number)
                key = (row[0], row[1])
                self.objects.write(sha, data)
                if key in new:
                    duplicates += 1
                if kept_bytes + len(data) <= ROW_MEMORY_BUDGET:
                    kept_bytes += len(data)
                    new[key] = (sha, row, offset, len(line), number)
                    self._queue_vector(row)
                else:
                    new[key] = (sha, None, offset, len(line), number)
            offset += len(line)
            if number & 1023 == 0:
                self.progress(number, total)
        if new and kept:
            duplicates += self._resolve(conn, plan)
        self.result.duplicates = duplicates
        self.progress(number, total)
        return plan

    def _queue_vector(self, row: Row) -> None:
        if self.embed is not None:
            self.embed.add(row[2], row[0], row[4], row[7], row[6])

    def _resolve(self, conn: sqlite3.Connection, plan: _Plan) -> int:
        """An entity both unchanged and new (the file has two versions): the later line wins."""
        superseded = 0
        keys = dict(conn.execute("SELECT doc_id, kind || char(0) || entity_id FROM documents "
                                 "WHERE source = ? AND account = ?", (self.source, self.account)))
        for doc_id, line_no in list(plan.kept.items()):
            kind, _, entity = str(keys.get(doc_id, "")).partition("\0")
            newer = plan.new.get((kind, entity))
            if newer is None:
                continue
            superseded += 1
            if newer[4] > line_no:
                del plan.kept[doc_id]
            else:
                del plan.new[(kind, entity)]
        return superseded

    def _derive(self, data: bytes, sha: str, number: int) -> Row:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise LoadFailed("CANONICAL_INVALID", number) from None
        if not isinstance(doc, dict):
            raise LoadFailed("CANONICAL_INVALID", number)
        kind, entity = doc.get("kind"), doc.get("source_id")
        if isinstance(kind, str):
            kind = sys.intern(kind)  # one string per kind, not one per document kept in memory
        if (not isinstance(kind, str) or not kind or not isinstance(entity, str) or not entity
                or doc.get("source") != self.source or doc.get("account") != self.account):
            raise LoadFailed("CANONICAL_INVALID", number)
        d = derive(doc)
        return (kind, entity, sha, d.time, d.title, d.dedupe_key, d.body, d.names, d.notes)

    def _rows(self, fd: int, plan: _Plan) -> Iterator[Row]:
        for sha, row, start, length, _number in plan.new.values():
            if row is not None:
                yield row
            else:
                line = os.pread(fd, length, start)
                data = line if line[-1:] == b"\n" else line + b"\n"
                yield self._derive(data, sha, 0)

    def _replace(self, conn: sqlite3.Connection, fd: int, plan: _Plan, file_sha: str,
                 inputs: dict[str, Any], inputs_sha: str) -> None:
        """Phase 2, inside the transaction: swap the account's rows."""
        kept = plan.kept
        gone = [doc_id for doc_id in plan.old if doc_id not in kept]
        final = {e[0] for e in plan.new.values()} | {plan.old[d] for d in kept}
        documents = len(kept) + len(plan.new)
        pending = {plan.old[d] for d in gone} | (self.objects.queued - final)
        conn.executemany("DELETE FROM documents WHERE doc_id = ?", ((d,) for d in gone))
        conn.executemany("DELETE FROM fts WHERE rowid = ?", ((d,) for d in gone))
        if self.embed is not None:
            vector_store.delete(conn, pending - final)
        conn.executemany("INSERT OR IGNORE INTO gc_pending (sha256, source, account) VALUES (?, ?, ?)",
                         ((s, self.source, self.account) for s in pending))
        next_id = conn.execute("SELECT coalesce(max(doc_id), 0) + 1 FROM documents").fetchone()[0]
        vault_run = vault_run_of(inputs)
        inserted = self._insert(conn, self._rows(fd, plan), next_id, vault_run)
        if self.embed is not None:
            self._put_vectors(conn, fd, plan, final)
        if plan.prev_inputs != inputs_sha and kept:
            where = "WHERE source = ? AND account = ?"
            conn.execute(f"UPDATE documents SET vault_run = ? {where} AND vault_run IS NOT ?",
                         (vault_run, self.source, self.account, vault_run))
            for kind, transform in self.transforms.items():
                conn.execute(f"UPDATE documents SET transform = ? {where} AND kind = ? AND transform IS NOT ?",
                             (transform, self.source, self.account, kind, transform))
        conn.execute(
            "INSERT INTO accounts (source, account, canonical_sha256, inputs_sha256, fields_version, "
            "vault_run, documents, generation, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, "
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT (source, account) DO UPDATE SET "
            "canonical_sha256 = excluded.canonical_sha256, inputs_sha256 = excluded.inputs_sha256, "
            "fields_version = excluded.fields_version, vault_run = excluded.vault_run, "
            "documents = excluded.documents, generation = accounts.generation + 1, "
            "indexed_at = excluded.indexed_at",
            (self.source, self.account, file_sha, inputs_sha, FIELDS_VERSION, vault_run, documents))
        self.result.documents = documents
        self.result.inserted = inserted
        self.result.deleted = len(gone)

    def _put_vectors(self, conn: sqlite3.Connection, fd: int, plan: _Plan, final: set[str]) -> None:
        """Vectors of phase 1, and of the rows that were re-derived in this transaction."""
        assert self.embed is not None
        started = time.monotonic()
        ready = plan.vectors = self.embed.take()  # after the documents' inserts: they overlap
        self._lap("embed", started)
        vector_store.put(conn, self.vector_model, ((s, b) for s, b in ready.items() if s in final))
        missing: list[tuple[str, DocText]] = []
        for sha, row, start, length, _number in plan.new.values():
            if row is None and sha not in ready:
                line = os.pread(fd, length, start)
                r = self._derive(line if line[-1:] == b"\n" else line + b"\n", sha, 0)
                missing.append((sha, embed_text(r[0], r[4], r[7], r[6])))
                if len(missing) >= 4096:
                    vector_store.put(conn, self.vector_model, self.embed.now(missing))
                    missing.clear()
        vector_store.put(conn, self.vector_model, self.embed.now(missing))
        self.result.vectors = self.embed.embedded
        self.result.vectors_unavailable = self.embed.unavailable

    def _insert(self, conn: sqlite3.Connection, rows: Any, next_id: int, vault_run: str | None) -> int:
        transforms, source, account = self.transforms, self.source, self.account
        docs: list[tuple[Any, ...]] = []
        texts: list[tuple[Any, ...]] = []
        doc_id = next_id
        for r in rows:
            docs.append((doc_id, r[0], source, account, r[1], r[2], vault_run, transforms.get(r[0]),
                         r[3], r[4], r[5]))
            texts.append((doc_id, r[4], r[6], r[7], r[8]))
            doc_id += 1
            if len(docs) >= 4096:
                self._flush(conn, docs, texts)
        self._flush(conn, docs, texts)
        return doc_id - next_id

    @staticmethod
    def _flush(conn: sqlite3.Connection, docs: list[tuple[Any, ...]], texts: list[tuple[Any, ...]]) -> None:
        if docs:
            conn.executemany(
                "INSERT INTO documents (doc_id, kind, source, account, entity_id, sha256, vault_run, "
                "transform, time, title, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", docs)
            conn.executemany("INSERT INTO fts (rowid, title, body, names, notes) VALUES (?, ?, ?, ?, ?)",
                             texts)
            docs.clear()
            texts.clear()


def _fd_sha256(fd: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def _lines(fd: int) -> Iterator[bytes]:
    """The lines of the open file from its start (the same inode the hash was taken of)."""
    with os.fdopen(os.dup(fd), "rb", buffering=1 << 20) as fh:
        fh.seek(0)
        yield from fh
