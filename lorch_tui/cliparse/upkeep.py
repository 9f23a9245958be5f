"""Parsers of the commands that look after a workspace: status, validate, clean, verify, drift.

Only declarations: each command's function is a :class:`~lorch_tui.cliparse.base.Lazy` reference,
so building these parsers imports no command module (see the package docstring).
"""

from __future__ import annotations

import argparse
from typing import Any

from lorch_tui.argtypes import count, wait_seconds
from lorch_tui.cliparse.base import Lazy

CLEAN_STAGES = ("project", "canonize", "index", "extract")
"""What ``clean --stage`` accepts (``engine.ops.cleanup.CLEAN_STAGES``; a test keeps them equal)."""


def status(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra status``."""
    p = sub.add_parser("status", parents=[common], help="last run, stage timings and account freshness",
                       description="Show the last run (status, duration, each stage's duration and "
                                   "records, log path) and each account's freshness: LATEST age, "
                                   "whether canonical and index are built from the current LATEST.")
    p.add_argument("--history", type=count, default=0, metavar="N", help="also list the last N runs")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.set_defaults(func=Lazy("lorch_tui.statuscmd:cmd_status"))


def validate(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra validate``."""
    p = sub.add_parser("validate", parents=[common], help="check the config, taps, transforms and workspace",
                       description="Check the config (syntax, with line numbers), each extractor's tap or "
                                   "Meltano project, every mapping's transform, every schema, unmapped "
                                   "streams, writable output folders and workspace permissions.",
                       epilog="exit codes: 0 fine (warnings allowed), 2 configuration problem, "
                              "4 permission problem")
    p.add_argument("--skip-permissions", action="store_true", help="do not check workspace permissions")
    p.add_argument("--quick", action="store_true",
                   help="only the config, the taps, the output folders and the permission check a run "
                        "start makes (no transform compile, schema, stream or model check, no walk of "
                        "every object file): fast on a large workspace")
    p.add_argument("--fix-permissions", action="store_true",
                   help="chmod workspace folders to 0700 and files to 0600, then check")
    p.set_defaults(func=Lazy("lorch_tui.validatecmd:cmd_validate"))


def clean(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra clean``."""
    p = sub.add_parser(
        "clean", parents=[common], help="delete a stage's outputs (asks first)",
        description="Delete the outputs of stages: project (clients/), canonize (canonical/), "
                    "index (vector-store/) or "
                    "extract (the vault: every run and LATEST, the audit trail). Shows exactly what "
                    "it will delete and asks for confirmation.",
        epilog="without a terminal, nothing is deleted unless --yes is given; the vault is deleted "
               "only after typing 'vault', or with both --yes and --stage extract (old runs of "
               "--older-than: after typing 'vault', or with --yes). exit codes: "
               "0 done or nothing to do, 2 refused or usage error, 3 workspace busy")
    p.add_argument("--stage", action="append", choices=list(CLEAN_STAGES),
                   help="clean this stage's outputs (repeatable)")
    p.add_argument("--all", action="store_true",
                   help="clean project, canonize and index, and the vault after its own confirmation")
    p.add_argument("--partials", action="store_true",
                   help="delete the hidden unfinished vault runs (.run_id=*.partial) killed workers left")
    p.add_argument("--older-than", type=positive_days, metavar="DAYS",
                   help="delete vault runs that started more than DAYS days ago, except LATEST's run and "
                        "its incremental chain (an account whose LATEST or chain is unreadable is left whole)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    p.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for the workspace lock instead of exiting 3")
    p.set_defaults(func=Lazy("lorch_tui.cleancmd:cmd_clean"))


def positive_days(text: str) -> int:
    """``--older-than``'s value: whole days, at least 1."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= 36_500:
        raise argparse.ArgumentTypeError(f"expected 1 to 36500 days, got {days}")
    return days


def verify(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra verify``."""
    p = sub.add_parser("verify", parents=[common], help="re-hash vault parts against their manifests",
                       description="Re-hash the parts of each account's LATEST run (every run with "
                                   "--all) against the sha256 and sizes in its manifest, check that "
                                   "LATEST names a complete successful run and that canonical files "
                                   "match their meta, and report each problem.",
                       epilog="exit codes: 0 everything verifies, 1 problems found, 2 no workspace")
    p.add_argument("--all", action="store_true", help="check every run, not only the LATEST ones")
    p.add_argument("--deep", action="store_true",
                   help="also decompress each part and check its size and record count, and hash every "
                        "index object against its name")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=Lazy("lorch_tui.verifycmd:cmd_verify"))


def drift(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra drift``."""
    p = sub.add_parser(
        "drift", parents=[common], help="fields that appeared or vanished in the sources",
        description="Compare each account's LATEST run with its previous successful run and with "
                    "the fields its mapped transforms read: fields that appeared, fields that "
                    "vanished, fields a transform reads that no record has. Field and stream names "
                    "the config does not declare are shown as placeholders unless --reveal.",
        epilog="exit codes: 0 (whatever the drift; see --json), 2 unknown extractor or bad config")
    p.add_argument("extractor", nargs="?", metavar="EXTRACTOR", help="one extractor (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--reveal", action="store_true",
                   help="print every field and stream name (may be PHI: printed, never logged)")
    p.set_defaults(func=Lazy("lorch_tui.driftcmd:cmd_drift"))
