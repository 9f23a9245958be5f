"""``lorchestra``: the scriptable face of the engine (extract, run, list, --version).

Global options (``--config``, ``--workspace``, ``--verbose``) are accepted before and
after the subcommand. Errors print what happened, where and what to do next, and exit
with DESIGN.md's codes; a traceback appears only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from engine import __version__
from engine.config import PipelineConfig
from engine.configload import LoadedConfig, load
from engine.errors import ExitCode, LorchError, UsageError, from_os_error
from engine.plan import RUN_STAGES, Chain, build_plan
from engine.taps import describe, describe_loader
from lorch_tui import (
    cleancmd,
    clientscmd,
    configcmd,
    driftcmd,
    querycmd,
    statuscmd,
    validatecmd,
    verifycmd,
)
from lorch_tui.argtypes import MAX_WAIT_S, wait_seconds
from lorch_tui.runface import DEMO_HELP, refuse_unasked_demo, run_headless
from lorch_tui.tables import add_name_column, add_other_column, fit_keys, is_name

S = argparse.SUPPRESS


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--config", metavar="PATH", default=S,
                   help="pipeline config (else $LORCH_CONFIG, ./config/pipeline.yaml, the bundled demo)")
    g.add_argument("--workspace", metavar="PATH", default=S,
                   help="workspace folder (else $LORCH_WORKSPACE, else the config's workspace)")
    g.add_argument("-v", "--verbose", action="store_true", default=S,
                   help="show tracebacks of internal errors")
    return p


def run_options(p: argparse.ArgumentParser) -> None:
    """Options of commands that run tasks."""
    p.add_argument("--skip-permissions", action="store_true",
                   help="run even if workspace paths are group- or world-accessible")
    p.add_argument("--json", action="store_true", help="print events as JSON lines instead of progress")
    p.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                   help=f"wait up to SECONDS (0-{MAX_WAIT_S}) for the workspace lock instead of exiting 3")



def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="lorchestra", parents=[common],
        description="Local-first orchestrator of the PHI pipeline: extract -> canonize -> index -> project.",
        epilog="exit codes: 0 ok, 1 a task failed, 2 usage/config error, 3 workspace busy, "
               "4 permission check failed, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"lorchestra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ex = sub.add_parser("extract", parents=[common], help="run one extractor into the vault",
                        description="Run one extractor (tap) and write a vault run; LATEST moves on success.")
    ex.add_argument("name", metavar="NAME", help="the extractor name, or its account when only one "
                                                 "extractor has it (see `lorchestra list extractors`)")
    ex.add_argument("--target", metavar="LOADER",
                    help="pipe the tap into this loader (a Singer target from `loaders:`) instead of "
                         "the vault; the vault and LATEST are not touched")
    ex.add_argument("--demo", action="store_true", help=DEMO_HELP)
    run_options(ex)
    ex.set_defaults(func=cmd_extract)

    run = sub.add_parser("run", parents=[common], help="run the pipeline (or some stages / accounts)",
                         description="Run per-account chains of the pipeline's stages.")
    run.add_argument("--stage", action="append", choices=["extract", "canonize", "index", "project"],
                     help=f"run only this stage (repeatable; available now: {', '.join(RUN_STAGES)}; "
                          "project needs a `clients` section)")
    run.add_argument("--account", action="append", metavar="NAME",
                     help="only extractors whose name or account matches (glob, repeatable)")
    run.add_argument("--job", metavar="NAME", help="only the extractors of this job")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit without writing")
    run.add_argument("--force", action="store_true",
                     help="rebuild canonical output, index rows and client charts even when their "
                          "inputs show nothing changed")
    run.add_argument("--demo", action="store_true", help=DEMO_HELP)
    run_options(run)
    run.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", parents=[common],
                        help="list extractors, jobs, loaders, transforms, mappings or an extractor's streams",
                        description="List what the config and the transform registry define, or with "
                                    "`list streams EXTRACTOR` the streams of that account's LATEST run "
                                    "(undeclared stream and field names as placeholders; --reveal shows them).")
    ls.add_argument("what", choices=["extractors", "jobs", "loaders", "transforms", "mappings", "streams"],
                    help="what to list")
    ls.add_argument("name", nargs="?", metavar="EXTRACTOR", help="for `streams`: the extractor")
    ls.add_argument("--reveal", action="store_true",
                    help="for `streams`: print real stream and field names, which may be PHI (this terminal only)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    tr = sub.add_parser("transform", parents=[common], help="work with JSONata transforms",
                        description="Commands for the transform registry.")
    trs = tr.add_subparsers(dest="transform_command", metavar="ACTION", required=True)
    tt = trs.add_parser("test", parents=[common], help="run transforms' golden samples",
                        description="Run each transform's golden samples and compare with the expected output.")
    tt.add_argument("id", nargs="?", metavar="ID", help="one transform id (default: all)")
    tt.set_defaults(func=cmd_transform_test)
    from lorch_tui import transformcmd  # run, new

    transformcmd.register(trs, common)
    statuscmd.register(sub, common)
    validatecmd.register(sub, common)
    cleancmd.register(sub, common)
    configcmd.register(sub, common)
    querycmd.register(sub, common)
    verifycmd.register(sub, common)
    clientscmd.register(sub, common)
    driftcmd.register(sub, common)
    return parser


def _load(ns: argparse.Namespace) -> LoadedConfig:
    return load(getattr(ns, "config", None), getattr(ns, "workspace", None))


def cmd_extract(ns: argparse.Namespace) -> int:
    """`lorchestra extract NAME`."""
    loaded = _load(ns)
    if loaded.config.extractor(ns.name) is None:
        by_account = [e.name for e in loaded.config.extractors if e.account == ns.name]
        if len(by_account) == 1:  # `extract ACCOUNT` works like `run --account ACCOUNT`
            ns.name = by_account[0]
        elif by_account:
            raise UsageError(f"{ns.name!r} is the account of several extractors in {loaded.path}: "
                             f"{', '.join(by_account)}", hint="name the extractor you mean")
        else:
            names = ", ".join(e.name for e in loaded.config.extractors)
            raise UsageError(f"no extractor named {ns.name!r} in {loaded.path}, and no account of that name",
                             hint=f"extractors: {names}")
    target = None
    if ns.target is not None:
        target = loaded.config.loader(ns.target)
        if target is None:
            names = ", ".join(lo.name for lo in loaded.config.loaders) or "none"
            raise UsageError(f"no loader named {ns.target!r} in {loaded.path}",
                             hint=f"loaders: {names} (define them under `loaders:`; see docs/extractors.md)")
    refuse_unasked_demo(loaded, ns.demo)
    plan = build_plan(loaded.config, ["extract"], [ns.name])
    chains = [Chain(c.extractor, c.stages, target) for c in plan.chains if c.extractor.name == ns.name]
    plan = type(plan)(chains, plan.stages)
    suffix = f" --target {ns.target}" if target is not None else ""
    return run_headless(loaded, plan, trigger="cli", as_json=ns.json, skip_permissions=ns.skip_permissions,
                        wait_s=ns.wait, command=f"lorchestra extract {ns.name}{suffix}")


def cmd_run(ns: argparse.Namespace) -> int:
    """`lorchestra run`."""
    loaded = _load(ns)
    plan = build_plan(loaded.config, ns.stage, ns.account, ns.job)
    if ns.dry_run:
        print_plan(loaded, plan)
        return 0
    refuse_unasked_demo(loaded, ns.demo)
    return run_headless(loaded, plan, trigger="cli", as_json=ns.json, skip_permissions=ns.skip_permissions,
                        wait_s=ns.wait, command="lorchestra run", force=ns.force)


def print_plan(loaded: LoadedConfig, plan: object) -> None:
    """Print what a run would do (nothing is written)."""
    from engine.plan import Plan

    assert isinstance(plan, Plan)
    console = Console(highlight=False)
    console.print(f"config: {loaded.path} ({loaded.origin})\nworkspace: {loaded.workspace}")
    console.print(f"plan: {plan.task_count} task(s), stages {', '.join(plan.stages)}")
    for chain in plan.chains:
        console.print(f"  {chain.extractor.name}: {' -> '.join(chain.stages)}")
    if plan.project:
        console.print("  then project (clients): once, after every index task has ended")


def cmd_transform_test(ns: argparse.Namespace) -> int:
    """`lorchestra transform test [ID]` (the registry is imported only when needed)."""
    from lorch_tui.canoncmd import cmd_transform_test as run

    return run(ns)


def cmd_list(ns: argparse.Namespace) -> int:
    """`lorchestra list extractors|jobs|loaders|transforms|mappings|streams EXTRACTOR`."""
    loaded = _load(ns)
    if ns.what == "streams":
        from lorch_tui.streamscmd import list_streams

        return list_streams(loaded, ns.name, ns.reveal, ns.json)
    if ns.name is not None or ns.reveal:
        raise UsageError(f"`list {ns.what}` takes no EXTRACTOR and no --reveal (only `list streams` does)")
    cfg = loaded.config
    console = Console(highlight=False)
    rows: list[dict[str, object]]
    if ns.what == "extractors":
        rows = [{"name": e.name, "kind": e.kind, "domain": e.domain, "source": e.source,
                 "account": e.account, "command": describe(e)} for e in cfg.extractors]
    elif ns.what == "jobs":
        rows = [{"job": j, "extractors": len(m), "kinds": _kinds(cfg, m), "members": ", ".join(m),
                 "default": "yes" if cfg.stages.extract.job == j else ""} for j, m in cfg.jobs.items()]
    elif ns.what == "loaders":
        rows = [{"name": lo.name, "command": describe_loader(lo)} for lo in cfg.loaders]
    elif ns.what == "transforms":
        from lorch_tui.canoncmd import transform_rows

        rows = transform_rows(cfg)
    else:
        from lorch_tui.canoncmd import mapping_rows

        rows = mapping_rows(cfg)
    if ns.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    table = Table()
    kept, dropped = fit_keys(rows, console.width) if rows else (["(none)"], [])
    for key in kept:
        if is_name(key):  # names stay whole; the other columns wrap, or are dropped, first
            add_name_column(table, key, [str(r[key]) for r in rows])
        else:
            add_other_column(table, key, [str(r[key]) for r in rows])
    for row in rows:
        table.add_row(*(str(row[k]) for k in kept))
    console.print(table)
    if dropped:
        console.print(f"({', '.join(dropped)} not shown at this width: widen the terminal or use --json)",
                      style="dim", markup=False)
    return 0


def _kinds(cfg: PipelineConfig, members: list[str]) -> str:
    """`demo x3, singer x1`: the kinds of a job's extractors."""
    kinds = Counter(ex.kind for name in members if (ex := cfg.extractor(name)) is not None)
    return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))


