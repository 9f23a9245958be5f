"""The spill of an index load: what its transaction needs, prepared before the write lock.

Why a module of its own: a load reads, hashes, parses and embeds its account's file without
holding SQLite's write lock (phase A), so loads of different accounts run side by side; only
the swap into the index (phase B) takes the lock (docs/index.md section 6, "Prepare without
the lock, swap under it"). Everything phase B inserts that is not already in the diff's
scratch tables (:mod:`engine.index.diff`) is appended here: a first load's derived rows, the
sha256 of a reload's new rows (for the object check) and the vectors.

Format: records of a 4-byte little-endian length and a :mod:`marshal` dump of
``(tag, payload)``; marshal loads only plain values (no code runs on load, unlike pickle) and
was the cheapest format measured (50,000 rows: 0.07 CPU-s to stage against 0.24 - 0.45 s for
a scratch SQLite table; replay no dearer). Records are read back one at a time, so memory
stays flat in the account's size.

The file is ``vector-store/.load-<pid>-<token>.spill`` (0600, inside the workspace: it holds
document text like the index; never in /tmp), never synced (a crash discards it), removed
when the load ends; one left by a killed worker is removed by the next load
(:func:`engine.index.diff.remove_stale`).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.store.fsutil import create_private

ROWS = "r"
"""A first load's batch: :data:`engine.index.diff.NEW_SQL` parameters, line number first."""
SHAS = "s"
"""A reload's batch: the sha256 of its new rows (their objects must exist at the swap)."""
VECTORS = "v"
"""``(sha256, BLOB)`` pairs for the ``vectors`` table."""

SUFFIX = ".spill"
_HEAD = 4


class Spill:
    """An append-only file of marshalled records, written in phase A and replayed in phase B."""

    def __init__(self, path: Path) -> None:
        self.path = path
        create_private(path)
        self._out: Any = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by finish/remove
        self.records = 0
        self.bytes = 0

    @classmethod
    def create(cls, folder: Path, stem: str) -> Spill:
        """A new private spill file ``folder/<stem>.spill`` (``stem`` names the load)."""
        return cls(folder / f"{stem}{SUFFIX}")

    def put(self, tag: str, payload: list[Any]) -> None:
        """Append one record (phase A)."""
        if not payload:
            return
        blob = marshal.dumps((tag, payload))
        self._out.write(len(blob).to_bytes(_HEAD, "little"))
        self._out.write(blob)
        self.records += 1
        self.bytes += _HEAD + len(blob)

    def finish(self) -> None:
        """End phase A: flush the buffer (no fsync: the file never outlives its load)."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def replay(self) -> Iterator[tuple[str, list[Any]]]:
        """The records in the order they were put (phase B), one at a time."""
        self.finish()
        with open(self.path, "rb", buffering=1 << 20) as fh:
            while head := fh.read(_HEAD):
                size = int.from_bytes(head, "little")
                blob = fh.read(size)
                if len(head) != _HEAD or len(blob) != size:
                    raise OSError(f"spill file {self.path} is truncated")
                tag, payload = marshal.loads(blob)
                yield tag, payload

    def remove(self) -> None:
        """Close and delete the file (every end of the load: success, failure, cancel)."""
        with contextlib.suppress(OSError):
            self.finish()
        self.path.unlink(missing_ok=True)


class ObjectCheck:
    """Checks, in a thread of its own, that the object of every row a swap adds exists.

    Phase A writes (and flushes) the objects before the write lock is taken; the swap then
    commits rows naming them. Only :func:`engine.index.store.remove_unreferenced` deletes
    objects, and only those listed in ``gc_pending`` for its own account (an object's bytes
    name their source and account, so two accounts never share one); the loader finishes its
    account's pending removals before phase A and the swap re-checks that none appeared. This
    check is the guard that fails loudly if that reasoning ever stops holding: a ``stat`` per
    new object (about 3 µs), overlapping the swap's SQLite work.
    """

    def __init__(self, objects: Path) -> None:
        self.objects = objects
        self.checked = 0
        self.missing = 0
        self._queue: queue.Queue[list[str] | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="objects-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        root = os.open(self.objects, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while (shas := self._queue.get()) is not None:
                for sha in shas:
                    try:
                        os.stat(f"{sha[:2]}/{sha[2:4]}/{sha}.json", dir_fd=root, follow_symlinks=False)
                    except FileNotFoundError:
                        self.missing += 1
                self.checked += len(shas)
        except BaseException as exc:  # noqa: BLE001 - handed to the loader by join()
            self._error = exc
            while self._queue.get() is not None:
                pass
        finally:
            os.close(root)

    def add(self, shas: list[str]) -> None:
        """Queue sha256s to check (waits while 8 batches are queued)."""
        self._queue.put(shas)

    def join(self) -> int:
        """Wait for every check; the count of missing objects (raise the thread's error)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.missing

    def close(self) -> None:
        """Stop the thread (on an error in the loader)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
