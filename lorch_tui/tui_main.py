"""``lorch-tui``: the dashboard, and ``--no-ui`` for cron.

``lorch-tui`` opens the Textual dashboard; ``lorch-tui --no-ui`` runs the plan headless
with progress for cron and never imports Textual.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine import __version__
from engine.errors import UsageError
from engine.store.process import no_core_dumps
from lorch_tui.argtypes import DEMO_HELP
from lorch_tui.cli import guarded, wide_when_piped
from lorch_tui.cliparse import EXIT_CODES, common_options, run_options

if TYPE_CHECKING:
    from engine.config.load import LoadedConfig


def build_parser() -> argparse.ArgumentParser:
    """Arguments of lorch-tui."""
    p = argparse.ArgumentParser(
        prog="lorch-tui", parents=[common_options()],
        description="The lorchestra dashboard. With --no-ui, run the pipeline headless (for cron).",
        epilog=EXIT_CODES,
    )
    p.add_argument("--version", action="version", version=f"lorch-tui {__version__}")
    p.add_argument("--no-ui", action="store_true", help="run headless: progress on a terminal, lines otherwise")
    p.add_argument("--stage", action="append", choices=["extract", "canonize", "index", "project"],
                   help="run only this stage (repeatable)")
    p.add_argument("--account", action="append", metavar="NAME", help="only matching extractors (glob)")
    p.add_argument("--job", metavar="NAME", help="only the extractors of this job")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit without writing")
    p.add_argument("--demo", action="store_true", help=f"with --no-ui: {DEMO_HELP}")
    run_options(p)
    return p


def _run(ns: argparse.Namespace) -> int:
    from engine.config.load import load
    from engine.run.plan import build_plan

    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    if ns.dry_run:
        from lorch_tui.runcmd import print_plan

        print_plan(loaded, build_plan(loaded.config, ns.stage, ns.account, ns.job))
        return 0
    if not ns.no_ui:
        given = [flag for flag, value in (("--stage", ns.stage), ("--account", ns.account),
                                          ("--job", ns.job), ("--json", ns.json), ("--demo", ns.demo))
                 if value]
        if given:
            raise UsageError(f"{', '.join(given)} only appl{'y' if len(given) > 1 else 'ies'} with --no-ui (a headless run)",
                             hint="add --no-ui to run headless, or open the dashboard without them "
                                  "and pick the account there (r reruns it)")
        return _dashboard(loaded, ns)
    from lorch_tui.runface import refuse_unasked_demo, run_headless

    refuse_unasked_demo(loaded, ns.demo)
    plan = build_plan(loaded.config, ns.stage, ns.account, ns.job)
    return run_headless(loaded, plan, trigger="cron", as_json=ns.json,
                        skip_permissions=ns.skip_permissions, wait_s=ns.wait, command="lorch-tui --no-ui")


def _dashboard(loaded: LoadedConfig, ns: argparse.Namespace) -> int:
    """Open the Textual dashboard (the only place Textual is imported)."""
    from engine.store.workspace import check_not_a_file

    check_not_a_file(loaded.workspace)  # as every command: exit 2 naming it, not a crash in a scan
    if not sys.stdout.isatty():
        raise UsageError("the dashboard needs a terminal",
                         hint="use `lorch-tui --no-ui` for cron and pipes")
    from engine.store.fsutil import secure_umask
    from lorch_tui.app import LorchApp

    secure_umask()  # the workspace itself is created and checked by the app, after its first paint
    app = LorchApp(loaded, skip_permissions=ns.skip_permissions, verbose=bool(getattr(ns, "verbose", False)))
    result = app.run()
    return app.return_code or int(result or 0)  # 1 after a crash


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lorch-tui`."""
    wide_when_piped()
    no_core_dumps()  # a crash must not leave the process's memory (PHI) in the current folder
    ns = build_parser().parse_args(argv)
    return guarded(_run, ns, "lorch-tui")


if __name__ == "__main__":
    sys.exit(main())
