"""The index transaction's insert thread: SQLite work overlapping the reading of the file.

Why a module of its own: Python's sqlite3 releases the GIL inside ``sqlite3_step``, where
FTS5 tokenises and the b-trees grow, so inserts run by a second thread overlap the loader's
reading, hashing, parsing and object writes on the other core (docs/index.md section 6).
:class:`InsertThread` runs the loader's statements, in the order given, on the loader's
writer connection, inside the transaction the loader opened. The queue holds at most
``DEPTH`` batches: the reader waits when SQLite is behind, so memory stays bounded.

One thread uses the connection at a time: the loader hands work over with :meth:`submit`
and uses the connection itself again only after :meth:`join`. The first error raised by a
statement stops the remaining work and is raised again in the loader by the next
:meth:`submit` or by :meth:`join`.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable

Work = Callable[[sqlite3.Connection], None]

DEPTH = 8
"""Batches waiting for the insert thread before the reader waits."""


class InsertThread:
    """Runs work items on ``conn`` in a dedicated thread, in submission order."""

    def __init__(self, conn: sqlite3.Connection, depth: int = DEPTH) -> None:
        self.conn = conn
        self._queue: queue.Queue[Work | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancel = False
        self._thread = threading.Thread(target=self._run, name="index-insert", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            if self._error is None and not self._cancel:
                try:
                    work(self.conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the loader's thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._cancel = True
            raise error

    def submit(self, work: Work) -> None:
        """Queue ``work`` (waits while ``DEPTH`` items are queued); raise an earlier item's error."""
        self._raise()
        self._queue.put(work)

    def join(self) -> None:
        """Run everything queued, stop the thread, and raise the first error of any item."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def close(self) -> None:
        """Abandon what is still queued and stop the thread (on an error in the loader)."""
        self._cancel = True
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            try:
                self._queue.put(None, timeout=0.1)
            except queue.Full:
                continue
            self._thread.join()
