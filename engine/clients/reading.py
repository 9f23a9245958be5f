"""Every indexed document into the project task's scratch database, on two cores.

Reading is the project task's largest phase: each document is parsed and reduced to its
facts (:meth:`engine.clients.stream.Scratch.add`). Accounts do not depend on each other, so
above :data:`READ_SHARD_MIN` documents a forked child (:mod:`engine.clients.forked`) and the
task share them: each takes the next account from a queue (:class:`AccountQueue`, largest
first) until none is left, the child into a scratch database of its own; the task then
copies the child's rows into its own (one ``INSERT ... SELECT``: the rows are keyed by
account number, kind and entity id, and no account is read by both, so the result is the
very table one process would have written) and takes over the child's defining facts
and referenced documents. The child reads the index through a read-only connection of its
own and sends back only those facts (PHI, through a pipe, never leaving the task's memory)
or an error kind.

An account whose canonical file is the one its rows were built from (the meta's sha256
equals the index's ``canonical_sha256``) is read sequentially from that file: its lines are
the index's objects byte for byte, found by their sha256 (one indexed ``IN`` query per 256
lines, not a dict of the account's rows: that grew with the account; a byte per ``doc_id``
marks the rows read). Rows the file does not give (it changed since: canonize ran, index
failed) are read from their object files, 256 at a time, so the documents in force are
always the index's. The bytes of each form response read either way are kept in the scratch
database too (:data:`engine.clients.stream.KEPT_KIND`): the measures step scores them from
there in one sequential pass instead of opening one object file per response.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson

from engine.clients import forked, stream
from engine.clients.model import DocRef
from engine.index.store import ObjectCorrupt, ObjectMissing, StoreError, read_object
from engine.store.fsutil import read_json, section

T = TypeVar("T")
LOOKUP_BATCH = 256
"""Canonical lines matched to their index rows by one ``sha256 IN (...)`` query."""
READ_SHARD_MIN = int(os.environ.get("LORCH_READ_SHARD_MIN", "50000"))
"""Documents below which one process reads every account (``LORCH_READ_SHARD_MIN``)."""

PAYLOAD_CHUNK = 1024
"""Defining facts (or referenced documents) per pickle the reading helper sends back: one
pickle of everything kept a memo entry per object alive at once (at 1,000,000 demo records a
12.8 MB payload took the helper from 146 to 225 MiB); chunks keep that memo small."""

Account = tuple[str, str, str, int]
"""(source, account, canonical sha256, documents) of an ``accounts`` row."""


def batched(items: Iterator[T], n: int) -> Iterator[list[T]]:
    """Lists of ``n`` items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


