"""What ``lorchestra clean`` deletes, stage by stage, and the deleting itself.

Cleaning is planned before anything is touched, so the face can show exactly what will go
(each path with its files, bytes and vault runs) and the deletion removes exactly that list:

* ``canonize``: every file under ``canonical/`` (records, provenance, rejects) and
  ``diagnostics/canonize``; the next canonize rebuilds them from LATEST.
* ``index``: everything under ``vector-store/`` and ``diagnostics/index``; rebuilt from
  canonical.
* ``project``: every chart folder under ``clients/``, ``diagnostics/project`` and the scratch
  files a killed project task left in ``vector-store/`` (``.project-scratch.sqlite*``: its
  documents' facts and kept form responses, PHI the next project run would remove anyway; the
  client tables live in the index database: cleaning ``index`` removes them); the next
  project run writes them again.
* ``extract``: every account folder under ``vault/`` (its runs and LATEST.json),
  ``diagnostics/extract``, the discovered catalogs (``catalogs/``) and the loaders' stderr of
  ``extract --target`` (``diagnostics/targets``). The vault is the audit trail of what each source said and when:
  it cannot be rebuilt, which is why the face asks for it separately.

* ``partials`` (``clean --partials``): the hidden ``.run_id=*.partial`` folders a killed
  extract worker left in the vault. No stage or audit ever reads them (they have no
  manifest); they hold PHI and space. Only under the workspace lock, which every worker
  holds while it writes one, so none of them is being written.

The run history (``state/``) and the PHI-free logs are never cleaned here.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.store.workspace import PROJECT_SCRATCH, Workspace
from engine.vault.layout import DT_DIR, PARTIAL_DIR

CLEAN_STAGES = ("project", "canonize", "index", "extract")


@dataclass(frozen=True)
class Target:
    """One path to delete (a file, or a folder with everything in it)."""

    stage: str
    path: Path
    files: int
    bytes: int
    runs: int = 0
    vault: bool = False
    """Whether it lies in the vault (deleting it loses the audit trail), or is the extract
    stage's diagnostics, which are deleted only with the vault."""

    @property
    def is_vault(self) -> bool:
        """Whether deleting it loses vault runs or LATEST pointers (the audit trail)."""
        return self.vault


def _measure(path: Path) -> tuple[int, int]:
    """(files, bytes) of a file or of everything under a folder (links not followed).

    One ``scandir`` per folder and one ``lstat`` per file, no path objects: the index's
    million object files are the bulk of a workspace (9 CPU-s for ``clean --all --dry-run``
    with ``os.walk`` and a ``Path`` per file)."""
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        return 1, st.st_size
    files = size = 0
    folders = [os.fspath(path)]
    while folders:
        try:
            it = os.scandir(folders.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir():  # as os.walk: a link to a folder is neither counted nor followed
                        if not entry.is_symlink():
                            folders.append(entry.path)
                        continue
                    size += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                files += 1
    return files, size


def _count_runs(account: Path) -> int:
    runs = 0
    for dt in account.iterdir() if account.is_dir() else ():
        if DT_DIR.fullmatch(dt.name) and dt.is_dir():
            runs += sum(1 for r in dt.iterdir() if r.is_dir() and (r.name.startswith("run_id=")
                                                                  or r.name.startswith(".run_id=")))
    return runs


def _target(stage: str, path: Path, runs: int = 0, *, vault: bool = False) -> Target:
    files, size = _measure(path)
    return Target(stage, path, files, size, runs, vault)


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _vault_targets(ws: Workspace) -> list[Target]:
    out: list[Target] = []
    for domain in _children(ws.vault):
        if not domain.is_dir() or domain.is_symlink():
            out.append(_target("extract", domain, vault=True))
            continue
        for source in _children(domain):
            if not source.is_dir() or source.is_symlink():
                out.append(_target("extract", source, vault=True))
                continue
            out += [_target("extract", acct, _count_runs(acct), vault=True) for acct in _children(source)]
    return out


def partial_targets(ws: Workspace) -> list[Target]:
    """Every hidden, unfinished run folder in the vault (``dt=*/.run_id=*.partial``)."""
    found = sorted(p for p in ws.vault.glob("*/*/*/dt=*/.run_id=*.partial")
                   if PARTIAL_DIR.fullmatch(p.name) and p.is_dir() and not p.is_symlink())
    return [_target("partials", p, 1) for p in found]


def plan_clean(ws: Workspace, stages: list[str]) -> list[Target]:
    """Everything cleaning ``stages`` would delete, in a stable order."""
    out: list[Target] = []
    for stage in CLEAN_STAGES:
        if stage not in stages:
            continue
        if stage == "canonize":
            found = sorted(ws.canonical.rglob("*")) if ws.canonical.is_dir() else []
            out += [_target(stage, p) for p in found if p.is_file() or p.is_symlink()]
        elif stage == "index":
            out += [_target(stage, p) for p in _children(ws.vector_store)]
        elif stage == "project":
            out += [_target(stage, p) for p in _children(ws.root / "clients")]
            scratch = sorted(ws.vector_store.glob(f"{PROJECT_SCRATCH}*")) if ws.vector_store.is_dir() else []
            out += [_target(stage, p) for p in scratch if p.is_file() and not p.is_symlink()]
        else:
            out += _vault_targets(ws)
        extra = [ws.diagnostics / stage]
        if stage == "extract":  # the discovered catalogs and the loaders' stderr hold PHI too
            extra += [ws.catalogs, ws.diagnostics / "targets"]
        for path in extra:  # the extract stage's go and stay with the vault (--all keeps them)
            if path.exists():
                out.append(_target(stage, path, vault=stage == "extract"))
    return out


def delete(targets: list[Target], ws: Workspace) -> tuple[int, int, int]:
    """Delete every target, then empty folders left inside the stage roots; (files, bytes, runs)."""
    files = size = runs = 0
    for t in targets:
        if t.path.is_dir() and not t.path.is_symlink():
            shutil.rmtree(t.path)
        else:
            t.path.unlink(missing_ok=True)
        files, size, runs = files + t.files, size + t.bytes, runs + t.runs
    for root in (ws.canonical, ws.vault):
        _prune_empty(root)
    return files, size, runs


def _prune_empty(root: Path) -> None:
    """Remove empty folders below ``root`` (never ``root`` itself)."""
    if not root.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        p = Path(dirpath)
        if p != root:
            try:
                p.rmdir()
            except OSError:
                pass
