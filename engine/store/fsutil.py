"""Secure, atomic file-system helpers for the PHI workspace.

Every directory under the workspace is 0700 and every file 0600 whatever the caller's
umask; every file another process reads is written under a temporary name, fsynced and
renamed, and the directory is fsynced after the rename (DESIGN.md section 3).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import orjson

DIR_MODE = 0o700
FILE_MODE = 0o600
SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""A safe name, matched against the whole string (``fullmatch``: ``$`` alone would let a
trailing newline through). Not starting with ``.`` (a hidden name: the workspace's own scratch
and staging files are, and readers skip them) or ``-`` (an option on a command line)."""


def is_safe_segment(value: str) -> bool:
    """True when ``value`` can be one path segment under the workspace."""
    return bool(SAFE_SEGMENT.fullmatch(value))


def secure_umask() -> None:
    """Set the process umask so nothing is created group- or world-accessible."""
    os.umask(0o077)



def ensure_dir(path: Path) -> Path:
    """Create ``path`` and missing parents as 0700 directories; return it."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            pass
        os.chmod(d, DIR_MODE)
    return path


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path, mode: str = "wb") -> Any:
    """Open a new file for writing with mode 0600 (truncating an existing one)."""
    flags = os.O_WRONLY | os.O_CREAT
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, mode)


def create_private(path: Path) -> None:
    """Create a new, empty file with mode 0600 (FileExistsError if it exists): a scratch
    database's file, made private before SQLite opens it (SQLite gives its journals the
    main file's mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, os.replace, fsync dir."""
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open_private(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: leave no (0-byte) temporary file behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the indented, key-sorted JSON (with a final newline) of every JSON file."""
    return dump_json(obj, indent=True) + b"\n"


def dump_json(obj: Any, *, indent: bool = False, sort_keys: bool = True) -> bytes:
    """``obj`` as JSON (keys sorted unless told). orjson refuses values nested past 255
    levels, which the vault accepts up to 512 (a tap's STATE or SCHEMA: the worker crashed
    writing the manifest); those go through the standard library (orjson reads them back)."""
    opts = (orjson.OPT_INDENT_2 if indent else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(obj, option=opts)
    except TypeError as exc:
        if "Recursion limit" not in str(exc):
            raise
    return json.dumps(obj, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False,
                      indent=2 if indent else None, separators=None if indent else (",", ":")).encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    atomic_write_bytes(path, json_bytes(obj))


class NotRegularFile(OSError, ValueError):  # noqa: N818 - like io.UnsupportedOperation
    """A path the pipeline reads as a file is a FIFO, socket or device (or a folder)."""

    folder = False
    """True when the path is a folder."""


def open_regular(path: Path) -> Any:
    """``path`` opened for binary reading if it is a regular file, else
    :class:`NotRegularFile`. Opened non-blocking and checked with ``fstat`` first, so a FIFO
    planted in place of a file never blocks the reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            problem = NotRegularFile(f"{path} is not a regular file")
            problem.folder = stat.S_ISDIR(mode)
            raise problem
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`)."""
    with open_regular(path) as fh:
        data: bytes = fh.read()
        return data


def section(doc: object, key: str) -> dict[str, Any]:
    """``doc[key]`` when both are JSON objects, else ``{}``: a hand-edited meta file's
    ``"output": null`` reads as no output, never as an internal error."""
    got = doc.get(key) if isinstance(doc, dict) else None
    return got if isinstance(got, dict) else {}


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`atomic_write_json` (never blocking on a FIFO)."""
    return orjson.loads(read_regular(path))