class Reader:
    """Reads accounts of one index into one scratch database."""

    def __init__(self, canonical: Path, objects: str, conn: sqlite3.Connection,
                 scratch: stream.Scratch, progress: Callable[[int], None]) -> None:
        self.canonical = canonical
        self.objects = objects
        self.conn = conn
        self.scratch = scratch
        self.progress = progress
        self.done = 0
        self.kinds: dict[str, str] = {}  # one string per kind, not one per document
        top = conn.execute("SELECT max(doc_id) FROM documents").fetchone()[0] or 0
        self.read = bytearray(top + 1)  # doc_id -> 1 once read: one byte per document

    def accounts(self, accounts: Iterable[Account]) -> None:
        """Read these accounts."""
        for source, account, canonical_sha, _ in accounts:
            self._from_file(source, account, canonical_sha)
            self._from_objects(source, account)

    def _add(self, source: str, account: str, kind: str, entity: str, data: bytes,
             when: str | None, title: str | None) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = {}
        ref = DocRef(source, account, self.kinds.setdefault(kind, kind), entity)
        self.scratch.add(ref, doc if isinstance(doc, dict) else {}, when, title, data)
        self.done += 1
        if self.done % 512 == 0:
            self.progress(self.done)

    def _from_file(self, source: str, account: str, canonical_sha: str) -> None:
        read = self.read
        for batch in batched(self._canonical_lines(source, account, canonical_sha), LOOKUP_BATCH):
            found: dict[str, list[tuple[int, str, str, str | None, str | None]]] = {}
            for doc_id, kind, entity, sha, src, acct, when, title in self.conn.execute(  # sha256 index
                    "SELECT doc_id, kind, entity_id, sha256, source, account, time, title "  # noqa: S608
                    f"FROM documents WHERE sha256 IN ({','.join('?' * len(batch))})",
                    [sha for sha, _ in batch]):
                if src == source and acct == account:
                    found.setdefault(sha, []).append((doc_id, kind, entity, when, title))
            for sha, data in batch:
                for doc_id, kind, entity, when, title in found.get(sha, ()):
                    if not read[doc_id]:
                        read[doc_id] = 1
                        self._add(source, account, kind, entity, data, when, title)

    def _from_objects(self, source: str, account: str) -> None:
        ids = (doc_id for (doc_id,) in self.conn.execute(  # a covering index scan: ids only
            "SELECT doc_id FROM documents WHERE source = ? AND account = ?", (source, account))
               if not self.read[doc_id])
        for chunk in batched(ids, LOOKUP_BATCH):
            rest = self.conn.execute(
                "SELECT sha256, kind, entity_id, time, title FROM documents "  # noqa: S608
                f"WHERE doc_id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            for sha, kind, entity, when, title in sorted(rest):
                try:
                    data = read_object(self.objects, sha)  # checked: ObjectCorrupt fails the task
                except (ObjectMissing, OSError):
                    data = b"{}"  # gone: still listed (linked by nothing it says)
                self._add(source, account, kind, entity, data, when, title)

    def _canonical_lines(self, source: str, account: str, canonical_sha: str) -> Iterator[tuple[str, bytes]]:
        """(sha256, line) of the account's canonical file, when it is the indexed one."""
        folder = self.canonical / source
        try:
            meta = read_json(folder / f"{account}.meta.json")
            if section(meta, "output").get("sha256") != canonical_sha:
                return
            fh = open(folder / f"{account}.jsonl", "rb")  # noqa: SIM115
        except (OSError, ValueError, AttributeError):
            return
        with fh:
            sha256 = hashlib.sha256
            for line in fh:
                yield sha256(line).hexdigest(), line


def shared(accounts: list[Account]) -> bool:
    """Whether a forked child reads with the task: not below READ_SHARD_MIN documents, with
    one account, without ``fork``, or with more accounts than the queue holds."""
    total = sum(a[3] for a in accounts)
    return (total >= READ_SHARD_MIN and 2 <= len(accounts) <= AccountQueue.MOST
            and forked.can_fork())


class AccountQueue:
    """The accounts, dealt one at a time to whichever process asks first (the task or its
    reading helper), largest first.

    A fixed split into two bins of equal documents left one process waiting for the other
    (accounts of the same size differ in cost by 2x: at 1,000,000 demo records the task waited
    3.1 s for its helper, then copied the helper's rows, all with one core idle). Here the
    account numbers wait in a pipe, written before the fork and closed for writing: each
    process reads one number of :data:`WIDTH` bytes (a pipe read of a few bytes is atomic, so
    no account is read twice) until the pipe is empty. Largest first, so the last accounts,
    which decide who waits, are the small ones.
    """

    WIDTH = 2
    MOST = 2_048
    """Accounts a queue holds: every number is written before the fork, into a pipe that
    holds at least one 4 KiB page (Linux shrinks new pipes to one page for a user over
    ``pipe-user-pages-soft``), so more could block the writer; above it one process reads."""

    def __init__(self, accounts: list[Account]) -> None:
        self.accounts = sorted(accounts, key=lambda a: (-a[3], a[0], a[1]))
        r, w = os.pipe()
        try:
            os.write(w, b"".join(n.to_bytes(self.WIDTH, "big") for n in range(len(self.accounts))))
        finally:
            os.close(w)
        self.fd = r

    def __iter__(self) -> Iterator[Account]:
        while len(got := os.read(self.fd, self.WIDTH)) == self.WIDTH:
            yield self.accounts[int.from_bytes(got, "big")]

    def close(self) -> None:
        """Close this process's end of the queue."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def read_all(ws_canonical: Path, objects: str, db: Path, conn: sqlite3.Connection,
             scratch: stream.Scratch, progress: Callable[[int, int | None], None], *,
             skip_source: str, only: Collection[tuple[str, str]] | None = None) -> int:
    """Every indexed document but those of ``skip_source`` (the measurements, which the
    project task itself writes) into ``scratch``; return how many. With ``only``, the
    accounts ``(source, account)`` it lists and no other (the config's extractors)."""
    accounts: list[Account] = [a for a in conn.execute(
        "SELECT source, account, canonical_sha256, documents FROM accounts "
        "WHERE source != ? ORDER BY source, account", (skip_source,)).fetchall()
        if only is None or (a[0], a[1]) in only]
    if only is None:
        total = conn.execute("SELECT count(*) FROM documents WHERE source != ?", (skip_source,)).fetchone()[0]
    else:
        total = sum(conn.execute("SELECT count(*) FROM documents WHERE account = ? AND source = ?",
                                 (a[1], a[0])).fetchone()[0] for a in accounts)
    for source, account, _, _ in accounts:
        scratch.account(source, account)
    part = stream.part_path(scratch.path)
    queue = AccountQueue(accounts) if shared(accounts) else None
    child = forked.Child(lambda: _child(ws_canonical, objects, db, scratch, part, queue)) if queue else None
    try:
        reader = Reader(ws_canonical, objects, conn, scratch, lambda n: progress(n, total))
        reader.accounts(queue if queue is not None else accounts)
        done = reader.done
        if child is not None:
            got = pickle.loads(child.result())  # noqa: S301 - our own child's payload
            _raise(got)
            _, defining, targets, documents = got
            scratch.merge(part, _unchunk(defining), _unchunk(targets), documents)
            done += documents
    finally:
        if queue is not None:
            queue.close()
        if child is not None:
            child.stop()
            stream.remove(part)
    progress(done, total)
    return done


def _child(canonical: Path, objects: str, db: Path, parent: stream.Scratch, part: Path,
           accounts: Iterable[Account]) -> bytes:
    """In the forked child: read ``accounts`` (its share of the queue) into the scratch
    database ``part``."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA cache_size = -{stream.CACHE_KIB}")
        own = stream.Scratch(part, parent.resolver)  # the inherited resolver: same config
        for (source, account) in parent.accts:
            own.account(source, account)  # the same account numbers as the task's
        Reader(canonical, objects, conn, own, lambda n: None).accounts(accounts)
        own.finish()
        defining = _chunks(own.defining)
        own.defining = []
        payload: tuple[Any, ...] = ("ok", defining, _chunks(list(own.resolver.targets)), own.documents)
    except ObjectCorrupt as exc:
        payload = ("corrupt", exc.sha256, exc.path)
    except StoreError as exc:
        payload = ("store", exc.code)
    except sqlite3.Error:
        payload = ("sqlite",)
    except OSError:
        payload = ("os",)
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def _chunks(items: list[Any]) -> list[bytes]:
    """``items`` as pickles of :data:`PAYLOAD_CHUNK` items each (in order)."""
    return [pickle.dumps(items[i:i + PAYLOAD_CHUNK], protocol=pickle.HIGHEST_PROTOCOL)
            for i in range(0, len(items), PAYLOAD_CHUNK)]


def _unchunk(chunks: list[bytes]) -> list[Any]:
    """The items of :func:`_chunks`, in order; each chunk is dropped once read."""
    items: list[Any] = []
    chunks.reverse()
    while chunks:
        items += pickle.loads(chunks.pop())  # noqa: S301 - our own child's payload
    return items


def _raise(got: tuple[Any, ...]) -> None:
    """Raise in the task what the child met (the task maps it to its error code)."""
    kind = got[0]
    if kind == "corrupt":
        raise ObjectCorrupt(got[1], got[2])
    if kind == "store":
        raise StoreError(got[1], "the index could not be read")
    if kind == "sqlite":
        raise sqlite3.OperationalError("the index could not be read")
    if kind == "os":
        raise OSError("a document could not be read")
