"""Running a plan headless with the right face, shared by ``lorchestra`` and ``lorch-tui --no-ui``.

Chooses rich progress on a terminal, plain timestamped lines otherwise (JSON lines with
``--json``), prints the summary, and maps the outcome to DESIGN.md's exit codes.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext

from rich.console import Console

from engine.bus import Subscriber
from engine.configload import LoadedConfig
from engine.errors import ExitCode
from engine.events import Trigger
from engine.plan import Plan
from engine.session import run_session
from lorch_tui.headless import PlainPrinter, RichProgressFace, stderr_is_tty
from lorch_tui.summary import print_summary


def run_headless(loaded: LoadedConfig, plan: Plan, *, trigger: Trigger, as_json: bool = False,
                 skip_permissions: bool = False, wait_s: float = 0.0, command: str,
                 force: bool = False) -> int:
    """Run the plan, show progress, print the summary; return the exit code."""
    err = Console(stderr=True)
    out = Console(highlight=False)
    face: Subscriber
    if as_json:
        face = PlainPrinter(sys.stdout, as_json=True)
        ctx = nullcontext()
    elif stderr_is_tty():
        rich_face = RichProgressFace(err)
        face, ctx = rich_face, rich_face  # type: ignore[assignment]
    else:
        face = PlainPrinter(sys.stdout)
        ctx = nullcontext()
    with ctx:
        session = asyncio.run(run_session(loaded, plan, trigger=trigger, subscribers=[face],
                                          skip_permissions=skip_permissions, wait_s=wait_s,
                                          command=command, force=force))
    if not as_json:
        print_summary(out, session.result, session.log_path)
    if session.interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if session.result.ok else ExitCode.TASK_FAILED)
