"""One vault part: a gzip stream of message lines, hashed as written, compressed off-thread.

Split from :mod:`engine.vault.writer` (which decides when a part opens and closes and what the
manifest says) so the byte path of a part -- buffering, compressing, hashing, the background
thread and its error hand-back -- is readable on its own. Every file operation goes through a
:class:`~engine.vault.storage.Storage`.

Speed (measured in ``bench/vault_writer.py``, figures in ``docs/performance.md``):

* Compression uses ISA-L's igzip through ``isal.isal_zlib`` when it is installed (a
  dependency; the fallback is the standard library's zlib). Its output is standard gzip
  (RFC 1952, readable by ``gzip.decompress`` and ``zlib``), at level 1 about 4x zlib's speed
  with the same compression ratio.
* Compressing, hashing and writing a 1 MiB chunk run on one background thread
  (``pipelined``), while the caller's thread parses and re-encodes the next records: both
  compressors and sha256 release the GIL, so the two overlap on a second core. At most
  :data:`MAX_PENDING` chunks wait, so memory stays bounded; chunks are written in order, and
  an error on the background thread (a full disk) is raised in the caller's thread by the
  next write or by ``close``.
"""

from __future__ import annotations

import errno
import hashlib
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from engine.vault.storage import LOCAL, Storage

FLUSH_BYTES = 1 << 20
MAX_PENDING = 2
"""Chunks (of about FLUSH_BYTES each) that may wait for the background compressor."""

BACKENDS: dict[str, ModuleType] = {"zlib": zlib}
"""The gzip implementations available here, by name."""
try:  # ISA-L igzip: standard gzip output, ~4x zlib at level 1
    from isal import isal_zlib

    BACKENDS["isal"] = isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps the vault working
    pass
DEFAULT_BACKEND = "isal" if "isal" in BACKENDS else "zlib"
"""The gzip implementation parts are written with: ``isal`` when importable, else ``zlib``."""


def gzip_compressor(level: int, backend: str | None = None) -> Any:
    """A compressobj writing one gzip member (wbits 31) with the chosen implementation.

    ISA-L has levels 0-3; a configured level above 3 uses zlib, which honours it.
    """
    name = backend or DEFAULT_BACKEND
    if name == "isal" and level > 3:
        name = "zlib"
    mod = BACKENDS[name]
    return mod.compressobj(level, mod.DEFLATED, 31)


class PartWriter:
    """One ``part-NNN.jsonl.gz``: gzip stream, sha256 of the compressed bytes, counts."""

    def __init__(self, path: Path, level: int, *, storage: Storage = LOCAL, backend: str | None = None,
                 pool: ThreadPoolExecutor | None = None) -> None:
        self.path = path
        self._storage = storage
        self._fh: BinaryIO = storage.create(path)
        self._zip = gzip_compressor(level, backend)
        self._sha = hashlib.sha256()
        self._pool = pool
        self._pending: deque[Future[None]] = deque()
        self._closing = False
        self._buf: list[bytes] = []
        self._buffered = 0
        self.bytes = 0
        self.uncompressed = 0
        self.records = 0
        self.messages = 0
        self.streams: dict[str, int] = {}

    def write(self, line: bytes) -> None:
        """Append one message line (ending in a newline)."""
        self._buf.append(line)
        self._buffered += len(line)
        self.uncompressed += len(line)
        self.messages += 1
        if self._buffered >= FLUSH_BYTES:
            self._flush()

    def write_record(self, stream: str, line: bytes) -> None:
        """Append one RECORD line of ``stream`` (counted as a record too)."""
        self.records += 1
        self.streams[stream] = self.streams.get(stream, 0) + 1
        self.write(line)

    def _flush(self) -> None:
        if not self._buf:
            return
        chunk = b"".join(self._buf)
        self._buf.clear()
        self._buffered = 0
        if self._pool is not None:
            try:
                self._pending.append(self._pool.submit(self._compress, chunk))
            except RuntimeError:  # the run's pool is stopped (finishing after a failure)
                self._pool = None
        if self._pool is None:
            self._drain()
            self._compress(chunk)
            return
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft().result()  # re-raises the background thread's OSError

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def _compress(self, chunk: bytes) -> None:
        self._emit(self._zip.compress(chunk))

    def _emit(self, data: bytes) -> None:
        if data:
            self._fh.write(data)
            self._sha.update(data)
            self.bytes += len(data)

    def close(self) -> dict[str, Any]:
        """Finish the gzip stream, fsync, and describe the part for the manifest.

        A part whose close already failed cannot be finished again (its compressor is spent):
        a second call raises OSError, so the caller abandons it with :meth:`abort`.
        """
        if self._closing:
            raise OSError(errno.EIO, "the part failed while closing")
        self._closing = True
        self._flush()
        self._drain()
        self._emit(self._zip.flush())
        self._storage.sync(self._fh)
        self._fh.close()
        return {
            "file": self.path.name,
            "sha256": self._sha.hexdigest(),
            "bytes": self.bytes,
            "uncompressed_bytes": self.uncompressed,
            "compression_ratio": round(self.uncompressed / self.bytes, 3) if self.bytes else None,
            "records": self.records,
            "messages": self.messages,
            "streams": dict(sorted(self.streams.items())),
        }

    def abort(self) -> None:
        """Close without finishing (the run failed while writing) and delete the file.

        The part is incomplete and the manifest never lists it; on a full disk, its space
        is what lets the failed run's manifest still be written.
        """
        while self._pending:
            try:
                self._pending.popleft().result()
            except Exception:  # noqa: BLE001 - the part is abandoned; the caller has the error
                pass
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            self._storage.remove(self.path)
        except OSError:
            pass

