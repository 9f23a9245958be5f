"""``lorchestra verify [--all] [--deep] [--json]``: re-hash the vault and report each problem.

By default the parts of every account's LATEST run are re-hashed against their manifests
(what canonize will read next); ``--all`` checks every completed run, failed and cancelled
ones included (they are the audit trail). Canonical files are checked against their meta.
One line per problem (a stable code and a path inside the workspace, never file content),
then a summary. Exit 0 when everything verifies, 1 when anything does not, 2 when there is
no workspace to verify. It only reads, so it needs no lock and runs beside a pipeline run.
"""

from __future__ import annotations

import argparse
import sys

from engine.config.load import load
from engine.errors import ExitCode, UsageError
from engine.ops.verify import Report, dumps, verify
from engine.store.workspace import Workspace, check_not_a_file


def cmd_verify(ns: argparse.Namespace) -> int:
    """Run the verification and print the result."""
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    check_not_a_file(loaded.workspace)
    ws = Workspace(loaded.workspace)
    if not ws.root.is_dir():
        raise UsageError(f"there is no workspace at {ws.root} to verify",
                         hint="run `lorchestra run` first, or pass --workspace / --config")
    report = verify(ws, all_runs=ns.all, deep=ns.deep)
    if ns.json:
        sys.stdout.write(dumps(report).decode() + "\n")
    else:
        print_report(report)
    return int(ExitCode.TASK_FAILED if report.problems else ExitCode.OK)


def print_report(report: Report) -> None:
    """Plain lines: one per problem, then the summary."""
    mode = "every run" if report.all_runs else "LATEST runs"
    out = sys.stdout
    out.write(f"verify {report.workspace} ({mode}{', deep' if report.deep else ''})\n")
    for p in report.problems:
        out.write(f"  FAIL {p.code} {p.path}: {p.message}\n")
    listed = sum(1 for p in report.problems if p.code == "OBJECT_MISSING")
    if report.objects_missing > listed:
        out.write(f"  FAIL OBJECT_MISSING ... and {report.objects_missing - listed:,} more object file(s) "
                  "(`lorchestra run --stage index --force` writes them again)\n")
    corrupt = sum(1 for p in report.problems if p.code == "OBJECT_CORRUPT")
    if report.objects_corrupt > corrupt:
        out.write(f"  FAIL OBJECT_CORRUPT ... and {report.objects_corrupt - corrupt:,} more object file(s) "
                  "(`lorchestra run --stage index --force` writes them again)\n")
    if report.stale_names:
        out.write(f"  note: {len(report.stale_names)} account(s) whose plain canonical names still hold another "
                  "generation's files (a canonize stopped while re-linking them; the pipeline reads the "
                  "current generation, which is whole, but a reader of the plain paths sees a mismatched "
                  "pair until the next canonize re-links them: `lorchestra run --stage canonize`): "
                  + ", ".join(report.stale_names[:5]) + "\n")
    if report.partial_runs:
        out.write(f"  note: {len(report.partial_runs)} unfinished run folder(s) left by killed workers "
                  "(hidden .run_id=*.partial: never read by any stage; they hold PHI: "
                  "`lorchestra clean --partials` deletes them)\n")
    status = f"{len(report.problems)} problem(s)" if report.problems else "all verified"
    objects = f", {report.objects:,} index object(s)" if report.deep else ""
    out.write(f"{report.accounts} account(s), {report.runs} run(s), {report.parts} part(s), "
              f"{report.bytes} bytes, {report.canonical} canonical file(s){objects}: {status}\n")
    out.flush()
