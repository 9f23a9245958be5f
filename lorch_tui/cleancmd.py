"""``lorchestra clean``: delete a stage's outputs, showing exactly what goes first.

Deleting PHI outputs is how a practice starts over after a transform change or frees disk,
but the vault is the audit trail of what each source said and when, and nothing can rebuild
it. So: the listing comes first (every path, its files and bytes, vault runs counted);
a person confirms on a terminal; without a terminal nothing is deleted unless ``--yes``;
and the vault goes only with its own confirmation (typing ``vault``), or in a script with
both ``--yes`` and ``--stage extract`` (``--all --yes`` alone keeps it). Cleaning takes the
workspace lock, so it never races a run (exit 3 when busy).

A chart folder's name is its client's name (PHI), so the listing never prints one: the chart
folders of ``clients/`` are one line with their count, files and bytes, and anything else there
is shown masked (``engine.store.shown.shown_path``), as is a path in an error.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from rich.console import Console

from engine.config.load import load
from engine.errors import ExitCode, PermissionProblem, UsageError
from engine.ops.cleanup import CLEAN_STAGES, Target, delete, partial_targets, plan_clean
from engine.store.lock import WorkspaceLock
from engine.store.shown import CHARTS_DIR, chart_hint, private_os_error, shown_name, shown_path
from engine.store.workspace import Workspace, check_not_a_file, run_start_problems
from lorch_tui.summary import human_bytes


def cmd_clean(ns: argparse.Namespace) -> int:
    """`lorchestra clean --stage S | --all | --partials | --older-than DAYS [--dry-run] [--yes]`."""
    if not ns.stage and not ns.all and not ns.partials and ns.older_than is None:
        raise UsageError("say what to clean: --stage project|canonize|index|extract (repeatable), --all, "
                         "--partials or --older-than DAYS",
                         hint=("for example `lorchestra clean --all --dry-run` lists everything that "
                               "would be deleted" if ns.dry_run else
                               "add --dry-run to see what would be deleted first"))
    if ns.older_than is not None and "extract" in (ns.stage or []):
        raise UsageError("--older-than keeps LATEST and what it is built from; --stage extract deletes the "
                         "whole vault: choose one")
    stages = sorted(set(ns.stage or []) | (set(CLEAN_STAGES) if ns.all else set()), key=CLEAN_STAGES.index)
    if ns.older_than is not None:  # with --all: the derived outputs and the old runs, never the whole vault
        stages = [s for s in stages if s != "extract"]
    vault_by_yes = "extract" in (ns.stage or [])
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    check_not_a_file(loaded.workspace)
    ws = Workspace(loaded.workspace)
    if ws.root.exists() or ws.root.is_symlink():
        _no_links(ws.root)  # a symlinked stage folder or lock led the deletes outside the workspace
        if not ws.state_db.is_file():  # every run and extract writes it
            raise UsageError(f"{ws.root} does not look like a lorchestra workspace (it has no "
                             f"{ws.state_db.relative_to(ws.root)}, which every run writes): nothing deleted",
                             hint="check --workspace and the config's `workspace`: clean deletes folders "
                                  "named clients/, canonical/, vector-store/ ... wherever it is pointed")
    try:
        return _clean(ns, ws, stages, vault_by_yes=vault_by_yes)
    except OSError as exc:  # the cli names its path: never with a chart folder's name
        raise private_os_error(exc, ws.root) from None


def _no_links(root: Path) -> None:
    """Refuse (exit 4) a workspace path through symlinks, or one holding them or FIFOs where a
    run writes, as a run does; loose modes are no danger to a deletion and are left to
    `validate`. (clean followed a symlinked `canonical/` and deleted the files it led to.)"""
    _loose, links, special = run_start_problems(root, 20, private=True)
    if links or special:
        raise PermissionProblem(
            f"the workspace {root} has symlinks or special files where its folders and files should be, so "
            "clean could delete or write outside it: " + ", ".join((links + special)[:5]),
            hint=f"remove them, or point --workspace at the real folder ({os.path.realpath(root)}); "
                 "`lorchestra validate` lists them")


def take_lock(ws: Workspace, wait_s: float, command: str = "lorchestra clean") -> WorkspaceLock:
    """The workspace lock, waiting up to ``wait_s`` as ``run --wait`` does: the wait is said on
    stderr, and SIGTERM or SIGHUP stop it as Ctrl-C does (exit 130; SIGTERM gave 143)."""
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def waiting(holder: str) -> None:
        print(f"lorchestra: the workspace lock is held by {holder}; waiting up to {wait_s:g} s for it "
              "(Ctrl-C stops)", file=sys.stderr, flush=True)

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return WorkspaceLock(ws, command=command).acquire(wait_s, waiting)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _clean(ns: argparse.Namespace, ws: Workspace, stages: list[str], *, vault_by_yes: bool) -> int:
    """List, confirm and delete (the paths of an error are masked by the caller)."""
    console = Console(highlight=False)
    console.print(f"workspace: {ws.root}", markup=False)
    if not ws.root.is_dir():
        console.print("nothing to clean: the workspace does not exist")
        return int(ExitCode.OK)
    tty = sys.stdin.isatty()
    if not ns.dry_run and not ns.yes and not tty:
        show(console, ws, plan(ws, stages, ns.partials, ns.older_than), keep_vault=False)
        console.print("refusing to delete without confirmation: there is no terminal to ask on; "
                      "pass --yes (and --stage extract for the vault) to delete")
        return int(ExitCode.USAGE)
    lock = None if ns.dry_run else take_lock(ws, ns.wait)
    try:
        keep_vault = "extract" in stages and ns.yes and not vault_by_yes
        targets = plan(ws, stages, ns.partials, ns.older_than)
        if "extract" in stages and not keep_vault:  # the old runs go with their whole account
            targets = [t for t in targets if t.stage != "old runs"]
        show(console, ws, targets, keep_vault=keep_vault)
        if keep_vault:
            targets = [t for t in targets if not _whole_vault(t)]
        if not targets:
            console.print("nothing to delete")
            return int(ExitCode.OK)
        if ns.dry_run:
            console.print("dry run: nothing was deleted")
            return int(ExitCode.OK)
        if not ns.yes:
            targets = confirm(console, targets)
        if not targets:
            console.print("nothing deleted")
            return int(ExitCode.OK)
        try:
            files, size, runs = delete(targets, ws)
        except OSError as exc:
            raise located(exc, targets) from None
        console.print(f"deleted {files} file(s), {human_bytes(size)}" + (f", {runs} vault run(s)" if runs else ""))
        return int(ExitCode.OK)
    finally:
        if lock is not None:
            lock.release()


def plan(ws: Workspace, stages: list[str], partials: bool, older_than: int | None = None) -> list[Target]:
    """The stages' targets, plus the unfinished vault runs with ``--partials`` and the runs
    older than ``--older-than`` days that no stage reads (:mod:`engine.ops.prune`; none of
    them when the vault itself goes)."""
    targets = plan_clean(ws, stages) + (partial_targets(ws) if partials else [])
    if older_than is not None:
        from engine.ops.prune import old_run_targets

        targets += old_run_targets(ws, older_than)
    return targets


def show(console: Console, ws: Workspace, targets: list[Target], *, keep_vault: bool) -> None:
    """List every target with its files, bytes and runs, and the totals. The chart folders of
    ``clients/`` are one line with their count (their names are clients' names: PHI); any
    other name there is masked (:func:`engine.store.shown.shown_path`)."""
    vault = [t for t in targets if t.is_vault]
    flags = [is_chart(ws, t) for t in targets]
    charts = [t for t, chart in zip(targets, flags, strict=True) if chart]
    for t, chart in zip(targets, flags, strict=True):
        if chart:
            if t is charts[0]:
                what = f"{sum(c.files for c in charts)} file(s), {human_bytes(sum(c.bytes for c in charts))}"
                console.print(f"  delete {t.stage:<8} {CHARTS_DIR[0]}/: {len(charts)} chart folder(s), "
                              "names hidden (they are clients' names; `lorchestra clients list` shows "
                              f"them)  ({what})", markup=False)
            continue
        what = f"{t.files} file(s), {human_bytes(t.bytes)}" + (f", {t.runs} vault run(s)" if t.runs else "")
        verb = "keep  " if _whole_vault(t) and keep_vault else "delete"
        console.print(f"  {verb} {t.stage:<8} {shown_rel(ws, t.path)}  ({what})", markup=False)
    doomed = [t for t in targets if not (_whole_vault(t) and keep_vault)]
    console.print(f"total: {len(doomed)} path(s), {sum(t.files for t in doomed)} file(s), "
                  f"{human_bytes(sum(t.bytes for t in doomed))}, {sum(t.runs for t in doomed)} vault run(s)"
                  + (f", of them {len(charts)} chart folder(s)" if charts else ""))
    hint = chart_hint(ws.root, [shown_rel(ws, t.path) for t, chart in zip(targets, flags, strict=True)
                                if not chart])
    if hint is not None:
        console.print(hint, markup=False)
    whole = [t for t in vault if _whole_vault(t) and t.path.is_relative_to(ws.vault)]
    old = [t for t in vault if t.stage == "old runs"]
    if whole and keep_vault:
        console.print("the vault is kept: --all --yes never deletes it; pass --stage extract --yes to "
                      "delete the vault too")
    elif whole:
        console.print(f"[bold red]WARNING[/]: this deletes {sum(t.runs for t in whole)} vault run(s) of "
                      f"{len(whole)} account folder(s): the raw audit trail of every extract. They "
                      f"cannot be re-created; a new extract only captures what the sources hold today.")
    if old:
        accounts = len({t.path.parent.parent for t in old})
        console.print(f"[bold yellow]WARNING[/]: this deletes {len(old)} old vault run(s) of {accounts} "
                      "account(s): what those sources said then, kept for audit. LATEST and the runs it "
                      "is built from stay.")


def _whole_vault(t: Target) -> bool:
    """A target of the extract stage's vault (an account folder, its diagnostics), not one of
    the old runs `--older-than` picks: `--all --yes` keeps the first and deletes the second."""
    return t.is_vault and t.stage == "extract"


def located(exc: OSError, targets: list[Target]) -> OSError:
    """``exc`` naming the whole path of what could not be deleted: ``shutil.rmtree`` works
    through folder descriptors, so its errors name a file relative to a folder it does not say
    (``timeline.md``). Targets go in order, so that folder lies in the first one still there."""
    name = exc.filename
    if isinstance(name, str) and not os.path.isabs(name):
        left = next((t.path for t in targets if os.path.lexists(t.path)), None)
        if left is not None:
            exc.filename = os.fspath(left / name if os.path.lexists(left / name) else left)
    return exc


def is_chart(ws: Workspace, t: Target) -> bool:
    """Whether ``t`` is a chart folder (``clients/Doe, Jane (0123abcd)``)."""
    return t.path.parent == ws.root / CHARTS_DIR[0] and shown_name(t.path.name).startswith("<client ")


def shown_rel(ws: Workspace, path: Path) -> str:
    """``path`` relative to the workspace, as it may be printed (chart folder names masked)."""
    return os.path.relpath(shown_path(path, ws.root), ws.root)


def confirm(console: Console, targets: list[Target]) -> list[Target]:
    """Ask on the terminal; the vault needs the word `vault` typed. Returns what may be deleted."""
    rest = [t for t in targets if not t.is_vault]
    vault = [t for t in targets if t.is_vault]
    chosen: list[Target] = []
    if rest and _ask(f"delete the {len(rest)} non-vault path(s) listed above? [y/N] ").lower() in ("y", "yes"):
        chosen += rest
    if vault:
        runs = sum(t.runs for t in vault)
        answer = _ask(f"type 'vault' to delete {runs} vault run(s), the audit trail (anything else keeps it): ")
        if answer == "vault":
            chosen += vault
        else:
            console.print("the vault is kept")
    return chosen


def _ask(prompt: str) -> str:
    try:
        return input(prompt).strip()
    except EOFError:
        return ""
