"""Exit codes and the one error type every face knows how to print.

DESIGN.md section 6 fixes the exit codes; every error carries a message that says what
happened, where, and what to do next, so the faces can print it without a traceback.
:func:`from_os_error` turns what a broken disk or workspace raises (a full disk, a file
where a folder belongs, a read-only file system) into such an error, so no input a user or a
disk can produce ends in "internal error".
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Process exit codes shared by every command and ``lorch-tui --no-ui``."""

    OK = 0
    TASK_FAILED = 1
    USAGE = 2
    BUSY = 3
    PERMISSION = 4
    INTERRUPTED = 130


class LorchError(Exception):
    """An error meant for a person: what happened, where, what to do next.

    The message must never contain record content or tap output: only identifiers from
    the config, paths and numbers.
    """

    exit_code: ExitCode = ExitCode.USAGE
    code: str | None = None
    """A stable code from the error-code table when one applies (``DISK_FULL``)."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def render(self) -> str:
        """The full text shown to the user."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(LorchError):
    """The configuration file is missing, unreadable or invalid (exit 2)."""

    exit_code = ExitCode.USAGE


class UsageError(LorchError):
    """The command line asks for something that cannot be done (exit 2)."""

    exit_code = ExitCode.USAGE


class WorkspaceBusy(LorchError):
    """Another writer holds the workspace lock (exit 3)."""

    exit_code = ExitCode.BUSY


class PermissionProblem(LorchError):
    """A permission or security check failed (exit 4)."""

    exit_code = ExitCode.PERMISSION


class DiskFull(LorchError):
    """The workspace's file system (or the user's quota) is full (exit 1, code DISK_FULL)."""

    exit_code = ExitCode.TASK_FAILED
    code = "DISK_FULL"


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def free_space(path: Path) -> str:
    """``"12.0 MiB free of 3.0 GiB"`` for the file system holding ``path`` (or its nearest
    existing ancestor); ``"free space unknown"`` when even that cannot be read."""
    try:
        usage = shutil.disk_usage(_existing(path))
    except OSError:
        return "free space unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop always returns


def _existing(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def _statvfs(path: Path) -> os.statvfs_result | None:
    try:
        return os.statvfs(_existing(path))
    except OSError:
        return None


def has_room(path: Path) -> bool:
    """Whether the file system of ``path`` has at least 1 MiB and a free inode (False when it
    cannot be told: the error is then taken as it came)."""
    st = _statvfs(path)
    return st is not None and st.f_bavail * st.f_frsize >= 1 << 20 and (st.f_files == 0 or st.f_favail > 0)


def _no_inodes(path: Path) -> bool:
    st = _statvfs(path)
    return st is not None and st.f_files > 0 and st.f_favail == 0


def disk_full(where: Path) -> DiskFull:
    """The one DISK_FULL message: which workspace, how much space is left, what to do."""
    what = ("has no free inodes left (`df -i`: too many files), though "
            f"{free_space(where)}") if _no_inodes(where) else f"is full ({free_space(where)})"
    return DiskFull(
        f"DISK_FULL: the file system of {where} {what}; "
        "partial files were removed; what was complete stays (a LATEST moves only with a whole "
        "extract, canonical files and the index only with a whole stage)",
        hint="free space (or move the workspace with --workspace), then run again; "
        "`lorchestra clean --dry-run` shows what can go",
    )


def output_full(exc: OSError) -> LorchError:
    """No space where the command's output goes (a cron log on a full partition), while the
    workspace has room: not the workspace's DISK_FULL."""
    return LorchError(f"could not write the output: no space left on the device it goes to "
                      f"({_errno_name(exc)}); the workspace has room",
                      hint="free space where the output is redirected (a cron log file?), or send it elsewhere",
                      exit_code=ExitCode.TASK_FAILED)


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "OSError")


