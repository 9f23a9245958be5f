"""Running a plan headless with the right face, shared by ``lorchestra`` and ``lorch-tui --no-ui``.

Chooses rich progress on a terminal, plain timestamped lines otherwise (JSON lines with
``--json``), prints the summary (a table on a terminal, exactly one final line in plain
mode), prints the on_failure hook's warning if it did not work (never changing the exit
code), and maps the outcome to DESIGN.md's exit codes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import nullcontext

from rich.console import Console

from engine.bus import Subscriber
from engine.configload import LoadedConfig
from engine.errors import ExitCode
from engine.events import Trigger
from engine.plan import Plan
from engine.session import run_session
from lorch_tui.headless import PlainPrinter, RichProgressFace, stderr_is_tty
from lorch_tui.summary import print_summary, summary_line


def run_headless(loaded: LoadedConfig, plan: Plan, *, trigger: Trigger, as_json: bool = False,
                 skip_permissions: bool = False, wait_s: float = 0.0, command: str,
                 force: bool = False) -> int:
    """Run the plan, show progress, print the summary; return the exit code."""
    err = Console(stderr=True)
    out = Console(highlight=False)
    face: Subscriber
    plain = False
    if as_json:
        face = PlainPrinter(sys.stdout, as_json=True)
        ctx = nullcontext()
    elif stderr_is_tty():
        rich_face = RichProgressFace(err)
        face, ctx = rich_face, rich_face  # type: ignore[assignment]
    else:
        face = PlainPrinter(sys.stdout)
        ctx = nullcontext()
        plain = True
    with ctx:
        session = asyncio.run(run_session(loaded, plan, trigger=trigger, subscribers=[face],
                                          skip_permissions=skip_permissions, wait_s=wait_s,
                                          command=command, force=force))
    if plain:
        line = summary_line(session.result, session.log_path)
        if line is not None:
            sys.stdout.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
            sys.stdout.flush()
    elif not as_json:
        print_summary(out, session.result, session.log_path)
    if session.internal_error:
        print(f"{command.split()[0]}: internal error ({session.internal_error}) while running; every "
              "worker was stopped and the run recorded as failed; the traceback is in "
              f"{session.internal_error_log}: "
              "please report it.", file=sys.stderr)
    if session.hook_warning:
        print(f"{command.split()[0]}: warning: {session.hook_warning}", file=sys.stderr)
    if session.interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if session.result.ok else ExitCode.TASK_FAILED)
