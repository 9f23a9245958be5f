"""The extract worker: runs one tap and is its Singer target, writing one vault run.

It runs in its own process (started by the engine), spawns the tap in a new session,
reads the tap's stdout line by line (lines of any length), and writes records into the
vault run. Tap stderr goes to ``tap.stderr.log`` inside the run folder; only its line
count leaves. On SIGTERM (cancel) or when ``timeout_s`` passes, the tap's process group
gets SIGTERM, then SIGKILL after the grace period; the run is still finished with its
status in the manifest, and LATEST moves only on success.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import orjson

from engine.events import ErrorCode, EventBase, TaskFinished, TaskProgress, TaskWarning
from engine.fsutil import ensure_dir, open_private
from engine.stages.spec import TaskSpec
from engine.taps import tap_command
from engine.vault.layout import STDERR_LOG, new_run, write_latest
from engine.vault.writer import RunWriter
from engine.workspace import Workspace

Emit = Callable[[EventBase], None]
PROGRESS_EVERY_S = 0.25


class StreamError(Exception):
    """The tap's output broke the Singer contract at a given line."""

    def __init__(self, code: ErrorCode, line: int) -> None:
        super().__init__(code.value)
        self.code = code
        self.line = line


def _die_with_parent() -> None:
    """In the tap's child process: get SIGKILL if the worker dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Watchdog:
    """Stops the tap on timeout or cancel: SIGTERM to its group, SIGKILL after grace."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_s: float, grace_s: float) -> None:
        self.proc = proc
        self.grace_s = grace_s
        self.reason: str | None = None
        self._wake = threading.Event()
        self._timer = threading.Thread(target=self._run, args=(timeout_s,), daemon=True)
        self._timer.start()

    def _run(self, timeout_s: float) -> None:
        if not self._wake.wait(timeout_s) and self.reason is None:
            self.stop("timeout")

    def stop(self, reason: str) -> None:
        """Stop the tap for ``reason`` (first reason wins)."""
        if self.reason is None:
            self.reason = reason
        self._signal(signal.SIGTERM)
        threading.Thread(target=self._kill_later, daemon=True).start()

    def _kill_later(self) -> None:
        try:
            self.proc.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def done(self) -> None:
        """The tap has ended; stop the timer."""
        self._wake.set()


class Progress:
    """Emits TaskProgress at most every PROGRESS_EVERY_S seconds.

    The reader calls :meth:`tick` as records flow; a heartbeat thread also reports every
    second when the count changed, so a slow or stalled tap still shows where it is.
    """

    def __init__(self, spec: TaskSpec, writer: RunWriter, emit: Emit) -> None:
        self.spec, self.writer, self.emit = spec, writer, emit
        self.last = 0.0
        self.reported = -1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            if self.writer.records != self.reported:
                self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or now - self.last >= PROGRESS_EVERY_S):
            return
        with self._lock:
            self.last = now
            self.reported = self.writer.records
            demo = self.spec.extractor.demo
            self.emit(TaskProgress(task_id=self.spec.task_id, stage="extract",
                                   extractor=self.spec.extractor.name, records=self.writer.records,
                                   bytes=self.writer.bytes, parts=self.writer.part_count,
                                   total=demo.records if demo is not None else None))

    def stop(self) -> None:
        """Stop the heartbeat and report the final count."""
        self._stop.set()
        self.tick(force=True)


def consume(stdout: IO[bytes], writer: RunWriter, progress: Progress, warn: Callable[[int], None]) -> None:
    """Read Singer messages from the tap into the writer; raise StreamError on a breach."""
    unknown = 0
    for lineno, raw in enumerate(stdout, start=1):
        if not raw.strip():
            continue
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise StreamError(ErrorCode.TAP_OUTPUT_INVALID, lineno) from None
        if not isinstance(msg, dict):
            raise StreamError(ErrorCode.TAP_OUTPUT_INVALID, lineno)
        kind = msg.get("type")
        stream = msg.get("stream")
        if kind == "RECORD":
            if not isinstance(stream, str) or not writer.has_schema(stream):
                raise StreamError(ErrorCode.SCHEMA_MISSING, lineno)
            writer.record(stream, msg.get("record"))
            if writer.records & 63 == 1:
                progress.tick()
        elif kind == "SCHEMA" and isinstance(stream, str):
            writer.schema(stream, msg.get("schema"), msg.get("key_properties"))
        elif kind == "STATE":
            writer.set_state(msg.get("value"))
        elif kind == "ACTIVATE_VERSION" and isinstance(stream, str):
            writer.activate_version(stream, msg.get("version"))
        else:
            unknown += 1
            warn(lineno)
    return None


