"""The workspace on disk: where every path of DESIGN.md section 3 lives, and its lock.

One object answers "where does X go" for every stage and face, so the layout is written
down once. Creating the workspace makes every folder 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.errors import PermissionProblem, UsageError, WorkspaceBusy, from_os_error
from engine.store.fsutil import DIR_MODE, FILE_MODE, ensure_dir
from engine.store.shown import CHARTS_DIR, chart_hint, shown_path, shown_target


@dataclass(frozen=True)
class Workspace:
    """Paths inside one PHI workspace."""

    root: Path

    @property
    def vault(self) -> Path:
        """The time-series vault of raw runs."""
        return self.root / "vault"

    @property
    def canonical(self) -> Path:
        """Canonical records per source and account."""
        return self.root / "canonical"

    @property
    def vector_store(self) -> Path:
        """The document index."""
        return self.root / "vector-store"

    @property
    def state(self) -> Path:
        """Run history, the lock and worker diagnostics (PHI-free)."""
        return self.root / "state"

    @property
    def state_db(self) -> Path:
        """The PHI-free run and task history (engine.store.state)."""
        return self.state / "lorch.sqlite"

    @property
    def logs(self) -> Path:
        """JSON-lines pipeline logs (PHI-free)."""
        return self.root / "logs"

    @property
    def catalogs(self) -> Path:
        """Discovered Singer catalogs, one per extractor (schemas: may name PHI columns)."""
        return self.root / "catalogs"

    @property
    def diagnostics(self) -> Path:
        """Workers' own stderr (tracebacks may quote data: stays in the workspace)."""
        return self.root / "diagnostics"

    def account_dir(self, domain: str, source: str, account: str) -> Path:
        """The vault folder of one account."""
        return self.vault / domain / source / account

    def prepare(self) -> Workspace:
        """Create the workspace's top folders as 0700 (clear errors when it cannot)."""
        check_usable(self.root)
        try:
            for d in (self.vault, self.canonical, self.vector_store, self.state, self.logs):
                ensure_dir(d)
            os.chmod(self.root, DIR_MODE)
        except OSError as exc:
            mapped = from_os_error(exc, self.root)
            if mapped is None:  # pragma: no cover - every OSError maps
                raise
            raise mapped from None
        return self


def check_not_a_file(root: Path) -> None:
    """For commands that only read: refuse (exit 2) a workspace path that is a file or lies
    under a file, instead of calling it missing."""
    p = Path(os.path.abspath(root))
    while not p.exists() and p.parent != p:
        p = p.parent
    if p.exists() and not p.is_dir():
        what = f"the workspace {root} is a file" if p == Path(os.path.abspath(root)) else \
            f"the workspace {root} lies under {p}, which is a file"
        raise UsageError(f"{what}, not a folder",
                         hint="set `workspace` (or --workspace) to a folder, or move that file away")


def check_usable(root: Path) -> None:
    """Refuse a workspace path that is a file, or under a file, or that cannot be created.

    A file (exit 2) and a folder that cannot be created for lack of permission or on a
    read-only file system (exit 4) get their own message instead of the OSError a mkdir
    would raise later.
    """
    check_not_a_file(root)
    p = Path(os.path.abspath(root))
    parent = p
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if parent != p and not parent.is_dir():
        raise UsageError(f"the workspace {root} cannot be created: {parent} is a file, not a folder",
                         hint="set `workspace` (or --workspace) to a path under a folder")
    if parent != p and not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionProblem(f"the workspace {root} cannot be created: {parent} is not writable",
                                hint=f"create {root} yourself (mode 0700) or choose another --workspace")
    if p.is_dir() and not os.access(p, os.R_OK | os.W_OK | os.X_OK):
        raise PermissionProblem(f"the workspace {root} is not readable and writable by you",
                                hint=f"check its owner and mode (`ls -ld {root}`); it must be yours, 0700")


OBJECTS_DIR = ("vector-store", "objects")
"""The index's content-addressed object store (``objects/ab/cd/<sha256>.json``, DESIGN.md)."""
PROJECT_SCRATCH = ".project-scratch.sqlite"
"""The first part of the name of every scratch file of the project task in ``vector-store/``
(the database itself, its kept responses, a forked scorer's and reading helper's: named in
:mod:`engine.clients.stream`); here so ``clean`` finds them without the client layer."""

