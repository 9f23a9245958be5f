"""Where the vault's bytes live: the storage seam of the vault writer and reader.

The writer (:mod:`engine.vault.writer`), the reader (:mod:`engine.vault.reader`) and
:func:`engine.vault.layout.list_runs` touch the vault only through a :class:`Storage`. The
one implementation today is :class:`LocalStorage`, the POSIX file system with the
workspace's guarantees (0700 folders, 0600 files, fsync before a rename, the folder fsynced
after it). Paths stay :class:`pathlib.Path` objects under the workspace root, so the key of
an object in another store is simply the path relative to the workspace
(``vault/{domain}/{source}/{account}/dt=.../run_id=.../part-000.jsonl.gz``).

What an object-store implementation has to provide, and how the publish step maps onto
it (no atomic folder rename there: the manifest is written last and is what makes a run
visible), is in ``docs/cloud-migration.md``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from engine.store.fsutil import (
    atomic_write_bytes,
    ensure_dir,
    fsync_dir,
    open_private,
    open_regular,
)


class Storage(Protocol):
    """The operations the vault needs from whatever holds its files."""

    def make_dir(self, path: Path) -> Path:
        """Create a private folder (and its parents) if missing; return it."""
        ...

    def create(self, path: Path) -> BinaryIO:
        """Open a new private file for writing (an existing one is truncated)."""
        ...

    def open_read(self, path: Path) -> BinaryIO:
        """Open a file for reading (raises OSError when it cannot)."""
        ...

    def sync(self, fh: BinaryIO) -> None:
        """Make everything written to ``fh`` durable (flush, then fsync)."""
        ...

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Replace ``path`` with ``data`` so a reader sees the old bytes or the new, durably."""
        ...

    def publish(self, temp: Path, final: Path) -> None:
        """Make a completely written run folder visible under its final name, durably."""
        ...

    def remove(self, path: Path) -> None:
        """Delete a file if it exists (an abandoned part)."""
        ...

    def list(self, path: Path) -> list[str]:
        """Names of the entries of a folder, sorted ([] when it does not exist)."""
        ...

    def is_dir(self, path: Path) -> bool:
        """Whether ``path`` is a folder."""
        ...

    def size(self, path: Path) -> int | None:
        """Size in bytes of a regular file, or None when there is none at ``path``."""
        ...


class LocalStorage:
    """The workspace on the local file system (DESIGN.md section 3)."""

    def make_dir(self, path: Path) -> Path:
        """Create ``path`` and missing parents as 0700 folders."""
        return ensure_dir(path)

    def create(self, path: Path) -> BinaryIO:
        """A new 0600 file, opened for binary writing."""
        return cast(BinaryIO, open_private(path, "wb"))

    def open_read(self, path: Path) -> BinaryIO:
        """The file, opened for binary reading."""
        return open_regular(path)  # type: ignore[no-any-return]  # the caller closes it; never a FIFO

    def sync(self, fh: BinaryIO) -> None:
        """flush + fsync."""
        fh.flush()
        os.fsync(fh.fileno())

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Temp file, fsync, ``os.replace``, fsync the folder."""
        atomic_write_bytes(path, data)

    def publish(self, temp: Path, final: Path) -> None:
        """fsync the temporary folder, rename it to its final name, fsync the parent."""
        fsync_dir(temp)
        os.rename(temp, final)
        fsync_dir(final.parent)

    def remove(self, path: Path) -> None:
        """``unlink``; a missing file is fine."""
        path.unlink(missing_ok=True)

    def list(self, path: Path) -> list[str]:
        """Sorted entry names; [] for a missing folder."""
        try:
            return sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def is_dir(self, path: Path) -> bool:
        """``Path.is_dir``."""
        return path.is_dir()

    def size(self, path: Path) -> int | None:
        """``st_size`` of a regular file, else None."""
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None


LOCAL = LocalStorage()
"""The default storage of every vault reader and writer."""
