"""One pass over an account's canonical file: hash, probe, derive, write objects, hand over.

Why a module of its own: both ways a load reaches its transaction (:mod:`engine.index.load`:
prepared without the write lock and swapped under it, or the one-pass fallback that inserts
while it reads) read the file the same way, batch by batch: each line is hashed, looked up
among the account's rows (a reader connection), parsed and derived when new, its object
queued for the writer threads and its text for the embedding thread. What becomes of a
batch's rows and vectors depends on the pass (:class:`Pass`): inserted by the insert thread,
staged in the diff's scratch tables, or appended to the spill (:mod:`engine.index.spill`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from engine import cancel
from engine.index import diff, swap
from engine.index.fields import derive
from engine.index.objects import ObjectWriter
from engine.index.outcome import LoadFailed, LoadResult
from engine.index.sink import InsertThread
from engine.index.spill import ROWS, SHAS, VECTORS, Spill
from engine.vectors import store as vector_store
from engine.vectors.pending import EmbedPass

BATCH = 512
"""Lines read, hashed and handed to the insert thread at a time."""

CATCH_UP_VECTORS = 262_144
"""Unchanged documents embedded per run when their vector is missing (after a model change):
each run's share is bounded so that a large account catches up over a few runs instead of
one run of the whole account's embedding."""

Progress = Callable[[int, int | None], None]
Row = tuple[str, str, str, str | None, str | None, str | None, str, str, str]
"""kind, entity_id, sha256, time, title, dedupe_key, body, names, notes."""


@dataclass
class Pass:
    """State of one pass over the file."""

    fresh: bool
    """The account had no rows: new rows go straight into ``documents`` and ``fts``."""
    next_id: int
    vault_run: str | None
    probe: sqlite3.Connection | None = None
    """A reader connection finding the unchanged rows (the account's rows before the load)."""
    spill: Spill | None = None
    """Phase A: rows (a first load) and vectors are staged here, not inserted."""
    lines: int = 0
    new: int = 0
    kept: int = 0
    catch_up: int = 0


