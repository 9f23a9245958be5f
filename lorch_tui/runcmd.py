"""``lorchestra extract`` and ``lorchestra run`` (and ``--dry-run``'s plan, shared with ``lorch-tui``).

Imported only when one of these commands runs (see :mod:`lorch_tui.cliparse`); a dry run
prints the plan without importing the runner or asyncio (:mod:`lorch_tui.runface` is
imported only to run).
"""

from __future__ import annotations

import argparse

from engine.config.load import LoadedConfig, load
from engine.errors import UsageError
from engine.run.plan import Chain, Plan, build_plan


def _load(ns: argparse.Namespace) -> LoadedConfig:
    return load(getattr(ns, "config", None), getattr(ns, "workspace", None))


def cmd_extract(ns: argparse.Namespace) -> int:
    """`lorchestra extract NAME`."""
    from lorch_tui.runface import refuse_unasked_demo, run_headless

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
    from lorch_tui.runface import refuse_unasked_demo, run_headless

    refuse_unasked_demo(loaded, ns.demo)
    return run_headless(loaded, plan, trigger="cli", as_json=ns.json, skip_permissions=ns.skip_permissions,
                        wait_s=ns.wait, command="lorchestra run", force=ns.force)


def print_plan(loaded: LoadedConfig, plan: Plan) -> None:
    """Print what a run would do (nothing is written)."""
    from rich.console import Console

    console = Console(highlight=False)
    console.print(f"config: {loaded.path} ({loaded.origin})\nworkspace: {loaded.workspace}")
    console.print(f"plan: {plan.task_count} task(s), stages {', '.join(plan.stages)}")
    for chain in plan.chains:
        console.print(f"  {chain.extractor.name}: {' -> '.join(chain.stages)}")
    if plan.project:
        console.print("  then project (clients): once, after every index task has ended")
