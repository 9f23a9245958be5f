"""The workspace's run lock: one writer at a time, never stolen, never stale.

Its own module because the run machinery, ``clean`` and the dashboard take it, while most
readers of :mod:`engine.store.workspace` only need paths.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

from engine.errors import PermissionProblem, UsageError, WorkspaceBusy
from engine.store.fsutil import FILE_MODE, ensure_dir, read_regular
from engine.store.workspace import Workspace

_HELD_FDS: dict[int, Path] = {}
"""Descriptors of the workspace locks this process holds, and whose workspace they lock."""


def held_lock_fds(root: Path | None = None) -> tuple[int, ...]:
    """The descriptors of the workspace locks this process holds (of ``root`` only, if given).

    The engine passes them to its stage workers (``pass_fds``): a worker then holds the lock
    with the engine, so when the engine dies (SIGKILL, crash) while a worker still finishes
    its cancel, the workspace stays locked until that last writer is gone.
    """
    return tuple(sorted(fd for fd, held in _HELD_FDS.items() if root is None or held == Path(root)))



class UnsafeLock(PermissionProblem):
    """The lock file is a symlink, a hard link, a FIFO or not a file (exit 4)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is not a plain file of its own (a symlink, a hard link, a FIFO or a folder): "
                         "it is written on every run, so nothing took the lock",
                         hint=f"remove it (`rm {path}`) when no lorchestra process runs; it is created again")

