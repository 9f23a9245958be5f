"""``lorchestra validate``: a checklist of everything a run depends on, before cron finds out.

Config syntax (with line numbers), each extractor's tap or Meltano project, every mapping's
transform (compiled, and run on its samples under the canonize limits), every canonical schema, streams no mapping
covers, every outcome measure and binding, writable output folders, and
the workspace's permissions. Exit 2 for configuration problems, 4 for permission problems
(which win: a privacy problem must not hide behind a typo), 0 when only warnings remain.
``--fix-permissions`` tightens folders to 0700 and files to 0600 first. ``--quick`` keeps
the config, taps, output folders and the run-start permission check only (issue 18: it must
answer in 0.5 s on a workspace of a million documents). Paths under ``clients/`` are shown
with the chart folder's name masked (``<client 0123abcd>``: the name is a client's, PHI).
"""

from __future__ import annotations

import argparse

from rich.console import Console

from engine.check import Check
from engine.clients.checks import check_clients
from engine.config.load import load
from engine.errors import ConfigError, ExitCode
from engine.index.store import db_path
from engine.measures.checks import check_measures
from engine.ops import checks, permissions
from engine.store.shown import private_os_error
from engine.store.workspace import Workspace, check_not_a_file
from lorch_tui.bigtable import clean

MARKS = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]", "skip": "[dim]skip[/]"}


def cmd_validate(ns: argparse.Namespace) -> int:
    """`lorchestra validate [--quick] [--skip-permissions] [--fix-permissions]`."""
    console = Console(highlight=False)
    try:
        loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
        check_not_a_file(loaded.workspace)
    except ConfigError as exc:
        console.print(f"{MARKS['fail']} config", markup=True)
        console.print(exc.render(), markup=False)
        console.print("[red]configuration problem[/]: fix the config file and run validate again")
        return int(ExitCode.USAGE)
    cfg = loaded.config
    ws = Workspace(loaded.workspace)
    items: list[Check] = [Check("config", str(loaded.path), "ok", f"valid ({loaded.origin})")]
    items += checks.check_config_secrets(cfg, loaded.path)
    items += checks.check_extractors(cfg)
    if ns.quick:
        items.append(Check("transforms", "all", "skip",
                           "--quick: transforms, schemas, streams and drift samples are not checked "
                           "(run `lorchestra validate` for them)"))
    else:
        from engine.drift.checks import check_drift  # not for --quick: kept off its start-up

        items += checks.check_transforms(cfg)
        items += checks.check_transform_limits(cfg)
        items += checks.check_schemas(cfg)
        items += checks.check_streams(cfg, ws)
        items += check_drift(cfg, ws)
    items += check_clients(cfg, db_path(ws))
    items += check_measures(cfg)
    items += checks.check_output_dirs(ws)
    if not ns.quick:
        items.append(_vectors_check(cfg.stages.index.vectors))
    if ns.skip_permissions:
        items.append(Check("permissions", "workspace", "skip", "--skip-permissions", "permission"))
    else:
        if ns.fix_permissions:
            try:
                fixed = permissions.fix_permissions(ws)  # the real paths; only what is printed is masked
            except OSError as exc:
                raise private_os_error(exc, ws.root) from None
            items.append(Check("permissions", "fix", "ok", f"tightened {fixed} path(s) to 0700/0600",
                               "permission"))
        items += permissions.check_permissions_quick(ws) if ns.quick else permissions.check_permissions(ws)
    print_checklist(console, items)
    kind = checks.exit_kind(items)
    warnings = sum(1 for c in items if c.status == "warn")
    if kind == "permission":
        failed = [c for c in items if c.kind == "permission" and c.status == "fail"]
        fixable = [c for c in failed if c.subject not in ("symlink", "special")
                   and "another user" not in c.message and "not a regular file" not in c.message]
        if fixable:
            console.print("[red]permission problem[/]: the workspace holds PHI that others can reach; run "
                          "`lorchestra validate --fix-permissions` (or chmod -R go-rwx the workspace)")
        if len(fixable) < len(failed):  # what chmod cannot mend
            console.print("[red]permission problem[/]: remove the symlinks and special files listed "
                          "(--fix-permissions never touches them), and chown what another user owns")
        if any(c.kind != "permission" and c.status == "fail" for c in items):  # it was left unsaid
            console.print("[red]configuration problem[/]: fix the other items marked FAIL too and run "
                          "validate again (exit 4: a permission problem wins over a configuration one)")
        return int(ExitCode.PERMISSION)
    if kind == "config":
        console.print("[red]configuration problem[/]: fix the items marked FAIL and run validate again")
        return int(ExitCode.USAGE)
    console.print(f"[green]all checks passed[/]{f' ({warnings} warning(s))' if warnings else ''}")
    return int(ExitCode.OK)


def print_checklist(console: Console, items: list[Check]) -> None:
    """One line per check, grouped in the order they ran. A check quotes names from the config
    (a declared stream, an extractor): control characters in them are shown as U+FFFD, as the
    tables show a record's values (:func:`lorch_tui.bigtable.clean`), never sent to the terminal
    (an escape sequence in a stream name retitled or cleared it); a message's own line breaks stay."""
    group = None
    for c in items:
        if c.group != group:
            group = c.group
            console.print(f"{clean(group)}:", markup=False, highlight=False)
        console.print(f"  {MARKS[c.status]} ", end="")
        text = "\n".join(clean(line) for line in f"{c.subject}: {c.message}".split("\n"))
        console.print(text, markup=False, highlight=False)


def _vectors_check(enabled: bool) -> Check:
    """The embedding model's files (a warning only: the index works without vectors)."""
    if not enabled:
        return Check("index", "vectors", "skip", "stages.index.vectors is false")
    from engine.vectors.model import check_model

    ok, message = check_model()
    return Check("index", "vectors", "ok" if ok else "warn", message)
