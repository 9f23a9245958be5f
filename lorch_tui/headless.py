"""The headless progress face: rich progress on a terminal, plain lines otherwise.

Used by ``lorchestra run``/``extract`` and ``lorch-tui --no-ui`` (cron). It never imports
Textual. Lines carry only what events carry: identifiers, counts, durations, codes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from engine.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskProgress,
    TaskRetry,
    TaskStarted,
    TaskWarning,
)
from lorch_tui.errorinfo import MEANINGS

Tail = Callable[[TaskFinished], str]
"""Extra words for a task that did not succeed: exit code and the paths of its detail files."""


def plural(n: int, word: str) -> str:
    """`1 part`, `2 parts`, `1,234 records`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def describe(event: Event, tail: Tail | None = None) -> str | None:
    """A one-line, PHI-free description of an event for plain output (None to skip)."""
    if isinstance(event, RunStarted):
        return f"run {event.run_id} started: {event.tasks} task(s), stages {', '.join(event.stages)}"
    if isinstance(event, TaskStarted):
        return f"{event.task_id} started (attempt {event.attempt})"
    if isinstance(event, TaskWarning):
        where = f" at line {event.line}" if event.line else ""
        said = MEANINGS.get(event.code, "").split(": ", 1)[-1]  # "warning, project: ..." -> what it means
        said = said.replace(" (count)", "").replace("(count; ", "(")  # the count is said already
        details = f"; details: {event.detail_path}" if event.detail_path else ""
        return f"{event.task_id} warning {event.code}{where} (count {event.count})" + (f": {said}" if said else "") + details
    if isinstance(event, TaskRetry):
        return f"{event.task_id} attempt {event.attempt} failed ({event.error_code}); retrying in {event.delay_s:g}s"
    if isinstance(event, TaskFinished):
        tail_of = tail
        tail = f" {event.error_code}" if event.error_code else ""
        if event.line:
            tail += f" at line {event.line}"
        where = tail_of(event) if tail_of is not None else ""
        if event.target:
            return (f"{event.task_id} {event.status}{tail}: {plural(event.records, 'record')} piped to loader "
                    f"{event.target} in {event.duration_s:.1f}s (vault and LATEST not touched){where}")
        if event.stage != "extract":
            return (f"{event.task_id} {event.status}{tail}: {plural(event.records, 'record')}"
                    f"{rejects_note(event)} in {event.duration_s:.1f}s{where}")
        return (f"{event.task_id} {event.status}{tail}: {plural(event.records, 'record')}, "
                f"{plural(event.parts, 'part')}, {plural(event.bytes, 'byte')} in {event.duration_s:.1f}s{where}")
    if isinstance(event, RunFinished):
        return (f"run {event.run_id} {event.status}: {event.succeeded}/{event.tasks} ok, "
                f"{event.failed} failed, {event.cancelled} cancelled, {event.records} records "
                f"in {event.duration_s:.1f}s")
    return None


def rejects_note(event: TaskFinished) -> str:
    """``, 3 rejected (...)`` when a task let records through with rejects (within the
    mapping's ``max_rejects``): they are missing from the index and charts, so every face says
    so, not only the log."""
    if not event.rejects:
        return ""
    if event.stage == "canonize":  # the task names its rejects file; older logs did not
        where = event.detail_path or f"canonical/*/{event.account}.rejects.jsonl"
        return f", {event.rejects:,} rejected (not indexed, in no chart; the reasons: {where})"
    if event.stage == "project":
        return f", {event.rejects:,} questionnaire response(s) not scored (canonical/measures/scored.rejects.jsonl)"
    return f", {event.rejects:,} rejected"


class PlainPrinter:
    """Timestamped lines (or JSON lines) for cron and pipes."""

    def __init__(self, out: IO[str], as_json: bool = False, tail: Tail | None = None) -> None:
        self.out = out
        self.as_json = as_json
        self.tail = tail
        self.closed = False
        self.error: OSError | None = None
        """Why the output could not be written (a full device under a redirect): the command
        then exits 1 saying so, as it does without --json, never 0 with lines missing."""

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        try:
            if self.as_json:
                self.out.write(orjson.dumps(event.model_dump(mode="json", exclude_none=True)).decode() + "\n")
            else:
                if isinstance(event, RunFinished):
                    return  # the face ends with the one summary line (it adds the log path)
                text = describe(event, self.tail)
                if text is None:
                    return
                self.out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")
            self.out.flush()
        except BrokenPipeError:  # `| head` stopped reading: the run goes on, quietly
            self.closed = True
            silence_stdout()
        except OSError as exc:  # ENOSPC, EIO: the run goes on; the command's exit says so
            self.closed, self.error = True, exc


def silence_stdout() -> None:
    """Point stdout at /dev/null once its reader is gone, so exiting prints no BrokenPipeError."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class RichProgressFace:
    """One progress bar per running task and an overall bar, on a terminal."""

    def __init__(self, console: Console, tail: Tail | None = None) -> None:
        self.console = console
        self.tail = tail
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[records]:>9,} rec"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.tasks: dict[str, TaskID] = {}
        self.overall: TaskID | None = None
        self.extracted: dict[str, int] = {}  # records of each extract task (live, then final)

    def __enter__(self) -> RichProgressFace:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        p = self.progress
        if isinstance(event, RunStarted):
            self.overall = p.add_task("all tasks", total=event.tasks, records=0)
        elif isinstance(event, TaskStarted):
            if event.task_id not in self.tasks:
                self.tasks[event.task_id] = p.add_task(event.task_id, total=None, records=0)
        elif isinstance(event, TaskProgress) and event.task_id in self.tasks:
            label = f"{event.task_id} · {event.phase}" if event.phase else event.task_id
            p.update(self.tasks[event.task_id], records=event.records, total=event.total,
                     completed=event.records if event.total else 0, description=label)
            self._count(event.task_id, event.stage, event.records)
        elif isinstance(event, TaskFinished):
            self._count(event.task_id, event.stage, event.records)
            tid = self.tasks.pop(event.task_id, None)
            if tid is not None:
                p.remove_task(tid)
            line = describe(event, self.tail)
            style = "green" if event.status in ("success", "skipped") else "red"
            self.console.print(line, style=style, highlight=False, markup=False)
            if self.overall is not None:
                p.advance(self.overall)
        elif isinstance(event, TaskWarning | TaskRetry):
            self.console.print(f"[yellow]{describe(event)}[/]", highlight=False)

    def _count(self, task_id: str, stage: str, records: int) -> None:
        """The overall row's records: every extract task's, as they come (it stayed at 0)."""
        if stage != "extract":
            return
        self.extracted[task_id] = records
        if self.overall is not None:
            self.progress.update(self.overall, records=sum(self.extracted.values()))


def stderr_is_tty() -> bool:
    """Whether progress may use a live display."""
    return sys.stderr.isatty()
