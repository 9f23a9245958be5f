"""The extract worker: runs one tap and is its Singer target, writing one vault run.

It runs in its own process (started by the engine), prepares the tap's inputs (a catalog,
given or discovered; the last successful run's STATE for ``incremental``), spawns the tap
in a new session, reads its stdout line by line (lines of any length) through
:mod:`engine.stages.singer_stream`, and writes the records into the vault run. Tap stderr
goes to ``tap.stderr.log`` inside the run folder; only its line count leaves. On SIGTERM
(cancel) or when ``timeout_s`` passes, the tap's process group gets SIGTERM, then SIGKILL
after the grace period (:mod:`engine.stages.tapproc`); the run is still finished with its
status in the manifest, and LATEST moves only on success. With a loader (``extract
--target``) the tap is piped into that target instead (:mod:`engine.stages.to_target`).
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from engine.errors import say_os_error
from engine.events import ErrorCode, TaskFinished, write_error_code
from engine.names import load_key
from engine.stages.progress import Emit, Progress, count_lines
from engine.stages.singer_stream import (
    BAD_LINE,
    StreamError,
    TapLines,
    UnknownWarner,
    consume,
    keep_bad_line,
    quiet_tap,
    warn_repaired,
)
from engine.stages.spec import TaskSpec
from engine.stages.tapinputs import InputProblem, TapInputs, prepare_inputs
from engine.stages.tapproc import LeftoverGuard, Supervisor, reap
from engine.stages.taps import tap_command
from engine.stages.to_target import run_to_target
from engine.store.fsutil import ensure_dir, open_private
from engine.store.workspace import Workspace
from engine.vault.layout import STDERR_LOG, new_run, write_latest
from engine.vault.writer import RunWriter

Outcome = tuple[str, str | None, int | None, int | None]
"""(status, error code, tap exit code, line)"""


def run_extract(spec: TaskSpec, emit: Emit) -> int:
    """Run the task; emit events; return the worker's exit code (0 success, 1 failed)."""
    if spec.target is not None:
        return run_to_target(spec, emit)
    ex = spec.extractor
    ws = Workspace(spec.workspace)
    started = time.monotonic()
    try:
        account_dir = ensure_dir(ws.account_dir(ex.domain, ex.source, ex.account))
        load_key(ws)  # the key that tags undeclared stream names in every face (engine.names)
        ref = new_run(account_dir)
        meta = {"extractor": ex.name, "kind": ex.kind, "domain": ex.domain, "source": ex.source,
                "account": ex.account, "attempt": spec.attempt}
        writer = RunWriter(account_dir, ref, meta, spec.extract.part_max_bytes, spec.extract.compression_level)
    except OSError as exc:  # a read-only vault, a file where the account's folder belongs: not a crash
        say_os_error("extract", exc)
        emit(TaskFinished(task_id=spec.task_id, stage="extract", extractor=ex.name, account=ex.account,
                          status="failed", attempt=spec.attempt, records=0, parts=0, bytes=0, uncompressed_bytes=0,
                          duration_s=round(time.monotonic() - started, 3), error_code=write_error_code(exc).value))
        return 1
    sup = Supervisor(ex.timeout_s, spec.extract.cancel_grace_s)
    stderr_log = writer.tmp / STDERR_LOG
    inputs = TapInputs()
    detail: dict[str, int] | None = None
    try:
        inputs = prepare_inputs(ex, ws, account_dir, writer.tmp, sup, stderr_log)
        writer.meta.update(inputs.manifest)
        status, code, exit_code, line, detail = _drive_tap(spec, writer, emit, sup, inputs)
    except InputProblem as problem:
        status, code, exit_code, line = problem.status, problem.code.value, problem.exit_code, None
    except OSError as exc:  # the workspace disk failed while preparing (catalog cache, STATE file)
        status, code, exit_code, line = "failed", write_error_code(exc).value, None, None
    finally:
        inputs.cleanup()
        (writer.tmp / "demo-tap-config.json").unlink(missing_ok=True)
    stderr_lines = count_lines(stderr_log)
    latest = False
    extra: dict[str, Any] = {"error_detail": detail} if detail else {}
    try:
        writer.finish(status, error_code=code, tap_exit_code=exit_code, error_line=line,
                      stderr_lines=stderr_lines, **extra)
        if status == "success":
            write_latest(account_dir, ref, writer.records)
            latest = True
    except OSError as exc:
        status, code = "failed", write_error_code(exc).value
        mark_failed(writer, code, exit_code, stderr_lines)
    if code == ErrorCode.DISK_FULL.value:
        drop_partial(writer)
    bad = writer.final / BAD_LINE
    emit(TaskFinished(
        task_id=spec.task_id, stage="extract", extractor=ex.name, account=ex.account, status=status,  # type: ignore[arg-type]
        attempt=spec.attempt, records=writer.records, parts=len(writer.parts), bytes=writer.bytes,
        uncompressed_bytes=sum(p["uncompressed_bytes"] for p in writer.parts),
        duration_s=round(time.monotonic() - started, 3), error_code=code, exit_code=exit_code,
        line=line, vault_run=ref.rel, latest_moved=latest, stderr_lines=stderr_lines,
        detail_path=str(bad) if status != "success" and bad.is_file() else None,
    ))
    return 0 if status == "success" else 1


