"""A packed object layout, measured beside the real one (issue 18 asks to measure it).

Not the product's layout: DESIGN.md fixes ``vector-store/objects/ab/cd/<sha256>.json``, one
file per canonical document, and the index, ``verify`` and the project read that. Issue 18
names the object files as the first load's bottleneck and lists "a packed object layout (the
contract that ``sha256sum`` of an object equals its name may move to a documented
equivalent)" among the levers to measure. This module is that measurement and nothing more:
:class:`PackWriter` takes the place of :class:`engine.index.objects.ObjectWriter` in the
real loader (row d of ``bench.index``; ``--no-packed`` skips it), so every other part of a first load (hashing,
parsing, deriving, the five b-tree indexes, FTS5, the vectors, the transaction) is the
product's own code, and only the objects differ:

* each object's bytes are appended to one pack file per load (``packs/<pid>-<n>.pack``,
  0600, written through a 1 MiB buffer), and ``(sha256, pack, offset, length)`` rows go into
  a ``WITHOUT ROWID`` table keyed by sha256 in ``packs.sqlite`` (one transaction): the
  documented equivalent of ``sha256sum`` = name would be "the sha256 of the pack's bytes at
  ``offset``/``length`` is the row's key";
* :meth:`PackWriter.finish` flushes the pack, ``fsync``\\ s it and commits the rows, where
  the real writer flushes the file system once (``syncfs``).

What a product version would still need (and is not measured here): reading an object
through its row (``read_object``, the project's reader, ``lorchestra verify``), removing
unreferenced objects by rewriting packs, and the pack rows in the index's own transaction.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from pathlib import Path

from engine.store.fsutil import FILE_MODE, ensure_dir

_SEQ = itertools.count()


class PackWriter:
    """The interface of :class:`engine.index.objects.ObjectWriter`, backed by one pack file."""

    BUFFER = 1 << 20

    def __init__(self, objects: Path, threads: int = 2, *, verify: bool = False) -> None:
        del threads  # appends to one file: no writer threads
        self.objects = ensure_dir(objects)
        """The real layout's folder (left empty: the loader's collection looks there)."""
        self.verify = verify
        packs = ensure_dir(objects.parent / "packs")
        self.path = packs / f"{os.getpid()}-{next(_SEQ)}.pack"
        self._fh = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE),
                             "wb", buffering=self.BUFFER)
        self._db = objects.parent / "packs.sqlite"
        self._rows: list[tuple[str, str, int, int]] = []
        self._seen: set[str] = set()
        self._offset = 0
        self.written = 0
        self.bytes = 0
        self.repaired = 0
        self.flush_s = 0.0

    def write(self, sha256: str, data: bytes) -> None:
        """Append ``data`` unless this load appended it already."""
        if sha256 in self._seen:
            return
        self._seen.add(sha256)
        self._fh.write(data)
        self._rows.append((sha256, self.path.name, self._offset, len(data)))
        self._offset += len(data)
        self.written += 1
        self.bytes += len(data)

    def check(self, sha256: str, data: bytes) -> None:
        """With ``verify``: append what is missing (the bench's store is this load's)."""
        if self.verify:
            self.write(sha256, data)

    def finish(self, *, sync: bool = True) -> None:
        """Flush and ``fsync`` the pack, then commit its rows in one transaction."""
        started = time.monotonic()
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        con = sqlite3.connect(self._db, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS packed (sha256 TEXT PRIMARY KEY, pack TEXT NOT NULL, "
                        "offset INTEGER NOT NULL, length INTEGER NOT NULL) WITHOUT ROWID")
            con.execute("BEGIN")
            con.executemany("INSERT OR IGNORE INTO packed VALUES (?, ?, ?, ?)", self._rows)
            con.execute("COMMIT")
        finally:
            con.close()
        self._rows = []
        self.flush_s += time.monotonic() - started

    def close(self) -> None:
        """Close the pack file."""
        if not self._fh.closed:
            self._fh.close()


def read_packed(store: Path, sha256: str) -> bytes:
    """The object's bytes from its pack (for the benchmark's own check of what it wrote)."""
    con = sqlite3.connect(f"file:{store / 'packs.sqlite'}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT pack, offset, length FROM packed WHERE sha256 = ?", (sha256,)).fetchone()
    finally:
        con.close()
    if row is None:
        raise KeyError(sha256)
    with open(store / "packs" / row[0], "rb") as fh:
        fh.seek(row[1])
        return fh.read(row[2])
