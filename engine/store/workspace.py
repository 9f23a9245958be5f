"""The workspace on disk: where every path of DESIGN.md section 3 lives, and its checks.

One object answers "where does X go" for every stage and face, so the layout is written
down once. Creating the workspace makes every folder 0700.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PermissionProblem, UsageError, from_os_error
from engine.store.fsutil import DIR_MODE, ensure_dir
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


OWNED = "(owned by another user: uid"
"""Marks a loose path that is not the user's: its owner can read whatever a run writes into it."""


def _scan(root: Path, limit: int, deep: bool = True,
          private: bool = False) -> tuple[list[str], list[str], list[str]]:
    """One walk of the workspace (links never followed): (loose paths, symlinks, special
    files), each at most ``limit``; a path another user owns is loose too (marked
    :data:`OWNED`). ``deep`` visits everything; otherwise the run-start walk
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
        root_st = root.lstat()
    except OSError:
        return loose, links, special
    uid = os.geteuid()
    if root_st.st_uid != uid:
        loose.append(f"{root} {OWNED} {root_st.st_uid})")
    elif root_st.st_mode & 0o077:
        loose.append(f"{root} ({stat.filemode(root_st.st_mode)})")
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
            if st.st_uid != uid and len(loose) < limit:  # its owner reads what a run writes there
                loose.append(f"{show(entry.path)} {OWNED} {st.st_uid})")
            elif st.st_mode & 0o077 and len(loose) < limit:
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
    links = ancestor_links(root)
    loose, inside, special = _scan(root, limit, deep=False, private=private) if not links else ([], [], [])
    return loose, (links + inside)[:limit], special


def loose_permissions(root: Path, limit: int = 20, *, private: bool = False) -> list[str]:
    """Paths under ``root`` (and itself) that a group or others can access (at most ``limit``;
    ``private``: chart folder names masked, for printing)."""
    return _scan(root, limit, private=private)[0]


def ancestor_links(root: Path) -> list[str]:
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
    return (ancestor_links(root) + _scan(root, limit, private=private)[1])[:limit]


def check_permissions(root: Path, limit: int = 20) -> None:
    """Refuse (exit 4) symlinks that could redirect PHI and group- or world-accessible paths.

    This is the run-start check: its cost does not grow with the history (the object files
    and older vault runs are left to ``lorchestra validate``; see :func:`_run_start_filter`).
    The message lists paths with chart folder names masked (a client's name is PHI and the
    message reaches cron logs): :func:`shown_path`, and the hint says how to find one.
    """
    loose, links, special = run_start_problems(root, limit, private=True)
    foreign = [x for x in loose if OWNED in x]
    refusals = [  # (paths, what is wrong, what to do), the worst first
        (links, f"the workspace path {root} goes through symlinks, so PHI could be written somewhere the "
                "config does not name",
         f"set `workspace` (or --workspace) to the real folder ({os.path.realpath(root)}) and remove "
         "symlinks inside it, or pass --skip-permissions if you accept the risk"),
        (special, f"the workspace {root} holds special files where only files and folders belong (a reader "
                  "would block on them or read something else)",
         "remove them (rm PATH); the pipeline never creates one, so find out who did"),
        (foreign, f"the workspace {root} holds paths another user owns, who could read the PHI a run writes "
                  "into them",
         f"if they are yours, `chown -R {os.geteuid()} {root}`; otherwise choose another --workspace (only "
         "you may own it), or pass --skip-permissions if you accept the risk"),
        (loose, f"the workspace {root} has paths others can read",
         f"run `chmod -R go-rwx {root}`, or pass --skip-permissions if you accept the risk"),
    ]
    for listed, what, fix in refusals:
        if listed:
            found = chart_hint(root, listed)
            listing = "\n  ".join(listed)
            raise PermissionProblem(f"{what}:\n  {listing}", hint=fix if found is None else f"{fix}; {found}")