def _run_start_filter(root: Path, folder: Path) -> set[str] | None:
    """Which sub-folders of ``folder`` a run-start check descends into (None: all of them).

    Everything is listed and every entry of a listed folder is checked; only the parts of the
    workspace that grow with history are not descended into (docs/security.md): the object
    store below its first fan-out level, the chart folders' files, and vault runs other than
    the one each account's ``LATEST.json`` names (the run a canonize reads; a new run writes a
    new folder).
    """
    rel = folder.relative_to(root).parts
    if rel in (OBJECTS_DIR, CHARTS_DIR):
        return set()
    if len(rel) == 4 and rel[0] == "vault":  # vault/<domain>/<source>/<account>
        latest = _latest(folder)
        return None if latest is None else {f"dt={latest[0]}"}
    if len(rel) == 5 and rel[0] == "vault" and rel[4].startswith("dt="):
        latest = _latest(folder.parent)
        return None if latest is None else {f"run_id={latest[1]}"}
    return None


def _in_vault_history(root: Path, folder: Path) -> bool:
    """Whether ``folder`` is a vault account or one of its ``dt=`` folders: there the run-start
    check does not even ``lstat`` the sub-folders it does not descend into (the older days
    and runs; a practice's history has thousands), since nobody else can reach them through
    the checked 0700 folder. Their entries' types come from the listing, so a symlink or a
    special file among them is still refused."""
    rel = folder.relative_to(root).parts
    return rel[:1] == ("vault",) and (len(rel) == 4 or (len(rel) == 5 and rel[4].startswith("dt=")))