def guarded(func: Callable[[argparse.Namespace], int], ns: argparse.Namespace, prog: str) -> int:
    """Run a command; turn errors into messages and exit codes."""
    verbose = bool(getattr(ns, "verbose", False))
    try:
        return func(ns)
    except LorchError as exc:
        if verbose:
            traceback.print_exc()
        print(f"{prog}: error: {exc.render()}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # the reader of stdout went away (`| head`): not an error to report
        from lorch_tui.headless import silence_stdout

        silence_stdout()
        return int(ExitCode.OK)
    except Exception as exc:  # last resort: never a traceback unless --verbose
        if verbose:
            traceback.print_exc()
        mapped = from_os_error(exc, _workspace_of(ns))
        if mapped is not None:  # a full disk, a file in the way, a read-only or broken disk
            print(f"{prog}: error: {mapped.render()}", file=sys.stderr)
            return int(mapped.exit_code)
        print(f"{prog}: internal error ({type(exc).__name__}); rerun with --verbose for details",
              file=sys.stderr)
        return int(ExitCode.TASK_FAILED)


def _workspace_of(ns: argparse.Namespace) -> Path | None:
    """The workspace the command used, for an error message (None when it cannot be told)."""
    try:
        return load(getattr(ns, "config", None), getattr(ns, "workspace", None)).workspace
    except Exception:  # noqa: BLE001 - only for a message; the real error is being reported
        return None


def wide_when_piped() -> None:
    """Rich wraps at 80 columns without a terminal; cron mail and grep want whole lines."""
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", "200")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lorchestra`."""
    wide_when_piped()
    ns = build_parser().parse_args(argv)
    return guarded(ns.func, ns, "lorchestra")


if __name__ == "__main__":
    sys.exit(main())
