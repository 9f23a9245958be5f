"""Content-addressed object files of the index: written once, straight to their final name.

Why a module of its own: creating one file per document is the costliest kernel work of a
first load, and its rules (``O_CREAT | O_EXCL`` under the final name, torn files found and
rewritten, one ``syncfs`` before the commit, a bounded queue of batches for a few writer
threads) are independent of the SQLite side (:mod:`engine.index.store`) and of the loading
order (:mod:`engine.index.load`). The layout itself (``objects/ab/cd/<sha256>.json``) is
defined once, in :func:`engine.index.store.object_path`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from engine.index.store import object_path, sync_filesystem
from engine.store.fsutil import DIR_MODE, FILE_MODE


class ObjectWriter:
    """Writes content-addressed objects once, straight to their final name; folders 0700, files 0600.

    Creating files is the slowest part of a first load (an inode per document, and a folder
    per new ``ab/cd``), and the kernel does it while the GIL is released, so batches go to a
    few threads while the caller goes on parsing. Each object is created with
    ``O_CREAT | O_EXCL`` under its final name (no temporary file, no rename), relative to an
    open descriptor of the objects folder (a short path lookup). That is safe because no row
    references an object before :meth:`finish` has flushed the file system and the
    transaction that adds the row has committed: a file left half-written by a killed load
    is never read through a committed row. When the name exists already, its bytes are
    compared: equal (an unchanged object, or one a killed load finished) it is kept;
    different (torn by a killed load, or by a crash before the flush) it is rewritten under
    a temporary name and renamed over. Files are not fsynced one by one; :meth:`finish` waits
    for every write and flushes the file system once.

    At most ``PENDING`` batches wait for a thread: the caller then waits, which bounds the
    memory held by queued objects whatever the account's size.
    """

    BATCH = 512
    PENDING = 16
    SYNC_AHEAD = 8192
    """Objects written between two background flushes (``syncfs`` in a thread of its own while
    the load goes on), so the flush before the commit finds little left to write."""

    def __init__(self, objects: Path, threads: int = 2, *, verify: bool = False) -> None:
        self.objects = objects
        self.verify = verify
        """Also check the objects of kept rows (:meth:`check`; ``--force``)."""
        self._root: int | None = None
        self._suffix = f".tmp-{os.getpid()}"
        self._batch: list[tuple[str, bytes]] = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="objects") if threads > 0 else None
        self._futures: deque[Future[tuple[int, int]]] = deque()
        self.written = 0
        self.bytes = 0
        self.repaired = 0
        """Objects found torn or damaged (different bytes under their name) and rewritten."""
        self._lock = threading.Lock()
        self.flush_s = 0.0
        self._since_sync = 0
        self._syncing: threading.Thread | None = None

    def _root_fd(self) -> int:
        if self._root is None:
            self._root = os.open(self.objects, os.O_RDONLY | os.O_DIRECTORY)
        return self._root

    def exists(self, sha256: str) -> bool:
        """Whether the object is already stored."""
        return object_path(Path(self.objects), sha256).exists()

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
            self._account(self._write_batch(root, batch))
            return
        while len(self._futures) >= self.PENDING:
            self._account(self._futures.popleft().result())
        self._futures.append(self._pool.submit(self._write_batch, root, batch))

    def _account(self, done: tuple[int, int]) -> None:
        self.written += done[0]
        self.bytes += done[1]
        self._since_sync += done[0]
        if self._since_sync >= self.SYNC_AHEAD and (self._syncing is None or not self._syncing.is_alive()):
            self._since_sync = 0
            self._syncing = threading.Thread(target=sync_filesystem, args=(self.objects,),
                                             name="objects-sync", daemon=True)
            self._syncing.start()

    def _write_batch(self, root: int, batch: list[tuple[str, bytes]]) -> tuple[int, int]:
        written = size = 0
        for sha256, data in batch:
            rel = f"{sha256[:2]}/{sha256[2:4]}"
            name = f"{rel}/{sha256}.json"
            try:
                fd = _create(root, name, sha256)
            except FileExistsError:
                if _same_bytes(root, name, data):
                    continue
                self._rewrite(root, rel, sha256, data)
                with self._lock:
                    self.repaired += 1
            else:
                try:
                    _write_all(fd, data)
                except BaseException:
                    os.close(fd)
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=root)
                    raise
                os.close(fd)
            written += 1
            size += len(data)
        return written, size

    def _rewrite(self, root: int, rel: str, sha256: str, data: bytes) -> None:
        """Replace a torn object: temporary file, then rename over it."""
        tmp = f"{rel}/.{sha256}{self._suffix}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE, dir_fd=root)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, f"{rel}/{sha256}.json", src_dir_fd=root, dst_dir_fd=root)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=root)
            raise

    def finish(self, *, sync: bool = True) -> None:
        """Wait for every queued write (re-raising the first error), then flush once.

        ``sync`` also when nothing was written now: objects found in place may come from a
        killed run that never flushed them.
        """
        self._submit()
        futures, self._futures = self._futures, deque()
        for f in futures:
            self._account(f.result())
        if sync:
            started = time.monotonic()
            if self._syncing is not None:
                self._syncing.join()
            sync_filesystem(self.objects)
            self.flush_s += time.monotonic() - started

    def close(self) -> None:
        """Stop the threads (after :meth:`finish`, or to abandon the writes on an error)."""
        if self._syncing is not None:
            self._syncing.join()
            self._syncing = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._root is not None:
            os.close(self._root)
            self._root = None


def _create(root: int, name: str, sha256: str) -> int:
    """Create ``name`` (relative to ``root``) exclusively; its ``ab/cd`` folders only when missing.

    The folders are created on ``ENOENT`` rather than checked first: after a store's first few
    thousand objects nearly every leaf exists, and a ``mkdir`` answered ``EEXIST`` per object
    (each account's writer knew only the folders it had made itself) was a system call per
    document for nothing.
    """
    try:
        return os.open(name, _CREATE_NEW, FILE_MODE, dir_fd=root)
    except FileNotFoundError:
        leaf = f"{sha256[:2]}/{sha256[2:4]}"
        try:
            os.mkdir(leaf, DIR_MODE, dir_fd=root)
        except FileExistsError:  # another account's writer made it meanwhile
            pass
        except FileNotFoundError:  # a new ``ab`` too
            with contextlib.suppress(FileExistsError):
                os.mkdir(sha256[:2], DIR_MODE, dir_fd=root)
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf, DIR_MODE, dir_fd=root)
        return os.open(name, _CREATE_NEW, FILE_MODE, dir_fd=root)


_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _same_bytes(root: int, name: str, data: bytes) -> bool:
    """Whether the file ``name`` (relative to ``root``) holds exactly ``data``."""
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), dir_fd=root)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size != len(data):
            return False
        got = b""
        while len(got) < len(data):
            chunk = os.read(fd, len(data) - len(got))
            if not chunk:
                break
            got += chunk
        return got == data
    finally:
        os.close(fd)
