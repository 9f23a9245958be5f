"""Swapping in one account's canonical files together, so a crash never leaves a mix.

An account's canonical output is three files (``{account}.jsonl``, ``{account}.meta.json``
and ``{account}.rejects.jsonl``), and the meta's ``output.sha256`` must describe the data
beside it. One ``os.replace`` per file cannot swap three files at once, so publishing is a
small journal with one atomic commit point:

1. **stage**: write each new file as ``.{name}.next`` (0600, fsynced);
2. **commit**: atomically write ``.{account}.commit.json`` naming the staged files and the
   files to remove (temp file, fsync, rename, fsync the folder). This is the commit point;
3. **apply**: rename each staged file over its final name, unlink the removals, fsync;
4. **finish**: unlink the commit marker, fsync.

:func:`recover` runs before anyone writes or reads the account under the workspace lock
(the canonize and index workers): with a marker it redoes step 3 (renames are idempotent)
and step 4 (roll forward); without one it deletes staged and temporary leftovers of an
attempt that never committed (roll back). A reader without the lock (``lorchestra verify``)
uses :func:`resolve`, which names the file of the current version whatever step a writer
died in. So every reader sees the old version (killed before the commit point) or the new
one (killed after it), never a mix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.fsutil import atomic_write_json, fsync_dir, open_private, read_json

STAGED_SUFFIX = ".next"
ROLES = ("data", "meta", "rejects")


@dataclass(frozen=True)
class AccountFiles:
    """The canonical files of one account and the names of its journal."""

    folder: Path
    account: str

    @property
    def data(self) -> Path:
        """The canonical records."""
        return self.folder / f"{self.account}.jsonl"

    @property
    def meta(self) -> Path:
        """The provenance (inputs, output sha256, counts)."""
        return self.folder / f"{self.account}.meta.json"

    @property
    def rejects(self) -> Path:
        """Records that failed their transform or schema, with the reason (PHI)."""
        return self.folder / f"{self.account}.rejects.jsonl"

    @property
    def marker(self) -> Path:
        """The commit marker: present only between the commit point and the end of apply."""
        return self.folder / f".{self.account}.commit.json"

    def path(self, role: str) -> Path:
        """The final path of ``data``, ``meta`` or ``rejects``."""
        if role not in ROLES:
            raise ValueError(f"unknown canonical file role {role!r}")
        p: Path = getattr(self, role)
        return p

    def staged(self, role: str) -> Path:
        """Where the new version of a file is written before the commit."""
        final = self.path(role)
        return final.with_name(f".{final.name}{STAGED_SUFFIX}")

    def leftovers(self) -> list[Path]:
        """Hidden files of this account from attempts that did not finish (staged or temp)."""
        if not self.folder.is_dir():
            return []
        names = [self.path(r).name for r in ROLES] + [self.marker.name]
        pattern = re.compile("|".join(
            rf"\.{re.escape(n)}(?:{re.escape(STAGED_SUFFIX)}|\.tmp-\d+)" for n in names))
        return sorted(p for p in self.folder.iterdir() if pattern.fullmatch(p.name))


def open_staged(files: AccountFiles, role: str) -> Any:
    """Open the staged file of ``role`` for writing (0600, truncated)."""
    return open_private(files.staged(role), "wb")


def write_staged_json(files: AccountFiles, role: str, obj: Any) -> None:
    """Stage a JSON file (the meta) and fsync it."""
    with open_staged(files, role) as fh:
        fh.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def commit(files: AccountFiles, replace: Iterable[str], remove: Iterable[str] = ()) -> None:
    """Commit staged files (``replace``) and removals atomically, then apply and finish.

    Every role in ``replace`` must already be staged and fsynced.
    """
    replace, remove = sorted(set(replace)), sorted(set(remove) - set(replace))
    for role in replace:
        if not files.staged(role).is_file():
            raise FileNotFoundError(f"staged canonical {role} file is missing")
    atomic_write_json(files.marker, {"format": 1, "replace": replace, "remove": remove})
    _apply(files)


def _apply(files: AccountFiles) -> None:
    """Roll a committed publish forward (idempotent), then drop the marker."""
    plan = read_json(files.marker)
    for role in plan.get("replace", []):
        staged = files.staged(role)
        if staged.exists():
            os.replace(staged, files.path(role))
    for role in plan.get("remove", []):
        files.path(role).unlink(missing_ok=True)
    fsync_dir(files.folder)
    files.marker.unlink()
    fsync_dir(files.folder)


def discard(files: AccountFiles) -> None:
    """Delete staged and temporary files of an attempt that did not commit."""
    for p in files.leftovers():
        if p != files.marker:
            p.unlink(missing_ok=True)


def recover(files: AccountFiles) -> str | None:
    """Finish or undo an interrupted publish; ``"forward"``, ``"back"`` or None (nothing to do).

    Call it only while holding the workspace lock (no other writer of the account).
    """
    if files.marker.exists():
        try:
            _apply(files)
        except ValueError:  # a marker is written atomically: unreadable means damaged disk
            files.marker.unlink(missing_ok=True)
            discard(files)
            return "back"
        discard(files)
        return "forward"
    if files.leftovers():
        discard(files)
        return "back"
    return None


def resolve(files: AccountFiles) -> dict[str, Path]:
    """The file holding each role's current version, for readers that do not take the lock.

    After the commit point the staged file is current until it is renamed; a role the
    commit removes is absent from the result.
    """
    current = {r: files.path(r) for r in ROLES}
    try:
        plan = read_json(files.marker)
    except (OSError, ValueError):
        return current
    for role in plan.get("replace", []):
        staged = files.staged(role)
        if staged.exists():
            current[role] = staged
    for role in plan.get("remove", []):
        if role not in plan.get("replace", []):
            current.pop(role, None)
    return current