def _latest(account_dir: Path) -> tuple[str, str] | None:
    """(dt, run_id) of the account's LATEST pointer, or None (none, not a regular file, or
    unreadable: walk it all)."""
    path = account_dir / "LATEST.json"
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None  # a symlink or a FIFO: never opened here (a FIFO would block); the walk reports it
        data = json.loads(path.read_bytes())
        return str(data["dt"]), str(data["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _scan(root: Path, limit: int, deep: bool = True,
          private: bool = False) -> tuple[list[str], list[str], list[str]]:
    """One walk of the workspace (links never followed): (loose paths, symlinks, special
    files), each at most ``limit``. ``deep`` visits everything; otherwise the run-start walk
    (:func:`_run_start_filter`) skips the history a run neither writes nor reads. A special
    file (a FIFO, a socket, a device) where the pipeline expects a regular file would block
    or mislead every reader, so it is refused like a symlink. ``private``: the lines show
    paths under ``clients/`` masked (:func:`shown_path`), for printing."""
    loose: list[str] = []
    links: list[str] = []
    special: list[str] = []
    if not root.is_dir() or root.is_symlink():
        return loose, links, special
    stack = [root]

    def show(path: str) -> str:
        return shown_path(path, root) if private else path

    try:
        mode = root.lstat().st_mode
    except OSError:
        return loose, links, special
    if mode & 0o077:
        loose.append(f"{root} ({stat.filemode(mode)})")
    while stack and (len(loose) < limit or len(links) < limit):
        folder = stack.pop()
        descend = None if deep else _run_start_filter(root, folder)
        newest = descend if descend is not None and _in_vault_history(root, folder) else None
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if newest is not None and entry.name not in newest and entry.is_dir(follow_symlinks=False):
                continue  # an older day or run of the vault: its folder is 0700 and checked
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                if len(links) < limit:
                    target = os.readlink(entry.path)
                    if private:
                        target = shown_target(target, entry.path, root)
                    links.append(f"{show(entry.path)} is a symlink to {target}")
                continue
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                if len(special) < limit:
                    special.append(f"{show(entry.path)} is {special_kind(st.st_mode)}, not a regular file or folder")
                continue
            if st.st_mode & 0o077 and len(loose) < limit:
                loose.append(f"{show(entry.path)} ({stat.filemode(st.st_mode)})")
            if stat.S_ISDIR(st.st_mode) and (descend is None or entry.name in descend):
                stack.append(Path(entry.path))
    return loose, links, special


def special_kind(mode: int) -> str:
    """'a FIFO', 'a socket', 'a device' ... for a file mode that is not a file or folder."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def run_start_problems(root: Path, limit: int = 20, *,
                       private: bool = False) -> tuple[list[str], list[str], list[str]]:
    """What a run start checks (docs/security.md): (loose paths, symlinks incl. ancestors,
    special files). ``private``: chart folder names masked, for printing (:func:`shown_path`)."""
    links = _ancestor_links(root)
    loose, inside, special = _scan(root, limit, deep=False, private=private) if not links else ([], [], [])
    return loose, (links + inside)[:limit], special


def loose_permissions(root: Path, limit: int = 20, *, private: bool = False) -> list[str]:
    """Paths under ``root`` (and itself) that a group or others can access (at most ``limit``;
    ``private``: chart folder names masked, for printing)."""
    return _scan(root, limit, private=private)[0]


def _ancestor_links(root: Path) -> list[str]:
    """Symlinks on the way to ``root`` (itself included) that could redirect it."""
    found: list[str] = []
    uid = os.geteuid()
    parts = Path(os.path.abspath(root)).parts
    for depth in range(1, len(parts)):
        p = Path(*parts[: depth + 1])
        try:
            st = p.lstat()
        except OSError:
            break  # the rest does not exist yet: nothing below can be a symlink
        if not stat.S_ISLNK(st.st_mode):
            continue
        target = os.readlink(p)
        if depth == len(parts) - 1:
            found.append(f"{p} is a symlink to {target}")
            continue
        parent = p.parent.stat()
        writable_by_others = bool(parent.st_mode & 0o022) and not parent.st_mode & stat.S_ISVTX
        if st.st_uid not in (0, uid) or parent.st_uid not in (0, uid) or writable_by_others:
            found.append(f"{p} is a symlink to {target} that another user could change")
    return found


def symlink_problems(root: Path, limit: int = 20, *, private: bool = False) -> list[str]:
    """Symlinks that could send PHI somewhere the config does not name (at most ``limit``).

    The rule (docs/security.md): the workspace folder itself and everything inside it must
    not be a symlink; a symlink among its ancestors (``/home -> /usr/home``, ``/var ->
    /private/var``) is accepted only when nobody but root or the user can change it: owned
    by root or the user, in a folder owned by root or the user that others cannot write to
    (or that has the sticky bit, like ``/tmp``). ``private``: chart folder names masked.
    """
    return (_ancestor_links(root) + _scan(root, limit, private=private)[1])[:limit]


def check_permissions(root: Path, limit: int = 20) -> None:
    """Refuse (exit 4) symlinks that could redirect PHI and group- or world-accessible paths.

    This is the run-start check: its cost does not grow with the history (the object files
    and older vault runs are left to ``lorchestra validate``; see :func:`_run_start_filter`).
    The message lists paths with chart folder names masked (a client's name is PHI and the
    message reaches cron logs): :func:`shown_path`, and the hint says how to find one.
    """
    loose, links, special = run_start_problems(root, limit, private=True)

    def hint(text: str, listed: list[str]) -> str:
        found = chart_hint(root, listed)
        return text if found is None else f"{text}; {found}"

    if links:
        listing = "\n  ".join(links)
        raise PermissionProblem(
            f"the workspace path {root} goes through symlinks, so PHI could be written "
            f"somewhere the config does not name:\n  {listing}",
            hint=hint(f"set `workspace` (or --workspace) to the real folder ({os.path.realpath(root)}) "
                      "and remove symlinks inside it, or pass --skip-permissions if you accept the risk",
                      links),
        )
    if special:
        listing = "\n  ".join(special)
        raise PermissionProblem(
            f"the workspace {root} holds special files where only files and folders belong "
            f"(a reader would block on them or read something else):\n  {listing}",
            hint=hint("remove them (rm PATH); the pipeline never creates one, so find out who did",
                      special),
        )
    if loose:
        listing = "\n  ".join(loose)
        raise PermissionProblem(
            f"the workspace {root} has paths others can read:\n  {listing}",
            hint=hint(f"run `chmod -R go-rwx {root}`, or pass --skip-permissions if you accept the risk",
                      loose),
        )


_HELD_FDS: dict[int, Path] = {}
"""Descriptors of the workspace locks this process holds, and whose workspace they lock."""


def held_lock_fds(root: Path | None = None) -> tuple[int, ...]:
    """The descriptors of the workspace locks this process holds (of ``root`` only, if given).

    The engine passes them to its stage workers (``pass_fds``): a worker then holds the lock
    with the engine, so when the engine dies (SIGKILL, crash) while a worker still finishes
    its cancel, the workspace stays locked until that last writer is gone.
    """
    return tuple(sorted(fd for fd, held in _HELD_FDS.items() if root is None or held == Path(root)))


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

    def acquire(self, wait_s: float = 0.0) -> WorkspaceLock:
        """Take the lock, waiting up to ``wait_s`` seconds; raise WorkspaceBusy otherwise."""
        fds = self._open(wait_s)
        deadline = time.monotonic() + wait_s
        while not self._try(fds, deadline):
            time.sleep(0.1)
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
        return [dir_fd, os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)]

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


def holder_of(lock_path: Path) -> str:
    """A description of the lock's holder: ``pid 123 (lorchestra run, since 10:02:11)``.

    When that process has died, its stage workers still hold the lock while they finish
    their cancel (they stop within the cancel grace period), and the text says so.
    """
    try:
        pid, started, *cmd = lock_path.read_text().split()
        since = time.strftime("%H:%M:%S", time.localtime(int(started)))
        text = f"pid {pid} ({' '.join(cmd) or 'lorchestra'}, since {since})"
    except (OSError, ValueError):
        return "another process"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return f"the stage workers of {text}, which has exited; they stop within the cancel grace period"
    except (PermissionError, ValueError, OverflowError):
        pass
    return text
