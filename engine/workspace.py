"""The workspace on disk: where every path of DESIGN.md section 3 lives, and its lock.

One object answers "where does X go" for every stage and face, so the layout is written
down once. Creating the workspace makes every folder 0700.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.errors import PermissionProblem, WorkspaceBusy
from engine.fsutil import DIR_MODE, FILE_MODE, ensure_dir


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
        """The PHI-free run and task history (engine.state)."""
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
        """Create the workspace's top folders as 0700."""
        for d in (self.vault, self.canonical, self.vector_store, self.state, self.logs):
            ensure_dir(d)
        os.chmod(self.root, DIR_MODE)
        return self


def loose_permissions(root: Path, limit: int = 20) -> list[str]:
    """Paths under ``root`` that a group or others can access (at most ``limit``)."""
    found: list[str] = []
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""] if dirpath == str(root) else [*dirnames, *filenames]:
            p = Path(dirpath) / name if name else Path(dirpath)
            try:
                mode = p.lstat().st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077:
                found.append(f"{p} ({stat.filemode(mode)})")
                if len(found) >= limit:
                    return found
    return found


def check_permissions(root: Path) -> None:
    """Refuse (exit 4) when PHI paths are group- or world-accessible."""
    loose = loose_permissions(root)
    if loose:
        listing = "\n  ".join(loose)
        raise PermissionProblem(
            f"the workspace {root} has paths others can read:\n  {listing}",
            hint=f"run `chmod -R go-rwx {root}`, or pass --skip-permissions if you accept the risk",
        )


class WorkspaceLock:
    """An exclusive, non-stealable lock on the workspace (``state/lock``).

    It is an ``flock`` on an open file, so the kernel releases it when the holder dies:
    a stale lock of a dead process can never block a later run. The file records the
    holder's pid and start time for the "busy" message.
    """

    def __init__(self, ws: Workspace, *, command: str = "lorchestra") -> None:
        self.path = ws.state / "lock"
        self.command = command
        self._fh: IO[Any] | None = None

    def acquire(self, wait_s: float = 0.0) -> WorkspaceLock:
        """Take the lock, waiting up to ``wait_s`` seconds; raise WorkspaceBusy otherwise."""
        ensure_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = holder_of(self.path)
                    os.close(fd)
                    raise WorkspaceBusy(
                        f"the workspace {self.path.parent.parent} is busy: {holder} holds its lock",
                        hint="wait for that run to finish (lorch-tui --no-ui --wait SECONDS waits), "
                        "or use another --workspace",
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {int(time.time())} {self.command}\n".encode())
        self._fh = os.fdopen(fd, "r+b")
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; its content is stale once unlocked)."""
        if self._fh is not None:
            os.ftruncate(self._fh.fileno(), 0)  # an empty file means "not held"
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> WorkspaceLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_of(lock_path: Path) -> str:
    """A description of the lock's holder: ``pid 123 (lorchestra run, since 10:02:11)``."""
    try:
        pid, started, *cmd = lock_path.read_text().split()
        since = time.strftime("%H:%M:%S", time.localtime(int(started)))
        return f"pid {pid} ({' '.join(cmd) or 'lorchestra'}, since {since})"
    except (OSError, ValueError):
        return "another process"
