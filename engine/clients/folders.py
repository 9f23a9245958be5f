"""Chart folders replaced atomically, one folder at a time.

A chart folder is built beside the live one under a hidden name, then swapped in with one
``renameat2(RENAME_EXCHANGE)`` (Linux): a reader sees the whole old folder or the whole new
one, never a mix and never a gap. Files whose bytes did not change are hard-linked from the
old folder, so they are not rewritten (same inode, same mtime). Folders of clients that are
gone are renamed away (they vanish at once) and then deleted.

Where the exchange is not available (another kernel or file system), no sequence of plain
renames can replace a non-empty folder without a moment where it is missing or mixed, so
the fallback keeps the folder in place and rolls forward under a journal: the staged folder
is complete and durable, then a hidden journal ``.swap-*.json`` (written atomically) names
it, the target and the new file names; then each changed file is moved in with one
``os.replace`` (each file is whole, old or new, at every instant), files no longer wanted
are removed, the staged folder and then the journal are deleted. A kill anywhere leaves the
folder in place; before the journal exists it is the old folder, after it the next writer's
:func:`recover` finishes the roll-forward from the journal, so the folder ends up exactly
new. (The older fallback renamed the folder aside, which left it missing after a kill
between its two renames until the next run; :func:`recover` still puts such an aside folder
back.)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path

from engine.store.fsutil import (
    DIR_MODE,
    atomic_write_json,
    ensure_dir,
    fsync_dir,
    open_private,
    read_json,
)

STAGING = ".staging-"
ASIDE = ".aside-"
TRASH = ".trash-"
JOURNAL = ".swap-"
"""Hidden journal of a fallback swap in progress: ``.swap-<staging suffix>.json``."""

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
    staging = new_staging(root, name)
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


def remove_any(path: Path) -> None:
    """Remove a folder tree, or a file (``shutil.rmtree`` refuses one, and with
    ``ignore_errors`` left it for ever: a file at a chart folder's place, exchanged out)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def new_staging(root: Path, name: str) -> Path:
    """A new, empty hidden folder where ``root/name`` is staged."""
    staging = root / f"{STAGING}{os.getpid()}-{abs(hash(name)) % 10**10}"
    if staging.exists():
        shutil.rmtree(staging)
    os.mkdir(staging, DIR_MODE)
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
        if _exchange(staging, final):
            remove_any(staging)  # the old folder (or a file someone put at its place)
        else:
            roll_forward(root, name, staging)
    else:
        os.rename(staging, final)


def _journal_path(root: Path, staging: Path) -> Path:
    return root / f"{JOURNAL}{staging.name[len(STAGING):]}.json"


def roll_forward(root: Path, name: str, staging: Path) -> None:
    """The fallback swap: move a complete, durable staged folder's files into ``root/name``.

    The journal is the commit point: once it exists the new folder is what the next
    :func:`recover` completes; before it, the old folder is untouched.
    """
    journal = _journal_path(root, staging)
    files = sorted(os.listdir(staging))
    atomic_write_json(journal, {"format": 1, "folder": name, "staging": staging.name, "files": files})
    _finish(root, journal, name, staging, files)


def _finish(root: Path, journal: Path, name: str, staging: Path, files: list[str]) -> None:
    """Steps after the journal (idempotent, so :func:`recover` can run them again)."""
    final = root / name
    if not final.is_dir():
        os.mkdir(final, DIR_MODE)
    for fname in files:
        src = staging / fname
        try:
            same = os.path.samestat(os.stat(src, follow_symlinks=False),
                                    os.stat(final / fname, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if src.exists() and not same:
            os.replace(src, final / fname)
    wanted = set(files)
    for entry in os.scandir(final):
        if entry.name not in wanted:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    fsync_dir(final)
    if staging.exists():
        shutil.rmtree(staging)
    os.unlink(journal)


def remove_folder(root: Path, name: str) -> None:
    """Remove a chart folder: renamed away first (gone at once), then deleted."""
    trash = root / f"{TRASH}{os.getpid()}-{abs(hash(name)) % 10**10}"
    os.rename(root / name, trash)
    shutil.rmtree(trash)


def _recover_journals(root: Path) -> None:
    """Complete every fallback swap a killed writer committed (its journal exists)."""
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not (entry.name.startswith(JOURNAL) and entry.name.endswith(".json")):
            continue
        journal = Path(entry.path)
        try:
            plan = read_json(journal)
            name, staging, files = plan["folder"], plan["staging"], plan["files"]
            valid = (isinstance(name, str) and isinstance(staging, str) and isinstance(files, list)
                     and all(isinstance(f, str) for f in files)
                     and all(n and "/" not in n and n not in (".", "..") for n in (name, staging, *files))
                     and staging.startswith(STAGING))
        except (OSError, ValueError, KeyError, TypeError):
            valid = False
        if not valid:  # not written by this module (the atomic write never leaves half a file)
            os.unlink(journal)
            continue
        _finish(root, journal, name, root / staging, files)


def recover(root: Path) -> None:
    """Finish what a killed writer left: complete journaled swaps, drop staging and trash,
    put an aside folder (older fallback) back."""
    ensure_dir(root)
    _recover_journals(root)
    for entry in os.scandir(root):
        path = Path(entry.path)
        if entry.name.startswith((STAGING, TRASH)):
            with contextlib.suppress(OSError):
                remove_any(path)  # a file exchanged out of a chart's place is left as one
        elif entry.name.startswith("." + JOURNAL):  # a journal's temporary file: never committed
            path.unlink(missing_ok=True)
        elif entry.name.startswith(ASIDE):
            final = root / entry.name[len(ASIDE):]
            if final.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.rename(path, final)
    fsync_dir(root)