def say_os_error(stage: str, exc: OSError) -> None:
    """One line on this worker's stderr (its diagnostics file) saying which path a failed
    write hit and why (``canonize: EROFS on /ws/canonical/gmail``): a workspace path and an
    errno symbol, never data. A bare WRITE_FAILED sent people to dmesg for a read-only folder."""
    try:
        sys.stderr.write(f"{stage}: {_errno_name(exc)} on {exc.filename or 'the workspace'}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


SQLITE_FULL = 13
SQLITE_IOERR_SHMSIZE = 4874  # SQLITE_IOERR | 19 << 8


def sqlite_full(exc: BaseException) -> bool:
    """True when SQLite ran out of space: ``SQLITE_FULL``, or ``SQLITE_IOERR_SHMSIZE`` (a WAL
    database's shared-memory file could not grow: SQLite writes its new pages, and on a full
    volume that is where a transaction first fails; the index stage said INDEX_DB_ERROR)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF == SQLITE_FULL or code == SQLITE_IOERR_SHMSIZE)


def from_os_error(exc: BaseException, workspace: Path | None = None) -> LorchError | None:
    """A clean :class:`LorchError` for an ``OSError`` (or SQLite's "disk is full") a command
    hit on the file system, or None when ``exc`` is not one.

    The message names the path (from the workspace or the config, never data) and the
    errno's symbol: disk full -> DiskFull (exit 1), permission or read-only -> exit 4,
    a file where a folder belongs (or the reverse) or a missing path -> exit 2, other I/O
    errors -> exit 1.
    """
    if sqlite_full(exc):
        return disk_full(workspace or Path.cwd())
    if not isinstance(exc, OSError):
        return None
    path = Path(exc.filename) if isinstance(exc.filename, str) else workspace
    where = str(path) if path is not None else "the workspace"
    name = _errno_name(exc)
    if exc.errno in NO_SPACE:
        target = workspace or path or Path.cwd()
        if exc.filename is None and workspace is not None and has_room(workspace):
            return output_full(exc)  # a write with no file name: standard output, elsewhere
        return disk_full(target)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionProblem(f"permission denied ({name}) on {where}",
                                 hint="check the owner and mode of that path (the workspace must "
                                 "be yours, 0700), or choose another --workspace")
    if exc.errno == errno.EROFS:
        return PermissionProblem(f"{where} is on a read-only file system ({name})",
                                 hint="remount it read-write or choose another --workspace")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return UsageError(f"{where} is in the way: a file stands where a folder must be ({name})",
                          hint="move that file away or choose another --workspace")
    if exc.errno == errno.EISDIR:
        return UsageError(f"{where} is a folder where a file must be ({name})",
                          hint="move that folder away")
    if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENAMETOOLONG):
        return UsageError(f"{where} cannot be reached ({name})",
                          hint="check the path; `lorchestra status` shows the workspace in use")
    return LorchError(f"the file system failed on {where} ({name})",
                      hint="check the disk (dmesg, fsck) and run again; --verbose shows where",
                      exit_code=ExitCode.TASK_FAILED)




def damaged_latest(extractor: str, path: Path) -> LorchError:
    """A reader's error for an account whose ``LATEST.json`` exists but does not read as a
    pointer: exit 1 and ``LATEST_INVALID`` as in `status` and `verify` (`list streams` and
    `transform run --from-vault` said exit 2, a usage error, without naming the file)."""
    return LorchError(f"{extractor}: {path} does not read as a LATEST pointer (LATEST_INVALID)",
                      hint="run `lorchestra verify` to check the account's runs; the next successful "
                           f"`lorchestra extract {extractor}` writes a new LATEST",
                      exit_code=ExitCode.TASK_FAILED)


def damaged_manifest(extractor: str, path: Path) -> LorchError:
    """The same for a run's ``manifest.json`` (``MANIFEST_INVALID``, exit 1)."""
    return LorchError(f"{extractor}: {path} cannot be read as a run manifest (MANIFEST_INVALID)",
                      hint="run `lorchestra verify` to see what else is damaged; restore the run folder "
                           f"from a backup, or run `lorchestra extract {extractor}` for a new LATEST run",
                      exit_code=ExitCode.TASK_FAILED)