def mark_failed(writer: RunWriter, code: str, exit_code: int | None, stderr_lines: int) -> None:
    """After a write failed while finishing, still mark the run failed in its manifest.

    A run already published stays as it is (only LATEST could not move); when even the
    manifest cannot be written (a full disk), the hidden ``.run_id=*.partial`` folder is
    removed: without a manifest no stage or audit can ever read it, and its parts hold PHI
    and the very space the next run needs. The event still carries WRITE_FAILED and the run.
    """
    if not writer.tmp.is_dir():
        return
    try:
        writer.abort()  # never retry closing the part whose write failed: drop it
        writer.finish("failed", error_code=code, tap_exit_code=exit_code, stderr_lines=stderr_lines)
    except OSError:
        shutil.rmtree(writer.tmp, ignore_errors=True)


def drop_partial(writer: RunWriter) -> None:
    """After a full disk, remove the unpublished run folder whole (LATEST never moved).

    Its parts cannot be trusted and hold the space the next run needs; the task event and
    the run history keep the DISK_FULL outcome. A run already published stays for audit.
    """
    if writer.tmp.is_dir():
        shutil.rmtree(writer.tmp, ignore_errors=True)


def _drive_tap(spec: TaskSpec, writer: RunWriter, emit: Emit, sup: Supervisor,
               inputs: TapInputs) -> tuple[str, str | None, int | None, int | None, dict[str, int] | None]:
    """Run the tap into the writer; return (status, error code, tap exit code, line, detail)."""
    cmd = tap_command(spec.extractor, writer.tmp, catalog=inputs.catalog, state=inputs.state)
    with open_private(writer.tmp / STDERR_LOG, "ab") as err:
        try:
            proc, dog = sup.spawn(cmd.argv, stdout=-1, stderr=err, env=cmd.env, cwd=cmd.cwd)
        except OSError:
            return "failed", ErrorCode.TAP_NOT_FOUND.value, None, None, None
    progress = Progress(spec, writer, emit)
    error: StreamError | None = None
    assert proc.stdout is not None
    guard = LeftoverGuard(proc, sup.grace_s)
    unknown = UnknownWarner(spec, emit)
    lines: TapLines | None = None
    try:
        lines = consume(proc.stdout, writer, progress.tick, unknown)
        warn_repaired(spec, emit, writer.repaired_lines)
    except StreamError as exc:
        error = exc
        dog.stop("stream")
        keep_bad_line(writer.tmp, exc)
    except OSError as exc:
        dog.stop("stream")
        writer.abort()
        error = StreamError(write_error_code(exc), 0)
    unknown.finish()
    proc.stdout.close()
    rc = reap(proc, dog)
    dog.end_group()  # a helper left in the tap's group after its output ended (tapproc)
    killed = guard.done()
    progress.stop()
    status, code, exit_code, line = outcome(sup, error, rc)
    if killed and status == "success":
        # what the killed processes still had to write is missing: never a LATEST (a tap run
        # under `setsid` exits at once while the real tap writes on in a session of its own)
        status, code = "failed", ErrorCode.TAP_LEFTOVER_KILLED.value
    status, code = quiet_tap(status, code, lines)  # not one SCHEMA, STATE or RECORD: TAP_OUTPUT_EMPTY
    return status, code, exit_code, line, error.detail if error is not None else None


def outcome(sup: Supervisor, error: StreamError | None, rc: int) -> Outcome:
    """The task's outcome from why it stopped, the stream's breach and the tap's exit code."""
    if sup.reason == "cancelled":
        return "cancelled", ErrorCode.CANCELLED.value, rc, None
    if sup.reason == "timeout":
        return "timeout", ErrorCode.TIMEOUT.value, rc, None
    if error is not None:
        return "failed", error.code.value, rc, error.line or None
    if rc != 0:
        return "failed", ErrorCode.TAP_EXIT_NONZERO.value, rc, None
    return "success", None, 0, None