def run_extract(spec: TaskSpec, emit: Emit) -> int:
    """Run the task; emit events; return the worker's exit code (0 success, 1 failed)."""
    ex = spec.extractor
    ws = Workspace(spec.workspace)
    account_dir = ensure_dir(ws.account_dir(ex.domain, ex.source, ex.account))
    ref = new_run(account_dir)
    meta = {"extractor": ex.name, "kind": ex.kind, "domain": ex.domain, "source": ex.source,
            "account": ex.account, "attempt": spec.attempt}
    writer = RunWriter(account_dir, ref, meta, spec.extract.part_max_bytes, spec.extract.compression_level)
    started = time.monotonic()
    outcome = _drive_tap(spec, writer, emit)
    status, code, exit_code, line = outcome
    stderr_lines = _count_lines(writer.tmp / STDERR_LOG)
    (writer.tmp / "demo-tap-config.json").unlink(missing_ok=True)
    latest = False
    try:
        writer.finish(status, error_code=code, tap_exit_code=exit_code, error_line=line,
                      stderr_lines=stderr_lines)
        if status == "success":
            write_latest(account_dir, ref, writer.records)
            latest = True
    except OSError:
        status, code = "failed", ErrorCode.WRITE_FAILED.value
    emit(TaskFinished(
        task_id=spec.task_id, stage="extract", extractor=ex.name, account=ex.account, status=status,  # type: ignore[arg-type]
        attempt=spec.attempt, records=writer.records, parts=len(writer.parts), bytes=writer.bytes,
        uncompressed_bytes=sum(p["uncompressed_bytes"] for p in writer.parts),
        duration_s=round(time.monotonic() - started, 3), error_code=code, exit_code=exit_code,
        line=line, vault_run=ref.rel, latest_moved=latest, stderr_lines=stderr_lines,
    ))
    return 0 if status == "success" else 1


def _drive_tap(spec: TaskSpec, writer: RunWriter, emit: Emit) -> tuple[str, str | None, int | None, int | None]:
    """Run the tap into the writer; return (status, error code, tap exit code, line)."""
    ex = spec.extractor
    cmd = tap_command(ex, writer.tmp)
    with open_private(writer.tmp / STDERR_LOG, "wb") as err:
        try:
            proc = subprocess.Popen(cmd.argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                    cwd=cmd.cwd, env=cmd.env, start_new_session=True,
                                    preexec_fn=_die_with_parent, bufsize=1 << 20)
        except OSError:
            return "failed", ErrorCode.TAP_NOT_FOUND.value, None, None
    dog = Watchdog(proc, ex.timeout_s, spec.extract.cancel_grace_s)
    signal.signal(signal.SIGTERM, lambda *_: dog.stop("cancelled"))
    signal.signal(signal.SIGINT, lambda *_: dog.stop("cancelled"))
    progress = Progress(spec, writer, emit)
    warned = [0]

    def warn(lineno: int) -> None:
        warned[0] += 1
        emit(TaskWarning(task_id=spec.task_id, stage="extract", extractor=ex.name,
                         code=ErrorCode.UNKNOWN_MESSAGE.value, count=warned[0], line=lineno))

    error: StreamError | None = None
    assert proc.stdout is not None
    try:
        consume(proc.stdout, writer, progress, warn)
    except StreamError as exc:
        error = exc
        dog.stop("stream")
    except OSError:
        dog.stop("stream")
        writer.abort()
        error = StreamError(ErrorCode.WRITE_FAILED, 0)
    proc.stdout.close()
    rc = proc.wait()
    dog.done()
    progress.stop()
    if dog.reason == "cancelled":
        return "cancelled", ErrorCode.CANCELLED.value, rc, None
    if dog.reason == "timeout":
        return "timeout", ErrorCode.TIMEOUT.value, rc, None
    if error is not None:
        return "failed", error.code.value, rc, error.line or None
    if rc != 0:
        return "failed", ErrorCode.TAP_EXIT_NONZERO.value, rc, None
    return "success", None, 0, None


def _count_lines(path: Any) -> int:
    """Lines in a file, counted in chunks (the file may be huge)."""
    n = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                n += chunk.count(b"\n")
    except OSError:
        return 0
    return n
