"""``lorchestra clean``: delete a stage's outputs, showing exactly what goes first.

Deleting PHI outputs is how a practice starts over after a transform change or frees disk,
but the vault is the audit trail of what each source said and when, and nothing can rebuild
it. So: the listing comes first (every path, its files and bytes, vault runs counted);
a person confirms on a terminal; without a terminal nothing is deleted unless ``--yes``;
and the vault goes only with its own confirmation (typing ``vault``), or in a script with
both ``--yes`` and ``--stage extract`` (``--all --yes`` alone keeps it). Cleaning takes the
workspace lock, so it never races a run (exit 3 when busy).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from engine.config.load import load
from engine.errors import ExitCode, UsageError
from engine.ops.cleanup import CLEAN_STAGES, Target, delete, partial_targets, plan_clean
from engine.store.workspace import Workspace, WorkspaceLock, check_not_a_file
from lorch_tui.summary import human_bytes


def cmd_clean(ns: argparse.Namespace) -> int:
    """`lorchestra clean --stage S | --all [--dry-run] [--yes]`."""
    if not ns.stage and not ns.all and not ns.partials:
        raise UsageError("say what to clean: --stage project|canonize|index|extract (repeatable), --all "
                         "or --partials",
                         hint=("for example `lorchestra clean --all --dry-run` lists everything that "
                               "would be deleted" if ns.dry_run else
                               "add --dry-run to see what would be deleted first"))
    stages = sorted(set(ns.stage or []) | (set(CLEAN_STAGES) if ns.all else set()), key=CLEAN_STAGES.index)
    vault_by_yes = "extract" in (ns.stage or [])
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    check_not_a_file(loaded.workspace)
    ws = Workspace(loaded.workspace)
    console = Console(highlight=False)
    console.print(f"workspace: {ws.root}", markup=False)
    if not ws.root.is_dir():
        console.print("nothing to clean: the workspace does not exist")
        return int(ExitCode.OK)
    tty = sys.stdin.isatty()
    if not ns.dry_run and not ns.yes and not tty:
        show(console, ws, plan(ws, stages, ns.partials), keep_vault=False)
        console.print("refusing to delete without confirmation: there is no terminal to ask on; "
                      "pass --yes (and --stage extract for the vault) to delete")
        return int(ExitCode.USAGE)
    lock = None if ns.dry_run else WorkspaceLock(ws, command="lorchestra clean").acquire(ns.wait)
    try:
        keep_vault = "extract" in stages and ns.yes and not vault_by_yes
        targets = plan(ws, stages, ns.partials)
        show(console, ws, targets, keep_vault=keep_vault)
        if keep_vault:
            targets = [t for t in targets if not t.is_vault]
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
        files, size, runs = delete(targets, ws)
        console.print(f"deleted {files} file(s), {human_bytes(size)}" + (f", {runs} vault run(s)" if runs else ""))
        return int(ExitCode.OK)
    finally:
        if lock is not None:
            lock.release()


def plan(ws: Workspace, stages: list[str], partials: bool) -> list[Target]:
    """The stages' targets, plus the unfinished vault runs with ``--partials``."""
    return plan_clean(ws, stages) + (partial_targets(ws) if partials else [])


def show(console: Console, ws: Workspace, targets: list[Target], *, keep_vault: bool) -> None:
    """List every target with its files, bytes and runs, and the totals."""
    vault = [t for t in targets if t.is_vault]
    for t in targets:
        rel = t.path.relative_to(ws.root)
        what = f"{t.files} file(s), {human_bytes(t.bytes)}" + (f", {t.runs} vault run(s)" if t.runs else "")
        verb = "keep  " if t.is_vault and keep_vault else "delete"
        console.print(f"  {verb} {t.stage:<8} {rel}  ({what})", markup=False)
    doomed = [t for t in targets if not (t.is_vault and keep_vault)]
    console.print(f"total: {len(doomed)} path(s), {sum(t.files for t in doomed)} file(s), "
                  f"{human_bytes(sum(t.bytes for t in doomed))}, {sum(t.runs for t in doomed)} vault run(s)")
    if vault and keep_vault:
        console.print("the vault is kept: --all --yes never deletes it; pass --stage extract --yes to "
                      "delete the vault too")
    elif vault:
        console.print(f"[bold red]WARNING[/]: this deletes {sum(t.runs for t in vault)} vault run(s) of "
                      f"{len(vault)} account folder(s): the raw audit trail of every extract. They "
                      f"cannot be re-created; a new extract only captures what the sources hold today.")


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
