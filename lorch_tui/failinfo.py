"""Where a task's details are: the tap's stderr file and the diagnostics file, as paths.

Shared by the dashboard's task detail view and the headless faces, so both name the same
files. Only paths and counts: the files themselves may hold PHI and are never read here.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import Extractor
from engine.events import TaskFinished
from engine.store.workspace import Workspace
from lorch_tui.errorinfo import MEANINGS


def stderr_path(ws: Workspace, ex: Extractor | None, ev: TaskFinished | None) -> Path | None:
    """The tap's stderr file of an extract task that wrote a vault run folder."""
    if ex is None or ev is None or ev.stage != "extract" or not ev.vault_run:
        return None
    return ws.vault / ex.domain / ex.source / ex.account / ev.vault_run / "tap.stderr.log"


def running_stderr(ws: Workspace, ex: Extractor | None) -> Path | None:
    """The tap's stderr file of the run an extract is writing now (its hidden
    ``.run_id=*.partial`` folder, newest): a hanging tap is when a person wants to read it."""
    if ex is None:
        return None
    account = ws.vault / ex.domain / ex.source / ex.account
    found = sorted(account.glob("dt=*/.run_id=*.partial/tap.stderr.log"), key=lambda p: p.parent.name)
    return found[-1] if found else None


def detail_file(ws: Workspace, ev: TaskFinished | None) -> Path | None:
    """The diagnostics (or rejects) file the task's final event names."""
    if ev is None or not ev.detail_path:
        return None
    p = Path(ev.detail_path)
    return p if p.is_absolute() else ws.root / p


STOPPED_BY_US = frozenset({"TAP_OUTPUT_INVALID", "TAP_MESSAGE_INVALID", "SCHEMA_MISSING", "BATCH_INVALID",
                           "BATCH_FILE_MISSING", "BATCH_NOT_LOCAL", "BATCH_UNSUPPORTED",
                           "WRITE_FAILED", "DISK_FULL", "TIMEOUT", "CANCELLED", "TAP_LEFTOVER_KILLED"})
"""Error codes after which the engine itself stops the tap (a signal is then its exit)."""


def exit_text(error_code: str | None, exit_code: int, stage: str = "extract") -> str:
    """``exit 3``, ``killed by signal 9``, or ``stopped by lorchestra (signal 15)`` when the
    engine stopped the tap (or a stage's worker) after the error (a reader took "killed" for
    something outside)."""
    if exit_code >= 0:
        return f"exit {exit_code}"
    if error_code == "CANCELLED":
        return f"stopped by lorchestra: the run was cancelled (signal {-exit_code})"
    if error_code == "TIMEOUT":
        limit = "the extractor's timeout_s" if stage == "extract" else f"stages.{stage}.timeout_s"
        return f"stopped by lorchestra at {limit} (signal {-exit_code})"
    if error_code in STOPPED_BY_US:
        return f"stopped by lorchestra after the error (signal {-exit_code})"
    return f"killed by signal {-exit_code}"


def program(ex: Extractor | None) -> str | None:
    """The program an extractor starts (``meltano`` for a Meltano plugin), None for a demo tap."""
    if ex is None or ex.kind == "demo":
        return None
    if ex.kind == "meltano":
        return "meltano"
    return ex.command[0] if ex.command else None


def not_found_hint(ex: Extractor | None) -> str | None:
    """What to do when the tap could not be started: its program named (from the config)."""
    prog = program(ex)
    if prog is None:
        return None
    return (f"the program {prog!r} could not be started: check that it is installed and executable, "
            "and on cron's PATH (give its full path), then `lorchestra validate`")


def failure_tail(ws: Workspace, extractors: list[Extractor], ev: TaskFinished) -> str:
    """`; exit 3; tap stderr (12 lines): PATH; diagnostics: PATH` for a task that did not succeed
    (the event's detail file; else what the error code means, and the worker's own stderr file,
    appended to by every run, when it holds anything: a cron mail said only `failed WRITE_FAILED`)."""
    if ev.status in ("success", "skipped"):
        return ""
    bits: list[str] = []
    if ev.exit_code is not None:
        bits.append(exit_text(ev.error_code, ev.exit_code, ev.stage))
    ex = next((e for e in extractors if e.name == ev.extractor), None)
    if ev.error_code == "TAP_NOT_FOUND" and (hint := not_found_hint(ex)):
        bits.append(hint)
    err = stderr_path(ws, ex, ev)
    tap_said = err is not None and bool(ev.stderr_lines)
    if tap_said:
        bits.append(f"tap stderr ({ev.stderr_lines} line{'s' if ev.stderr_lines != 1 else ''}): {err}")
    detail = detail_file(ws, ev)
    if detail is not None:
        bits.append(f"diagnostics: {detail}")
    elif not tap_said:  # no file of this task's own to point to: say what the code means
        if ev.error_code not in (None, "CANCELLED") and (meaning := MEANINGS.get(ev.error_code)):
            bits.append(meaning.partition(": ")[2] or meaning)
        if ev.error_code not in _NEVER_RAN and (log := _worker_log(ws, ev)) is not None:
            bits.append(f"diagnostics: {log}")
    return "".join(f"; {b}" for b in bits)


_NEVER_RAN = frozenset({"UPSTREAM_FAILED", "CANCELLED"})
"""Codes of tasks that may never have started this run: their worker file is older runs'."""


def _worker_log(ws: Workspace, ev: TaskFinished) -> Path | None:
    """The worker's own stderr file (a write error's errno and path), when the last attempt
    wrote anything there besides the ``--- attempt N of TASK`` line the engine starts it with.
    Only the file's tail is read, and only to see whether it is empty; it is never shown."""
    path = ws.diagnostics / ev.stage / f"{ev.extractor}.stderr.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 65536))
            tail = fh.read()
    except OSError:
        return None
    lines = tail.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith(b"--- attempt ")]
    body = lines[headers[-1] + 1:] if headers else lines
    return path if any(line.strip() for line in body) else None
