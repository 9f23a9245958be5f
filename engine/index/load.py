"""Loading one account's canonical file into the index: the index worker's actual work.

The rules (docs/index.md section 3 has the long form):

* The input is ``canonical/{source}/{account}.jsonl`` as its ``.meta.json`` describes it: the
  file is opened once, hashed, and must match ``output.sha256`` (else CHECKSUM_MISMATCH).
* When the ``accounts`` row says the rows were built from the same file, provenance and
  field table, the load is ``skipped`` (unless forced).
* Otherwise, when another loader is running or the write lock is taken, the load runs in two
  phases, so loads of different accounts run side by side (docs/index.md section 6; a load
  alone runs in one pass, below, which is faster for it). **Phase A, without the write lock**: the file is read once, in
  batches of ``BATCH`` lines; each line is hashed; a line whose sha256 a row of the account
  already has is unchanged (no parse, no write; looked up through a reader connection); other
  lines are parsed, their derived columns computed, their objects written (straight to their
  final name, once, by writer threads: :mod:`engine.index.objects`) and flushed, their texts
  embedded (a background thread: :mod:`engine.vectors.pending`). What the transaction needs
  is staged: a first load's rows and every vector in a spill file (:mod:`engine.index.spill`),
  a reload's diff in scratch tables (:mod:`engine.index.diff`, filled by an insert thread:
  :mod:`engine.index.sink`). **Phase B, under the lock** (``BEGIN IMMEDIATE``): if the
  account's rows changed since phase A began, phase A is done again (once; then the one-pass
  load below); doc_ids are assigned from the index's largest; the spill is replayed into
  ``documents``/``fts``/``vectors`` (a first load) or the diff is swapped in (a reload); a first
  load whose file repeats an entity goes back to a savepoint and is swapped as a diff.
* The one-pass load (a lone load, and the fallback; ``two_phase=False`` forces it) holds the
  lock for the whole pass and inserts while it reads.
* Readers see the old set or the new set, never a mix. Memory stays bounded whatever the
  account's size.
* After the commit, pending objects that no document references are removed under the
  write lock (:func:`engine.index.store.remove_unreferenced`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from engine import cancel
from engine.canon.publish import AccountFiles, NotAFile, open_current
from engine.index import diff, swap
from engine.index.fields import FIELDS_VERSION
from engine.index.objects import ObjectWriter
from engine.index.outcome import (
    LoadFailed,
    LoadResult,
    canonical_paths,
    sqlite_failure,
    vault_run_of,
)
from engine.index.reading import BATCH, CATCH_UP_VECTORS, Pass, PassReader, Progress, Row, fd_sha256
from engine.index.sink import InsertThread
from engine.index.spill import ROWS, SHAS, SUFFIX, VECTORS, ObjectCheck, Spill
from engine.index.store import (
    begin_immediate,
    lock_free,
    objects_dir,
    open_reader,
    open_writer,
    remove_unreferenced,
    with_write_wait,
)
from engine.store.workspace import Workspace
from engine.vectors import store as vector_store
from engine.vectors.model import shared as shared_embedder
from engine.vectors.pending import EmbedPass
from engine.vectors.text import TEXT_VERSION

__all__ = ["BATCH", "CATCH_UP_VECTORS", "AccountLoader", "LoadFailed", "LoadResult", "Progress", "Row"]

PREPARE_TRIES = 2
"""Phase A runs at most this often (again when the account changed before the swap); then
the one-pass load, under the lock throughout."""


class _Clash(Exception):
    """A first load met an entity twice: it is redone as a diff (the later line wins)."""


class AccountLoader(PassReader):
    """Indexes one (source, account); :meth:`run` returns a :class:`LoadResult`."""

    def __init__(self, ws: Workspace, source: str, account: str, *, force: bool = False,
                 transforms: dict[str, str] | None = None, progress: Progress | None = None,
                 vectors: bool = True, verify_objects: bool | None = None, two_phase: bool | None = None) -> None:
        self.ws, self.source, self.account, self.force = ws, source, account, force
        self.embed = EmbedPass() if vectors else None
        self.vector_model = vector_store.model_key(shared_embedder().model, TEXT_VERSION)
        self.transforms = transforms or {}
        self.progress = progress or (lambda done, total: None)
        self.two_phase = two_phase
        """Prepare without the write lock, swap under it (True), or the one-pass load (False);
        ``None``: two phases when another loader is running, else one pass."""
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
        file_sha = fd_sha256(fd)
        if file_sha != meta["output"].get("sha256"):
            raise LoadFailed("CHECKSUM_MISMATCH")
        inputs = meta.get("inputs") if isinstance(meta.get("inputs"), dict) else {}
        assert isinstance(inputs, dict)
        inputs_sha = hashlib.sha256(orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS)).hexdigest()
        total = meta["output"].get("records")
        total = total if isinstance(total, int) else None
        conn: sqlite3.Connection | None = None
        try:
            conn = open_writer(self.ws, check_same_thread=False)
            if self.embed is not None and not vector_store.has_table(conn):  # (CREATE takes the lock)
                with_write_wait(lambda: vector_store.ensure_table(conn))
            state = conn.execute(
                "SELECT canonical_sha256, inputs_sha256, fields_version, documents FROM accounts "
                "WHERE source = ? AND account = ?", (self.source, self.account)).fetchone()
            same_file = (not self.force and state is not None and (state[0], state[2]) == (file_sha, FIELDS_VERSION)
                         and (self.embed is None or vector_store.account_missing(
                             conn, self.source, self.account, self.vector_model) == 0))
            if same_file and state[1] == inputs_sha:
                self.result.status = "skipped"
                self.result.documents = int(state[3])
            elif not (same_file and self._new_provenance(conn, file_sha, inputs, inputs_sha, total)):
                self._load(conn, fd, file_sha, inputs, inputs_sha, total)
            started = time.monotonic()
            self.result.objects_removed += remove_unreferenced(
                conn, self.objects.objects, self.source, self.account)
            self.result.seconds["gc"] = time.monotonic() - started
        except sqlite3.Error as exc:  # DISK_FULL, INDEX_CORRUPT (not a database, or malformed), INDEX_DB_ERROR
            raise LoadFailed(sqlite_failure(exc)) from None
        finally:
            if conn is not None:
                conn.close()
        return self.result

    def _new_provenance(self, conn: sqlite3.Connection, file_sha: str, inputs: dict[str, Any],
                        inputs_sha: str, lines: int | None) -> bool:
        """The very file the account's rows were loaded from, under new provenance (a new
        LATEST with the same records: the nightly case). No line is read: the rows' vault run
        and transform and the account row change in one short transaction. False (nothing
        done) when the account's row moved meanwhile: then the file is loaded as usual."""
        vault_run = vault_run_of(inputs)
        begin_immediate(conn)
        try:
            row = conn.execute("SELECT canonical_sha256, fields_version, documents FROM accounts "
                               "WHERE source = ? AND account = ?", (self.source, self.account)).fetchone()
            if row is None or (row[0], row[1]) != (file_sha, FIELDS_VERSION):
                conn.execute("ROLLBACK")
                return False
            swap.refresh_provenance(conn, self.source, self.account, vault_run, self.transforms)
            self.result.documents = int(row[2])
            if lines is not None:  # lines of an entity already seen, as a load counts them
                self.result.duplicates = max(0, lines - self.result.documents)
            self._account_row(conn, file_sha, inputs_sha, vault_run)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True

    def _load(self, conn: sqlite3.Connection, fd: int, file_sha: str, inputs: dict[str, Any],
              inputs_sha: str, total: int | None) -> None:
        scratch = diff.attach(conn, self.ws.vector_store)  # also tells other loaders this one runs
        try:
            two_phase = self.two_phase
            if two_phase is None:  # a lone load is fastest in one pass: its inserts overlap its reading
                two_phase = diff.others_loading(self.ws.vector_store) or not lock_free(conn)
            self.result.mode = "two-phase" if two_phase else "one-pass"
            for _ in range(PREPARE_TRIES if two_phase else 0):
                if self._two_phase(conn, scratch, fd, file_sha, inputs, inputs_sha, total):
                    break
                self.result.prepared_again += 1
                self._renew_embed()
            else:
                self._one_pass(conn, fd, file_sha, inputs, inputs_sha, total)
        finally:
            diff.detach(conn, scratch)
        self.result.objects_written = self.objects.written
        self.result.object_bytes = self.objects.bytes

    def _renew_embed(self) -> None:
        """A pass whose work was thrown away: its vectors are computed again."""
        if self.embed is not None:
            self.embed.close()
            self.embed = EmbedPass()

    def _one_pass(self, conn: sqlite3.Connection, fd: int, file_sha: str, inputs: dict[str, Any],
                  inputs_sha: str, total: int | None) -> None:
        try:
            self._attempt(conn, fd, file_sha, inputs, inputs_sha, total, fresh_ok=True)
        except _Clash:
            self._renew_embed()  # the rolled-back vectors are computed again
            self._attempt(conn, fd, file_sha, inputs, inputs_sha, total, fresh_ok=False)

    def _two_phase(self, conn: sqlite3.Connection, scratch: Path, fd: int, file_sha: str, inputs: dict[str, Any],
                   inputs_sha: str, total: int | None) -> bool:
        """Phase A without the write lock, phase B under it; False when the account changed
        in between (nothing committed then)."""
        clock = time.monotonic()
        # Pending removals of this account first: none can then run while phase A writes objects.
        self.result.objects_removed += remove_unreferenced(conn, self.objects.objects, self.source, self.account)
        reader = open_reader(self.ws, check_same_thread=False)
        spill: Spill | None = None
        try:
            spill = Spill(scratch.with_suffix(SUFFIX))
            mark = swap.mark(reader, self.source, self.account)
            state = Pass(mark.documents == 0, 0, vault_run_of(inputs), spill=spill)
            if not state.fresh and mark.fields_version == FIELDS_VERSION:
                state.probe = reader
            diff.create_tables(conn)  # the scratch database only: no lock on the index
            diff.put_transforms(conn, self.transforms)
            self._lap("prepare", clock)
            self._prepare(conn, fd, total, state)
            return self._swap(conn, state, spill, mark, file_sha, inputs_sha)
        finally:
            reader.close()
            if spill is not None:
                spill.remove()

    def _last_vectors(self, sink: InsertThread, state: Pass, clock: float) -> float:
        """After the file's last line: hand the embedding pass's last vectors to ``sink``."""
        if self.embed is None:
            return clock
        self._put_vectors(sink, state, self.embed.take())
        self.result.vectors = self.embed.embedded
        self.result.vectors_unavailable = self.embed.unavailable
        return self._lap("embed", clock)

    def _prepare(self, conn: sqlite3.Connection, fd: int, total: int | None, state: Pass) -> None:
        """Phase A: read, hash, probe, derive, write and flush objects, embed; stage the rest."""
        clock = time.monotonic()
        conn.execute("BEGIN")  # writes only the attached scratch database: the index stays unlocked
        sink = InsertThread(conn)
        try:
            self._stream(fd, total, sink, state)
            clock = self._lap("read", clock)
            clock = self._last_vectors(sink, state, clock)
            sink.join()
            conn.execute("COMMIT")
            clock = self._lap("insert", clock)
        except BaseException:
            sink.close()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        assert state.spill is not None
        state.spill.finish()
        self.objects.finish(sync=state.new > 0 or self.objects.verify)  # durable before any row names them
        self._lap("objects", clock)
        self.result.seconds["flush"] = self.objects.flush_s

    def _swap(self, conn: sqlite3.Connection, state: Pass, spill: Spill, mark: swap.Mark, file_sha: str,
              inputs_sha: str) -> bool:
        """Phase B, under the write lock; False when the account changed since phase A began."""
        try:
            return self._transaction(conn, state, spill, mark, file_sha, inputs_sha)
        except _Clash:  # a first load whose file repeats an entity: swapped as a diff instead
            state.fresh = False
            return self._transaction(conn, state, spill, mark, file_sha, inputs_sha)

    def _transaction(self, conn: sqlite3.Connection, state: Pass, spill: Spill, mark: swap.Mark,
                     file_sha: str, inputs_sha: str) -> bool:
        """The spill and the diff into the index, then commit (no savepoint: SQLite would keep
        the original of every page the replay touches in memory until the release)."""
        clock = time.monotonic()
        begin_immediate(conn)
        clock = self._lap("begin", clock)
        check = ObjectCheck(self.objects.objects)
        try:
            if swap.mark(conn, self.source, self.account) != mark:
                conn.execute("ROLLBACK")
                check.close()
                return False
            self._replay(conn, spill, check, swap.next_doc_id(conn) if state.fresh else None, state.vault_run)
            clock = self._lap("replay", clock)
            self._finish_rows(conn, state, mark.inputs_sha256, inputs_sha)
            self._account_row(conn, file_sha, inputs_sha, state.vault_run)
            if check.join():
                raise LoadFailed("OBJECT_MISSING")
            cancel.check()
            conn.execute("COMMIT")
            self._lap("transaction", clock)
        except BaseException as exc:
            check.close()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if state.fresh and isinstance(exc, sqlite3.IntegrityError):
                raise _Clash from None
            raise
        return True

    def _replay(self, conn: sqlite3.Connection, spill: Spill, check: ObjectCheck | None, first_id: int | None,
                vault_run: str | None) -> None:
        """The spill's records in order: vectors into ``vectors``; a first load's rows into
        ``documents``/``fts`` from ``first_id`` (or, ``None``, into the diff's ``new`` table)."""
        next_id = first_id
        for tag, payload in spill.replay():
            if tag == VECTORS:
                vector_store.put(conn, self.vector_model, payload)
            elif tag == ROWS:
                if check is not None:
                    check.add([r[3] for r in payload])
                if next_id is None:
                    conn.executemany(diff.NEW_SQL, payload)
                else:
                    swap.insert_rows(conn, payload, next_id, source=self.source, account=self.account,
                                     vault_run=vault_run, transforms=self.transforms)
                    next_id += len(payload)
            elif tag == SHAS and check is not None:
                check.add(payload)

    def _attempt(self, conn: sqlite3.Connection, fd: int, file_sha: str, inputs: dict[str, Any],
                 inputs_sha: str, total: int | None, *, fresh_ok: bool) -> None:
        """One pass over the file inside one transaction (the write lock is held throughout)."""
        clock = time.monotonic()
        begin_immediate(conn)
        sink: InsertThread | None = None
        fresh = False
        try:
            where = "WHERE source = ? AND account = ?"
            key = (self.source, self.account)
            acc = conn.execute(f"SELECT fields_version, inputs_sha256 FROM accounts {where}", key).fetchone()
            has_rows = conn.execute(f"SELECT 1 FROM documents {where} LIMIT 1", key).fetchone() is not None
            fresh = fresh_ok and not has_rows
            if not fresh:
                diff.create_tables(conn)
                diff.put_transforms(conn, self.transforms)
            state = Pass(fresh, swap.next_doc_id(conn), vault_run_of(inputs))
            if has_rows and acc is not None and acc[0] == FIELDS_VERSION:
                state.probe = open_reader(self.ws)
            clock = self._lap("begin", clock)
            sink = InsertThread(conn)
            try:
                self._stream(fd, total, sink, state)
            finally:
                if state.probe is not None:
                    state.probe.close()
            clock = self._lap("read", clock)
            clock = self._last_vectors(sink, state, clock)
            sink.join()
            clock = self._lap("insert", clock)
            self._finish_rows(conn, state, acc[1] if acc else None, inputs_sha)
            self._account_row(conn, file_sha, inputs_sha, state.vault_run)
            clock = self._lap("transaction", clock)
            self.objects.finish(sync=state.new > 0 or self.objects.verify)  # repairs durable too
            clock = self._lap("objects", clock)
            self.result.seconds["flush"] = self.objects.flush_s
            cancel.check()  # a cancel during the swap or the flush still rolls back
            conn.execute("COMMIT")
            self._lap("transaction", clock)
        except BaseException as exc:
            if sink is not None:
                sink.close()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if fresh and isinstance(exc, sqlite3.IntegrityError):
                raise _Clash from None
            raise

    def _finish_rows(self, conn: sqlite3.Connection, state: Pass, prev_inputs: str | None,
                     inputs_sha: str) -> None:
        """The swap of a diffed account (a first load's rows are all in already) and the counts."""
        if state.fresh:
            self.result.documents = self.result.inserted = state.new
            return
        out = diff.swap(conn, source=self.source, account=self.account, vault_run=state.vault_run,
                        vectors=self.embed is not None)
        self.result.documents, self.result.inserted, self.result.deleted = out.documents, out.inserted, out.deleted
        self.result.duplicates = out.superseded + state.kept - out.matched
        if prev_inputs != inputs_sha and out.documents - out.inserted:
            swap.refresh_provenance(conn, self.source, self.account, state.vault_run, self.transforms)

    def _account_row(self, conn: sqlite3.Connection, file_sha: str, inputs_sha: str,
                     vault_run: str | None) -> None:
        swap.account_row(conn, self.source, self.account, file_sha=file_sha, inputs_sha=inputs_sha,
                         fields_version=FIELDS_VERSION, vault_run=vault_run, documents=self.result.documents)


