"""Creating a batch of object files: the file-level rules, shared by threads and the helper process.

Why a module of its own: the same few system calls per object (``O_CREAT | O_EXCL`` under the
final name, folders made only when missing, a file found in place compared byte for byte, a
torn one rewritten under a temporary name and renamed over) run in the object writer's
threads (:mod:`engine.index.objects`) and in its helper process (:mod:`engine.index.objproc`),
which imports only this module and the standard library, so it starts in a few tens of
milliseconds.
"""

from __future__ import annotations

import contextlib
import os

from engine.store.fsutil import DIR_MODE, FILE_MODE

Batch = list[tuple[str, bytes]]
"""Objects to store: (sha256 in hex, the bytes whose sha256 it is)."""

_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_batch(root: int, batch: Batch, suffix: str) -> tuple[int, int, int]:
    """Store every object of ``batch`` under ``root`` (an open descriptor of ``objects/``).

    Returns (objects written, their bytes, objects repaired): an object already there with the
    same bytes is kept and not counted; one with other bytes (torn by a killed load, or
    planted) is rewritten under ``.<sha256><suffix>`` and renamed over, and counted in both.
    An ``OSError`` (no space, a folder that is a file) propagates; a file it left half
    created is removed.
    """
    written = size = repaired = 0
    for sha256, data in batch:
        rel = f"{sha256[:2]}/{sha256[2:4]}"
        name = f"{rel}/{sha256}.json"
        try:
            fd = _create(root, name, sha256)
        except FileExistsError:
            if same_bytes(root, name, data):
                continue
            _rewrite(root, rel, sha256, data, suffix)
            repaired += 1
        else:
            try:
                write_all(fd, data)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=root)
                raise
            os.close(fd)
        written += 1
        size += len(data)
    return written, size, repaired


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


def _rewrite(root: int, rel: str, sha256: str, data: bytes, suffix: str) -> None:
    """Replace a torn object: temporary file, then rename over it."""
    tmp = f"{rel}/.{sha256}{suffix}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE, dir_fd=root)
    try:
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, f"{rel}/{sha256}.json", src_dir_fd=root, dst_dir_fd=root)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=root)
        raise


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (a pipe or a file may take less per call)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def same_bytes(root: int, name: str, data: bytes) -> bool:
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
