"""A chart file rendered as a stream, so writing the largest chart costs no more memory than a small one.

The largest client of a real practice has tens of thousands of documents (36,459 at
1,000,000 demo records: a 7 MB timeline). Holding such a file's text, its encoded bytes and
the old file read back for the unchanged-check made the chart writer's peak grow with the
largest chart. A :class:`Rendered` file takes its text in parts and keeps the bytes in memory
only up to :data:`SPILL_AT`; past that they go on to a hidden spill file under the charts
folder (same file system: it is renamed into the staged folder when the chart changed, and
removed when it did not). Whether a file is unchanged is decided by its size, then by its
bytes compared with the old file's in chunks, never by reading either whole.

Spill files live in ``{clients}/.staging-<pid>-spill/`` (:class:`Spill`), which
:func:`engine.clients.folders.recover` removes like any staging folder a killed writer left.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO, Any

from engine.clients.folders import STAGING
from engine.store.fsutil import DIR_MODE, open_private

SPILL_AT = int(os.environ.get("LORCH_CHART_SPILL_AT", str(256 << 10)))
"""Bytes of one chart file held in memory before the rest goes to a spill file."""
CHUNK = 64 << 10
"""Characters of text gathered before they are encoded; bytes per read when comparing."""


class Spill:
    """The hidden folder of one writer's spill files (made on first use, removed by :meth:`close`)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / f"{STAGING}{os.getpid()}-spill"
        self.count = 0

    def new(self) -> Path:
        """The path of a new spill file."""
        if self.count == 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.mkdir(self.dir, DIR_MODE)
        self.count += 1
        return self.dir / str(self.count)

    def close(self) -> None:
        """Remove the spill folder and whatever is left in it."""
        if self.count:
            shutil.rmtree(self.dir, ignore_errors=True)


class Rendered:
    """One file's bytes, in memory or (past :data:`SPILL_AT`) in a spill file."""

    def __init__(self, spill: Spill | None = None) -> None:
        self.spill = spill
        self.size = 0
        self.path: Path | None = None
        self._text: list[str] = []
        self._chars = 0
        self._parts: list[bytes] = []
        self._fh: IO[bytes] | None = None
        self._data: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> Rendered:
        """A file whose bytes are already in memory."""
        out = cls()
        out._data, out.size = data, len(data)
        return out

    def write(self, text: str) -> None:
        """Append text (UTF-8 encoded in chunks)."""
        self._text.append(text)
        self._chars += len(text)
        if self._chars >= CHUNK:
            self._encode()

    def append(self, other: Rendered) -> None:
        """Append another file's bytes (read in chunks when it spilled), then drop it."""
        other.close()
        self._encode()
        if other.path is None:
            self._add(other.data or b"")
        else:
            with open(other.path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    self._add(chunk)
            other.discard()

    def _encode(self) -> None:
        if self._text:
            self._add("".join(self._text).encode())
            self._text.clear()
            self._chars = 0

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self._fh is not None:
            self._fh.write(data)
            return
        self._parts.append(data)
        if self.size > SPILL_AT and self.spill is not None:
            self.path = self.spill.new()
            self._fh = open_private(self.path, "wb")
            for part in self._parts:
                self._fh.write(part)
            self._parts.clear()

    def close(self) -> Rendered:
        """Finish the file (no fsync: the caller flushes the file system once)."""
        self._encode()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        elif self._data is None:
            self._data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts.clear()
        return self

    @property
    def data(self) -> bytes | None:
        """The bytes when they are in memory (None when spilled)."""
        return self._data

    def equals(self, path: Path, size: int | None) -> bool:
        """True when the file at ``path`` (``size`` bytes, None: absent) holds these bytes."""
        if size is None or size != self.size:
            return False
        try:
            with open(path, "rb") as old:
                if self._data is not None:
                    return old.read(self.size + 1) == self._data
                assert self.path is not None
                with open(self.path, "rb") as new:
                    return _same_stream(old, new)
        except FileNotFoundError:
            return False

    def place(self, dest: Path) -> None:
        """Put the bytes at ``dest`` (a new file, 0600, in the staged folder)."""
        if self.path is not None:
            os.rename(self.path, dest)
            self.path = None
            return
        with open_private(dest, "wb") as fh:
            fh.write(self._data or b"")

    def discard(self) -> None:
        """Drop the spill file, if any."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def _same_stream(a: Any, b: Any) -> bool:
    while True:
        x, y = a.read(CHUNK), b.read(CHUNK)
        if x != y:
            return False
        if not x:
            return True


def listing(folder: Path) -> dict[str, int]:
    """Name -> size of the regular files of a folder (empty when it does not exist)."""
    out: dict[str, int] = {}
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    out[entry.name] = entry.stat(follow_symlinks=False).st_size
    except (FileNotFoundError, NotADirectoryError):
        pass
    return out