class WorkspaceLock:
    """An exclusive, non-stealable lock on the workspace.

    Two ``flock`` locks, taken in this order: one on the workspace folder itself (a folder
    cannot be replaced while it holds files, so deleting or rewriting ``state/lock`` by hand
    never lets a second writer in) and one on ``state/lock``, whose content names the holder
    (pid, start time, command) for the "busy" message. The kernel drops both when the last
    process holding them ends, so a stale lock of a dead process never blocks a later run
    and needs no clean-up; workers inherit them (:func:`held_lock_fds`).
    """

    def __init__(self, ws: Workspace, *, command: str = "lorchestra") -> None:
        self.root = ws.root
        self.path = ws.state / "lock"
        self.command = command
        self._fh: IO[Any] | None = None
        self._dir_fd: int | None = None

    def acquire(self, wait_s: float = 0.0, waiting: Callable[[str], None] | None = None) -> WorkspaceLock:
        """Take the lock, waiting up to ``wait_s`` seconds; raise WorkspaceBusy otherwise.
        ``waiting`` is told the holder once, when the wait begins."""
        fds = self._open(wait_s)
        deadline = time.monotonic() + wait_s
        try:
            if not self._try(fds, deadline):
                if waiting is not None:
                    waiting(holder_of(self.path))
                while not self._try(fds, deadline):
                    time.sleep(0.1)
        except BaseException:  # an interrupt in the wait: nothing stays open
            self._close(fds)
            raise
        return self._held(fds)

    async def acquire_waiting(self, wait_s: float, waiting: Callable[[str], None] | None = None) -> WorkspaceLock:
        """:meth:`acquire` for a coroutine: the wait sleeps in the event loop, so Ctrl-C (and
        any handler the loop runs) stops it at once instead of when the lock frees;
        ``waiting`` is told the holder once, when the wait begins."""
        import asyncio  # here: the read-only commands import this module and never wait

        fds = self._open(wait_s)
        deadline = time.monotonic() + wait_s
        try:
            if not self._try(fds, deadline):
                if waiting is not None:
                    waiting(holder_of(self.path))
                while not self._try(fds, deadline):
                    await asyncio.sleep(0.1)
        except BaseException:  # a cancel (Ctrl-C) in the wait: nothing stays open
            self._close(fds)
            raise
        return self._held(fds)

    def _open(self, wait_s: float) -> list[int | None]:
        """[folder fd, lock file fd] (opened once for the whole wait)."""
        if not math.isfinite(wait_s) or wait_s < 0:
            raise UsageError(f"cannot wait {wait_s!r} seconds for the workspace lock",
                             hint="give --wait a number of seconds from 0 up")
        ensure_dir(self.path.parent)
        dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:  # never through a link or into a FIFO: the lock is truncated and written (a `lock`
            # symlinked to ~/.bashrc emptied it for any command that took the lock unchecked)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK,
                         FILE_MODE)
        except OSError as exc:
            os.close(dir_fd)
            if exc.errno in (errno.ELOOP, errno.ENXIO):
                raise UnsafeLock(self.path) from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            os.close(dir_fd)
            raise UnsafeLock(self.path)
        os.set_blocking(fd, True)
        return [dir_fd, fd]

    def _try(self, fds: list[int | None], deadline: float) -> bool:
        """One attempt at both locks: True when held; False to wait on; WorkspaceBusy (the
        descriptors closed) past the deadline."""
        fd = fds[1]
        assert fd is not None
        try:
            fds[0] = _lock_folder(fds[0])
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if fds[0] is not None:
                    fcntl.flock(fds[0], fcntl.LOCK_UN)
                raise
            return True
        except BlockingIOError:
            if time.monotonic() < deadline:
                return False
            holder = holder_of(self.path)
            self._close(fds)
            raise WorkspaceBusy(
                f"the workspace {self.root} is busy: {holder} holds its lock",
                hint="wait for that run to finish (lorch-tui --no-ui --wait SECONDS waits), "
                "or use another --workspace; never delete state/lock by hand",
            ) from None

    @staticmethod
    def _close(fds: list[int | None]) -> None:
        for f in fds:
            if f is not None:
                with contextlib.suppress(OSError):
                    os.close(f)
        fds[:] = [None, None]

    def _held(self, fds: list[int | None]) -> WorkspaceLock:
        dir_fd, fd = fds
        assert fd is not None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {int(time.time())} {self.command}\n".encode())
        self._fh = os.fdopen(fd, "r+b")
        self._dir_fd = dir_fd
        _HELD_FDS.update({f: self.root for f in (fd, dir_fd) if f is not None})
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; its content is stale once unlocked)."""
        if self._fh is not None:
            fd = self._fh.fileno()
            _HELD_FDS.pop(fd, None)
            os.ftruncate(fd, 0)  # an empty file means "not held"
            fcntl.flock(fd, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        if self._dir_fd is not None:
            _HELD_FDS.pop(self._dir_fd, None)
            fcntl.flock(self._dir_fd, fcntl.LOCK_UN)
            os.close(self._dir_fd)
            self._dir_fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fh is not None

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_folder(dir_fd: int | None) -> int | None:
    """flock the workspace folder; None (file lock only) where folders cannot be locked.

    Raises BlockingIOError when another process holds it.
    """
    if dir_fd is None:
        return None
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError:  # e.g. NFS emulates flock with fcntl locks, which need a writable file
        os.close(dir_fd)
        return None
    return dir_fd


class LockOwner(NamedTuple):
    """What the lock file says of its holder."""

    pid: int
    started: int | None
    """Epoch seconds the holder took the lock (None: not a number)."""
    command: str
    alive: bool
    """Whether a process with that pid exists (another user's counts as alive)."""


def lock_owner(lock_path: Path) -> LockOwner | None:
    """The process the lock file names, or None when it names none. The one reader of the
    file (the run's wait, ``status``, the dashboard): read without blocking, so a FIFO
    planted there never hangs a reader, and a hand-edited pid is no crash."""
    try:
        pid_s, started_s, *cmd = read_regular(lock_path).decode().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    try:
        started: int | None = int(started_s)
    except ValueError:
        started = None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return LockOwner(pid, started, " ".join(cmd), False)
    except (OSError, OverflowError):  # another user's process: alive; a pid no process has
        pass
    return LockOwner(pid, started, " ".join(cmd), True)


def holder_of(lock_path: Path) -> str:
    """A description of the lock's holder: ``pid 123 (lorchestra run, since 10:02:11)``.

    When that process has died, its stage workers still hold the lock while they finish
    their cancel (they stop within the cancel grace period), and the text says so.
    """
    owner = lock_owner(lock_path)
    if owner is None or owner.started is None:
        return "another process"
    try:
        since = time.strftime("%H:%M:%S", time.localtime(owner.started))
    except (OverflowError, OSError, ValueError):
        return "another process"
    text = f"pid {owner.pid} ({owner.command or 'lorchestra'}, since {since})"
    if not owner.alive:
        return f"the stage workers of {text}, which has exited (they stop within the cancel grace period)"
    return text
