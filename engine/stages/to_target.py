"""``lorchestra extract NAME --target LOADER``: pipe a tap into a Singer target, not the vault.

The worker sits between the two processes: it reads the tap's stdout line by line, checks
each line with the vault run's own code (:class:`engine.stages.singer_stream.TapLines`:
``TAP_OUTPUT_INVALID`` or ``TAP_MESSAGE_INVALID`` with the line number and ``bad-line.txt``,
``SCHEMA_MISSING``, a lone surrogate escape repaired with a ``TAP_TEXT_REPAIRED`` warning,
``UNKNOWN_MESSAGE`` warnings, ``TAP_OUTPUT_EMPTY`` for a tap that said nothing), counts
RECORD messages for progress, and writes every line to the target's stdin as the tap wrote
it (a repaired line as repaired); backpressure from a slow target reaches the tap. A BATCH
message is passed on as it is: its files are the target's to read. The
vault and LATEST are never touched and no STATE is passed (``incremental`` applies to
vault runs only: the target keeps its own state). The tap's stderr and the target's
stdout (its STATE messages) and stderr may hold PHI, so they stay in the workspace under
``diagnostics/targets/{loader}/{extractor}/dt=.../run_id=.../`` with a PHI-free
``summary.json``; the final event names that folder.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.config import Loader
from engine.events import ErrorCode, TaskFinished, write_error_code
from engine.stages.progress import Emit, Progress, count_lines
from engine.stages.singer_stream import (
    BAD_LINE,
    StreamError,
    TapLines,
    UnknownWarner,
    keep_bad_line,
    quiet_tap,
    warn_repaired,
)
from engine.stages.spec import TaskSpec
from engine.stages.tapinputs import InputProblem, prepare_inputs
from engine.stages.tapproc import Supervisor, Watchdog, reap
from engine.stages.taps import loader_command, tap_command
from engine.store.fsutil import atomic_write_json, ensure_dir, open_private
from engine.store.workspace import Workspace
from engine.vault.layout import new_run
from engine.vault.messages import Record, Unknown


@dataclass
class PipeCounts:
    """What went through the pipe so far (the shape Progress reads)."""

    records: int = 0
    bytes: int = 0
    lines: int = 0
    part_count: int = 0


@dataclass
class PipeResult:
    """How the pumping ended."""

    error: StreamError | None = None
    target_broke: bool = False
    repaired_lines: int = 0


def run_to_target(spec: TaskSpec, emit: Emit) -> int:
    """Run the tap into the loader; emit events; return 0 on success, 1 otherwise."""
    ex, lo = spec.extractor, spec.target
    assert lo is not None
    ws = Workspace(spec.workspace)
    base = ensure_dir(ws.diagnostics / "targets" / lo.name / ex.name)
    folder = ensure_dir(new_run(base).path(base))
    started, started_at = time.monotonic(), time.time()
    sup = Supervisor(ex.timeout_s, spec.extract.cancel_grace_s)
    counts = PipeCounts()
    result = PipeResult()
    account_dir = ws.account_dir(ex.domain, ex.source, ex.account)
    try:
        inputs = prepare_inputs(ex, ws, account_dir, folder, sup, folder / "tap.stderr.log", want_state=False)
        status, code, exit_code, line = _pipe(spec, lo, folder, sup, inputs.catalog, counts, result, emit)
    except InputProblem as problem:
        status, code, exit_code, line = problem.status, problem.code.value, problem.exit_code, None
    except OSError as exc:  # the workspace disk failed while preparing (catalog cache, STATE file)
        status, code, exit_code, line = "failed", write_error_code(exc).value, None, None
    finally:
        (folder / "demo-tap-config.json").unlink(missing_ok=True)
    stderr_lines = count_lines(folder / "tap.stderr.log")
    atomic_write_json(folder / "summary.json", {
        "extractor": ex.name, "loader": lo.name, "status": status, "error_code": code, "exit_code": exit_code,
        "line": line, "records": counts.records, "messages": counts.lines, "bytes": counts.bytes,
        "started_at": started_at, "finished_at": time.time(), "tap_stderr_lines": stderr_lines,
        "repaired_lines": result.repaired_lines,
        "bad_line": BAD_LINE if (folder / BAD_LINE).is_file() else None, "vault": "untouched",
    })
    emit(TaskFinished(
        task_id=spec.task_id, stage="extract", extractor=ex.name, account=ex.account, status=status,  # type: ignore[arg-type]
        attempt=spec.attempt, records=counts.records, uncompressed_bytes=counts.bytes,
        duration_s=round(time.monotonic() - started, 3), error_code=code, exit_code=exit_code, line=line,
        stderr_lines=stderr_lines, detail_path=str(folder), target=lo.name,
    ))
    return 0 if status == "success" else 1


def _pipe(spec: TaskSpec, lo: Loader, folder: Path, sup: Supervisor, catalog: Path | None,
          counts: PipeCounts, result: PipeResult, emit: Emit) -> tuple[str, str | None, int | None, int | None]:
    """Start target and tap, pump, reap both; return (status, code, exit code, line)."""
    tcmd = loader_command(lo)
    with open_private(folder / "target.stdout.log", "wb") as tout, \
            open_private(folder / "target.stderr.log", "wb") as terr:
        try:
            target, tdog = sup.spawn(tcmd.argv, stdin=subprocess.PIPE, stdout=tout, stderr=terr,
                                     env=tcmd.env, cwd=tcmd.cwd)
        except OSError:
            return "failed", ErrorCode.TARGET_NOT_FOUND.value, None, None
    cmd = tap_command(spec.extractor, folder, catalog=catalog)
    with open_private(folder / "tap.stderr.log", "ab") as err:
        try:
            tap, dog = sup.spawn(cmd.argv, stdout=subprocess.PIPE, stderr=err, env=cmd.env, cwd=cmd.cwd)
        except OSError:
            _close(target.stdin)
            reap(target, tdog)
            return "failed", ErrorCode.TAP_NOT_FOUND.value, None, None
    progress = Progress(spec, counts, emit)
    assert tap.stdout is not None and target.stdin is not None
    lines = TapLines(tap.stdout)
    unknown = UnknownWarner(spec, emit)
    _pump(lines, target.stdin, counts, result, progress, unknown, dog)
    unknown.finish()
    result.repaired_lines = lines.repaired
    warn_repaired(spec, emit, lines.repaired)
    if result.error is not None:
        keep_bad_line(folder, result.error)
    _close(tap.stdout)
    _close(target.stdin)
    rc = reap(tap, dog)
    dog.end_group()
    if result.error is not None:
        tdog.stop("stream")
    trc = reap(target, tdog)
    progress.stop()
    status, code, exit_code, line = _outcome(sup, result, rc, trc)
    status, code = quiet_tap(status, code, lines)  # not one SCHEMA, STATE or RECORD: TAP_OUTPUT_EMPTY
    return status, code, exit_code, line


def _pump(lines: TapLines, dst: IO[bytes], counts: PipeCounts, result: PipeResult, progress: Progress,
          unknown: UnknownWarner, dog: Watchdog) -> None:
    """Copy the tap's checked lines to the target (a repaired line as repaired); a line the
    checks refuse, or a target that stopped reading, ends the pumping (noted in ``result``)."""
    try:
        for msg, raw in lines:
            kind = type(msg)
            if kind is Record:
                counts.records += 1
                if counts.records & 63 == 1:
                    progress.tick()
            elif kind is Unknown:
                unknown(lines.lineno)
            try:
                dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
            except (BrokenPipeError, ValueError):
                dog.stop("stream")
                result.target_broke = True
                return
            counts.lines += 1
            counts.bytes += len(raw)
    except StreamError as exc:
        dog.stop("stream")
        result.error = exc


def _close(fh: IO[bytes] | None) -> None:
    if fh is not None:
        try:
            fh.close()
        except (BrokenPipeError, OSError):
            pass


def _outcome(sup: Supervisor, result: PipeResult, rc: int,
             trc: int) -> tuple[str, str | None, int | None, int | None]:
    if sup.reason == "cancelled":
        return "cancelled", ErrorCode.CANCELLED.value, rc, None
    if sup.reason == "timeout":
        return "timeout", ErrorCode.TIMEOUT.value, rc, None
    if result.error is not None:
        return "failed", result.error.code.value, rc, result.error.line
    if result.target_broke or trc != 0:
        return "failed", ErrorCode.TARGET_EXIT_NONZERO.value, trc, None
    if rc != 0:
        return "failed", ErrorCode.TAP_EXIT_NONZERO.value, rc, None
    return "success", None, 0, None
