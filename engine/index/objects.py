"""Content-addressed object files of the index: written once, straight to their final name.

Why a module of its own: creating one file per document is the costliest kernel work of a
first load, and its rules (``O_CREAT | O_EXCL`` under the final name, torn files found and
rewritten: :mod:`engine.index.objfiles`; one ``syncfs`` before the commit; a bounded queue of
batches for writer threads or a helper process: :mod:`engine.index.objproc`) are independent
of the SQLite side (:mod:`engine.index.store`) and of the loading order
(:mod:`engine.index.load`). The layout itself (``objects/ab/cd/<sha256>.json``) is defined
once, in :func:`engine.index.store.object_path`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from engine.index.objfiles import Batch, write_batch
from engine.index.objproc import Helper
from engine.index.store import sync_filesystem


class ObjectWriter:
    """Writes content-addressed objects once, straight to their final name; folders 0700, files 0600.

    Creating files is the slowest part of a first load (an inode per document, and a folder
    per new ``ab/cd``). The first ``PROCESS_AFTER`` batches go to a few threads (the kernel
    work releases the GIL); from then on a load is big enough to pay for a helper process
    (about 50 ms to start), which gets every later batch through a pipe and creates the files
    on the other core without waiting for the worker's GIL (:mod:`engine.index.objproc`).
    Each object is created with ``O_CREAT | O_EXCL`` under its final name (no temporary
    file, no rename), relative to an open descriptor of the objects folder. That is safe
    because no row references an object before :meth:`finish` has waited for every write,
    flushed the file system and the transaction that adds the row has committed: a file
    left half-written by a killed load is never read through a committed row. When the name
    exists already, its bytes are compared: equal (an unchanged object, or one a killed load
    finished) it is kept; different (torn by a killed load, or by a crash before the flush)
    it is rewritten under a temporary name and renamed over. Files are not fsynced one by one.

    At most ``PENDING`` batches wait for a thread or for the pipe: the caller then waits,
    which bounds the memory held by queued objects whatever the account's size.
    """

    BATCH = 512
    PENDING = 16
    PROCESS_AFTER = 4
    """Batches written by threads before the rest go to a helper process (2,048 objects: a
    small load never starts one)."""
    SYNC_AHEAD = 8192
    """Objects handed over between two background flushes (``syncfs`` in a thread of its own
    while the load goes on), so the flush before the commit finds little left to write."""

    def __init__(self, objects: Path, threads: int = 2, *, verify: bool = False,
                 process: bool | None = None) -> None:
        self.objects = objects
        self.verify = verify
        """Also check the objects of kept rows (:meth:`check`; ``--force``)."""
        self.process = (threads > 0) if process is None else process
        """Hand batches beyond ``PROCESS_AFTER`` to a helper process (not with ``threads=0``:
        everything then runs in the caller, as the tests of the file rules want)."""
        self._root: int | None = None
        self._suffix = f".tmp-{os.getpid()}"
        self._batch: Batch = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="objects") if threads > 0 else None
        self._sender: ThreadPoolExecutor | None = None
        self._helper: Helper | None = None
        self._futures: deque[Future[tuple[int, int, int, int]]] = deque()
        self._submitted = 0
        self.helpers_started = 0
        """Helper processes this writer started (one per :meth:`finish` at most)."""
        self.written = 0
        self.bytes = 0
        self.repaired = 0
        """Objects found torn or damaged (different bytes under their name) and rewritten."""
        self.flush_s = 0.0
        self._since_sync = 0
        self._syncing: threading.Thread | None = None

    def _root_fd(self) -> int:
        if self._root is None:
            self._root = os.open(self.objects, os.O_RDONLY | os.O_DIRECTORY)
        return self._root

    def write(self, sha256: str, data: bytes) -> None:
        """Store ``data`` under ``sha256`` unless it is there already (possibly in a thread).

        An object already there is read back and rewritten when its bytes are not ``data``.
        Nothing is remembered per object (memory stays flat whatever the account's size): an
        object handed over twice is found in place the second time.
        """
        self._batch.append((sha256, data))
        if len(self._batch) >= self.BATCH:
            self._submit()

    def check(self, sha256: str, data: bytes) -> None:
        """With ``verify``: make sure the object a kept row names is there and intact."""
        if self.verify:
            self.write(sha256, data)

    def _submit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        root = self._root_fd()
        if self._pool is None:
            self._account((*write_batch(root, batch, self._suffix), len(batch)))
            return
        while len(self._futures) >= self.PENDING:
            self._account(self._futures.popleft().result())
        self._submitted += 1
        if self.process and self._submitted > self.PROCESS_AFTER and self._helper is None:
            self._start_helper()
        if self._helper is not None:
            assert self._sender is not None
            self._futures.append(self._sender.submit(self._send, self._helper, batch))
        else:
            self._futures.append(self._pool.submit(self._write_batch, root, batch))

    def _start_helper(self) -> None:
        """Start the helper process; when the system refuses one (no processes or memory
        left), the threads go on writing every batch, as they did before the helper."""
        try:
            self._helper = Helper(self.objects)
        except OSError:
            self.process = False
            return
        self.helpers_started += 1
        self._sender = self._sender or ThreadPoolExecutor(1, thread_name_prefix="objects-send")

    def _write_batch(self, root: int, batch: Batch) -> tuple[int, int, int, int]:
        return (*write_batch(root, batch, self._suffix), len(batch))

    @staticmethod
    def _send(helper: Helper, batch: Batch) -> tuple[int, int, int, int]:
        return 0, 0, 0, helper.send(batch)  # written and bytes come with the helper's result

    def _account(self, done: tuple[int, int, int, int]) -> None:
        written, size, repaired, handed = done
        self.written += written
        self.bytes += size
        self.repaired += repaired
        self._since_sync += handed
        if self._since_sync >= self.SYNC_AHEAD and (self._syncing is None or not self._syncing.is_alive()):
            self._since_sync = 0
            self._syncing = threading.Thread(target=sync_filesystem, args=(self.objects,),
                                             name="objects-sync", daemon=True)
            self._syncing.start()

    def finish(self, *, sync: bool = True) -> None:
        """Wait for every queued write and for the helper (re-raising the first error), then flush once.

        ``sync`` also when nothing was written now: objects found in place may come from a
        killed run that never flushed them.
        """
        self._submit()
        futures, self._futures = self._futures, deque()
        for f in futures:
            self._account(f.result())
        helper, self._helper = self._helper, None
        if helper is not None:
            written, size, repaired = helper.result()
            self._account((written, size, repaired, 0))
        if sync:
            started = time.monotonic()
            self._stop_sync()
            sync_filesystem(self.objects)
            self.flush_s += time.monotonic() - started

    def _stop_sync(self) -> None:
        """Wait for a background flush (one whose ``start()`` failed, no threads left, never
        ran: there is then nothing to wait for)."""
        syncing, self._syncing = self._syncing, None
        if syncing is not None:
            try:
                syncing.join()
            except RuntimeError:  # "cannot join thread before it is started"
                pass

    def close(self) -> None:
        """Stop the threads and the helper (after :meth:`finish`, or to abandon the writes on an error)."""
        if self._helper is not None:
            self._helper.terminate()  # a send blocked on the pipe returns now
        self._stop_sync()
        for pool in (self._sender, self._pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._sender = self._pool = None
        if self._helper is not None:  # no thread sends any more: its pipes can close
            self._helper.kill()
            self._helper = None
        if self._root is not None:
            os.close(self._root)
            self._root = None