class PassReader:
    """The reading side of :class:`engine.index.load.AccountLoader` (its attributes are set there)."""

    source: str
    account: str
    embed: EmbedPass | None
    vector_model: str
    transforms: dict[str, str]
    progress: Progress
    objects: ObjectWriter
    result: LoadResult

    def _lap(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.result.seconds[phase] = self.result.seconds.get(phase, 0.0) + now - since
        return now

    def _stream(self, fd: int, total: int | None, sink: InsertThread, state: Pass) -> None:
        """Read the file in batches; each batch's statements go to the insert thread."""
        batch: list[bytes] = []
        for line in lines_of(fd):
            batch.append(line)
            if len(batch) >= BATCH:
                self._batch(batch, sink, state)
                batch = []
                self.progress(state.lines, total)
                cancel.check()  # the engine's cancel, between two batches (engine/cancel.py)
        if batch:
            self._batch(batch, sink, state)
        self.progress(state.lines, total)

    def _batch(self, lines: list[bytes], sink: InsertThread, state: Pass) -> None:
        datas = [line if line[-1:] == b"\n" else line + b"\n" for line in lines]
        sha256 = hashlib.sha256
        shas = [sha256(data).hexdigest() for data in datas]
        known = self._probe(state.probe, shas) if state.probe is not None else {}
        rows: list[tuple[int, Row]] = []
        kept: list[tuple[int, int]] = []
        for data, sha in zip(datas, shas, strict=True):
            state.lines += 1
            number = state.lines
            hit = known.get(sha)
            if hit is not None:
                kept.append((hit[0], number))
                self.objects.check(sha, data)
                if self.embed is not None and not hit[1] and state.catch_up < CATCH_UP_VECTORS:
                    state.catch_up += 1
                    self._queue_vector(self._derive(data, sha, number))
                continue
            row = self._derive(data, sha, number)
            self.objects.write(sha, data)
            self._queue_vector(row)
            rows.append((number, row))
        state.new += len(rows)
        state.kept += len(kept)
        if state.fresh and state.spill is not None:
            state.spill.put(ROWS, diff.new_rows(rows))
        elif state.fresh:
            sink.submit(partial(self._insert_rows, diff.new_rows(rows), state.next_id, state.vault_run))
            state.next_id += len(rows)
        else:
            if rows or kept:
                sink.submit(partial(_stage, diff.new_rows(rows), kept))
            if state.spill is not None:
                state.spill.put(SHAS, [r[2] for _, r in rows])
        if self.embed is not None:
            self._put_vectors(sink, state, self.embed.ready())
    def _probe(self, reader: sqlite3.Connection, shas: list[str]) -> dict[str, tuple[int, bool]]:
        """sha256 -> (doc_id, has a vector of the current model) of the account's rows among ``shas``."""
        marks = ",".join("?" * len(shas))
        if self.embed is None:
            sql = (f"SELECT sha256, doc_id, 1 FROM documents INDEXED BY documents_sha256 "
                   f"WHERE sha256 IN ({marks}) AND source = ? AND account = ?")
            params: list[Any] = [*shas, self.source, self.account]
        else:
            sql = (f"SELECT d.sha256, d.doc_id, v.sha256 IS NOT NULL FROM documents d INDEXED BY documents_sha256 "
                   f"LEFT JOIN vectors v ON v.sha256 = d.sha256 AND v.model = ? "
                   f"WHERE d.sha256 IN ({marks}) AND d.source = ? AND d.account = ?")
            params = [self.vector_model, *shas, self.source, self.account]
        return {sha: (doc_id, bool(has)) for sha, doc_id, has in reader.execute(sql, params)}

    def _queue_vector(self, row: Row) -> None:
        if self.embed is not None:
            self.embed.add(row[2], row[0], row[4], row[7], row[6])

    def _put_vectors(self, sink: InsertThread, state: Pass, vectors: list[tuple[str, bytes]]) -> None:
        if not vectors:
            return
        if state.spill is not None:
            state.spill.put(VECTORS, vectors)
        else:
            sink.submit(partial(vector_store.put, model=self.vector_model, rows=vectors))

    def _derive(self, data: bytes, sha: str, number: int) -> Row:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise LoadFailed("CANONICAL_INVALID", number) from None
        if not isinstance(doc, dict):
            raise LoadFailed("CANONICAL_INVALID", number)
        kind, entity = doc.get("kind"), doc.get("source_id")
        if (not isinstance(kind, str) or not kind or not isinstance(entity, str) or not entity
                or doc.get("source") != self.source or doc.get("account") != self.account):
            raise LoadFailed("CANONICAL_INVALID", number)
        d = derive(doc)
        return (kind, entity, sha, d.time, d.title, d.dedupe_key, d.body, d.names, d.notes)

    def _insert_rows(self, rows: list[tuple[Any, ...]], first_id: int, vault_run: str | None,
                     conn: sqlite3.Connection) -> None:
        """A one-pass first load's batch (insert thread)."""
        swap.insert_rows(conn, rows, first_id, source=self.source, account=self.account, vault_run=vault_run,
                         transforms=self.transforms)


def _stage(new: list[tuple[Any, ...]], kept: list[tuple[int, int]], conn: sqlite3.Connection) -> None:
    """A diffed account's batch (insert thread): new rows and matched rows into the scratch tables."""
    if new:
        conn.executemany(diff.NEW_SQL, new)
    if kept:
        conn.executemany(diff.KEPT_SQL, kept)


def fd_sha256(fd: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def lines_of(fd: int) -> Iterator[bytes]:
    """The lines of the open file from its start (the same inode the hash was taken of)."""
    with os.fdopen(os.dup(fd), "rb", buffering=1 << 20) as fh:
        fh.seek(0)
        yield from fh
