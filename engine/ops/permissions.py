"""The workspace's privacy checks of ``lorchestra validate``, and the fixer that tightens modes.

Split from :mod:`engine.ops.checks` because these walk the whole workspace on disk (every
inode, seconds on a large one) rather than look at the config: nothing group- or
world-accessible, everything ours, no symlink or special file (failures are permission
problems, exit 4); the quick variant a run starts with; and :func:`fix_permissions`, which
only tightens modes and never follows a symlinked workspace. Paths are shown with chart
folder names masked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from engine.check import Check
from engine.store.fsutil import DIR_MODE, FILE_MODE
from engine.store.shown import chart_hint, shown_path
from engine.store.workspace import (
    OWNED,
    Workspace,
    ancestor_links,
    run_start_problems,
    special_kind,
    symlink_problems,
)


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    yield root, root.lstat()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            try:
                yield p, p.lstat()
            except FileNotFoundError:
                continue


def _loose(st: os.stat_result) -> bool:
    """A folder or file that the group or others can access (what a run refuses)."""
    return not stat.S_ISLNK(st.st_mode) and bool(st.st_mode & 0o077)


def check_permissions(ws: Workspace, limit: int = 20) -> list[Check]:
    """Nothing group- or world-accessible, everything ours (failures are permission problems: exit 4).

    Paths are shown with chart folder names masked (``clients/<client 0123abcd>/...``: a
    folder's name is the client's name), with one note saying how to find them."""
    if not ws.root.exists():
        return [Check("permissions", "workspace", "ok", "nothing to check yet", "permission")]
    out = [Check("permissions", "symlink", "fail", text, "permission")
           for text in symlink_problems(ws.root, private=True)]
    uid = os.getuid()
    bad = 0
    for p, st in _walk(ws.root):
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            out.append(Check("permissions", shown_path(p, ws.root), "fail",
                             f"{special_kind(st.st_mode)}, not a regular file or folder: a reader "
                             "would block on it; remove it", "permission"))
        elif st.st_uid != uid:
            out.append(Check("permissions", shown_path(p, ws.root), "fail", "owned by another user",
                             "permission"))
        elif _loose(st):
            bad += 1
            if bad <= limit:
                want = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
                out.append(Check("permissions", shown_path(p, ws.root), "fail",
                                 f"{stat.filemode(st.st_mode)}, should be {want}", "permission"))
    if bad > limit:
        out.append(Check("permissions", "workspace", "fail", f"... and {bad - limit} more", "permission"))
    out += _chart_note(ws, out)
    if not out:
        out.append(Check("permissions", "workspace", "ok", f"folders 0700 and files 0600 under {ws.root}",
                         "permission"))
    return out


def check_permissions_quick(ws: Workspace, limit: int = 20) -> list[Check]:
    """The run-start permission check (``validate --quick``): folders, what a run writes and
    reads, symlinks; not the object files nor older vault runs (docs/security.md)."""
    if not ws.root.exists():
        return [Check("permissions", "workspace", "ok", "nothing to check yet", "permission")]
    loose, links, special = run_start_problems(ws.root, limit, private=True)
    out = [Check("permissions", "symlink", "fail", text, "permission") for text in links]
    out += [Check("permissions", "special", "fail", text, "permission") for text in special]
    out += [Check("permissions", text, "fail", "another user owns it: only you may" if OWNED in text
                  else "group or others can access it: should be 0700/0600", "permission") for text in loose]
    out += _chart_note(ws, out)
    if not out:
        out.append(Check("permissions", "workspace", "ok",
                         f"what a run writes and reads is private under {ws.root} (quick: object files "
                         "and older vault runs are checked by `lorchestra validate`)", "permission"))
    return out


def _chart_note(ws: Workspace, found: list[Check]) -> list[Check]:
    """One line saying how to find a chart folder shown masked among ``found`` (none if none is)."""
    hint = chart_hint(ws.root, [f"{c.subject} {c.message}" for c in found])
    return [] if hint is None else [Check("permissions", "clients", "warn", hint, "permission")]


def fix_permissions(ws: Workspace) -> int:
    """chmod folders to 0700 and files to 0600 (symlinks untouched); how many changed.
    Nothing when the workspace path goes through a symlink: the walk would follow it and
    chmod the folder it points to (a shared team folder lost its modes)."""
    if not ws.root.exists() or ws.root.is_symlink() or ancestor_links(ws.root):
        return 0  # symlinks inside are left alone by the walk (and named by the check)
    fixed = 0
    for p, st in _walk(ws.root):
        if st.st_uid == os.getuid() and _loose(st):
            os.chmod(p, DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE)
            fixed += 1
    return fixed
