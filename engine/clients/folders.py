"""Chart folders replaced atomically, one folder at a time.

A chart folder is built beside the live one under a hidden name, then swapped in with one
``renameat2(RENAME_EXCHANGE)`` (Linux): a reader sees the whole old folder or the whole new
one, never a mix and never a gap. Files whose bytes did not change are hard-linked from the
old folder, so they are not rewritten (same inode, same mtime). Where the exchange is not
available, the old folder is first renamed aside and the next run's :func:`recover` puts it
back if a crash came between the two renames. Folders of clients that are gone are renamed
away (they vanish at once) and then deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path

from engine.fsutil import DIR_MODE, ensure_dir, fsync_dir, open_private

STAGING = ".staging-"
ASIDE = ".aside-"
TRASH = ".trash-"

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_libc: ctypes.CDLL | None = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False when the system cannot (not Linux, old kernel)."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if name is None:
            return False
        _libc = ctypes.CDLL(name, use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def read_files(folder: Path) -> dict[str, bytes]:
    """The files of a chart folder (empty when it does not exist)."""
    out: dict[str, bytes] = {}
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False):
                out[entry.name] = Path(entry.path).read_bytes()
    return out


def replace_folder(root: Path, name: str, files: dict[str, bytes],
                   old: dict[str, bytes] | None = None) -> bool:
    """Make ``root/name`` hold exactly ``files``; False (nothing touched) when it already does."""
    staging = stage_folder(root, name, files, old, sync=True)
    if staging is None:
        return False
    swap_in(root, name, staging)
    fsync_dir(root)
    return True


def stage_folder(root: Path, name: str, files: dict[str, bytes],
                 old: dict[str, bytes] | None = None, *, sync: bool = False) -> Path | None:
    """Build the new folder under a hidden name (None when ``root/name`` already holds ``files``).

    Unchanged files are hard links to the old ones. With ``sync`` each file is fsynced; a
    caller staging many folders flushes the file system once instead (:func:`sync_tree`).
    """
    final = root / name
    current = read_files(final) if old is None else old
    if current == files:
        return None
    staging = root / f"{STAGING}{os.getpid()}-{abs(hash(name)) % 10**10}"
    if staging.exists():
        shutil.rmtree(staging)
    os.mkdir(staging, DIR_MODE)
    for fname, data in sorted(files.items()):
        if current.get(fname) == data:
            os.link(final / fname, staging / fname)
            continue
        with open_private(staging / fname, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
    if sync:
        fsync_dir(staging)
    return staging


def sync_tree(root: Path) -> None:
    """Make every staged file durable with one flush of the file system (``syncfs``)."""
    from engine.index.store import sync_filesystem

    sync_filesystem(root)


def swap_in(root: Path, name: str, staging: Path) -> None:
    """Put a staged folder in place of ``root/name`` atomically, then drop the old one.

    The caller fsyncs ``root`` once after its swaps."""
    final = root / name
    if final.exists():
        if not _exchange(staging, final):
            aside = root / f"{ASIDE}{name}"
            os.rename(final, aside)
            os.rename(staging, final)
            staging = aside
        shutil.rmtree(staging)
    else:
        os.rename(staging, final)


def remove_folder(root: Path, name: str) -> None:
    """Remove a chart folder: renamed away first (gone at once), then deleted."""
    trash = root / f"{TRASH}{os.getpid()}-{abs(hash(name)) % 10**10}"
    os.rename(root / name, trash)
    shutil.rmtree(trash)


def recover(root: Path) -> None:
    """Finish what a killed writer left: drop staging and trash, put an aside folder back."""
    ensure_dir(root)
    for entry in os.scandir(root):
        path = Path(entry.path)
        if entry.name.startswith((STAGING, TRASH)):
            shutil.rmtree(path, ignore_errors=True)
        elif entry.name.startswith(ASIDE):
            final = root / entry.name[len(ASIDE):]
            if final.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.rename(path, final)
    fsync_dir(root)
