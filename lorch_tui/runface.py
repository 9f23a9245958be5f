"""Running a plan headless with the right face, shared by ``lorchestra`` and ``lorch-tui --no-ui``.

Chooses rich progress on a terminal, plain timestamped lines otherwise (JSON lines with
``--json``), prints the summary (a table on a terminal, exactly one final line in plain
mode), prints the on_failure hook's warning if it did not work (never changing the exit
code), and maps the outcome to DESIGN.md's exit codes.

The first line of every headless run names the config in force and the workspace (on
stdout in plain mode, on stderr with a terminal or ``--json``; printed when the run starts,
so a busy workspace prints only its error), so a cron mail says which
pipeline ran; a run found by default on the bundled demo config without a terminal is
refused by ``lorchestra run``/``extract`` and ``lorch-tui --no-ui`` unless ``--demo`` asks for
it (cron without ``cd``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import nullcontext

from rich.console import Console

from engine.config.load import LoadedConfig
from engine.errors import ExitCode, UsageError, disk_full, from_os_error
from engine.events import Event, RunStarted, TaskFinished, Trigger
from engine.run.bus import Subscriber
from engine.run.plan import Plan
from engine.run.session import run_session
from engine.store.workspace import Workspace
from lorch_tui.failinfo import failure_tail
from lorch_tui.headless import PlainPrinter, RichProgressFace, silence_stdout, stderr_is_tty
from lorch_tui.summary import print_summary, summary_line


def config_line(loaded: LoadedConfig) -> str:
    """`config: PATH (how it was found) · workspace: PATH`."""
    return f"config: {loaded.path} ({loaded.origin}) · workspace: {loaded.workspace}"




def refuse_unasked_demo(loaded: LoadedConfig, demo: bool) -> None:
    """Without a terminal, the bundled demo runs only when ``--demo`` asks for it.

    DESIGN.md's lookup order ends at the demo, and with a terminal (a new user's first
    ``lorch-tui``) it runs; issue 17: cron without ``cd`` silently ran the demo with exit 0,
    so without a terminal a run of the demo found by default is refused (exit 2) and says
    how to pass ``--config``. ``--dry-run`` and the read-only commands are never refused."""
    if loaded.origin != "bundled demo" or demo or sys.stdin.isatty() or sys.stdout.isatty():
        return
    raise UsageError(
        f"no config given, and the only one found is the bundled demo ({loaded.path}); "
        "without a terminal (cron) that is almost always a mistake",
        hint="pass --config PATH (or set $LORCH_CONFIG, or `cd` to the folder holding "
             "config/pipeline.yaml); add --demo to run the demo on purpose")


def run_headless(loaded: LoadedConfig, plan: Plan, *, trigger: Trigger, as_json: bool = False,
                 skip_permissions: bool = False, wait_s: float = 0.0, command: str,
                 force: bool = False) -> int:
    """Run the plan, show progress, print the summary; return the exit code."""
    header_to = sys.stderr if as_json or stderr_is_tty() else sys.stdout

    def header(event: Event) -> None:
        """The config line, once the run really starts (a busy workspace prints only its error)."""
        if isinstance(event, RunStarted):
            try:
                print(config_line(loaded), file=header_to, flush=True)
            except BrokenPipeError:
                silence_stdout()

    err = Console(stderr=True)
    out = Console(highlight=False)
    face: Subscriber
    plain = False
    ws = Workspace(loaded.workspace)

    def tail(ev: TaskFinished) -> str:
        return failure_tail(ws, loaded.config.extractors, ev)

    if as_json:
        face = PlainPrinter(sys.stdout, as_json=True)
        ctx = nullcontext()
    elif stderr_is_tty():
        rich_face = RichProgressFace(err, tail)
        face, ctx = rich_face, rich_face  # type: ignore[assignment]
    else:
        face = PlainPrinter(sys.stdout, tail=tail)
        ctx = nullcontext()
        plain = True
    with ctx:
        session = asyncio.run(run_session(loaded, plan, trigger=trigger, subscribers=[header, face],
                                          skip_permissions=skip_permissions, wait_s=wait_s,
                                          command=command, force=force))
    if plain:
        line = summary_line(session.result, session.log_path, session.log_next)
        if line is not None:
            try:
                sys.stdout.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
                sys.stdout.flush()
            except BrokenPipeError:
                silence_stdout()
    elif not as_json:
        print_summary(out, session.result, session.log_path, session.log_next)
    if session.internal_error:
        print(f"{command.split()[0]}: internal error ({session.internal_error}) while running; every "
              "worker was stopped and the run recorded as failed; the traceback is in "
              f"{session.internal_error_log}: "
              "please report it.", file=sys.stderr)
    if session.hook_warning:
        print(f"{command.split()[0]}: warning: {session.hook_warning}", file=sys.stderr)
    if isinstance(face, PlainPrinter) and face.error is not None:
        problem = from_os_error(face.error, loaded.workspace)
        print(f"{command.split()[0]}: error: "
              f"{problem.render() if problem is not None else 'could not write the output'}", file=sys.stderr)
        return int(ExitCode.INTERRUPTED if session.interrupted else ExitCode.TASK_FAILED)
    if session.interrupted:
        return int(ExitCode.INTERRUPTED)
    if session.disk_full:  # one clear message, whichever writer ran out of space
        print(f"{command.split()[0]}: error: {disk_full(loaded.workspace).render()}", file=sys.stderr)
        return int(ExitCode.TASK_FAILED)
    return int(ExitCode.OK if session.result.ok else ExitCode.TASK_FAILED)
