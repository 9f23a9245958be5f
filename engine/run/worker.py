"""Entry point of stage worker subprocesses: ``python -m engine.run.worker``.

The engine writes a :class:`TaskSpec` as JSON on the worker's stdin; the worker writes
events as JSON lines on its stdout and nothing else. Its exit code is 0 on success and 1
on failure; a crash without a final event is reported by the engine as WORKER_CRASHED.
If the engine dies, events have nowhere to go: the worker drops them and still finishes
its work on disk (a cancelled run gets its manifest), holding the workspace lock it
inherited until it exits.
Every final event (``task_finished``) leaves with the worker's CPU time and peak RSS
(:func:`with_usage`), whichever stage sent it.
Before any work the worker caps its own address space (``spec.limits.memory_limit_mb``,
``RLIMIT_AS``); a Python allocation that fails under the cap ends the task with
``WORKER_OUT_OF_MEMORY`` (an allocation failing inside a native library aborts the worker,
and the engine names it the same from the worker's diagnostics file).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable

from engine.events import ErrorCode, EventBase, TaskFinished, dump_event
from engine.limits import cap_memory
from engine.stages.spec import TaskSpec
from engine.store.fsutil import secure_umask
from engine.store.process import no_core_dumps


def with_usage(event: TaskFinished) -> TaskFinished:
    """The final event with this worker's resource usage: CPU seconds of the worker and its
    reaped children (the tap of an extract, the project's forked helpers), and the peak RSS
    of the worker or of the largest helper it forked for its own work (PHI-free numbers). An
    extract's children are the tap, whose memory is the tap's, not ours: left out."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    rss = me.ru_maxrss if event.stage == "extract" else max(me.ru_maxrss, kids.ru_maxrss)
    return event.model_copy(update={"cpu_s": round(cpu, 3), "sys_s": round(me.ru_stime + kids.ru_stime, 3),
                                    "peak_rss_kb": int(rss)})


def single_threaded_math(stage: str) -> None:
    """One worker per core already: numpy's BLAS must not start a thread per core in each.

    OpenBLAS's idle threads spin after start-up (perf, session 7: ~3% of an index stage's
    samples in ``blas_thread_server``). Called before anything imports numpy; a value the user
    set wins. The worker's helper processes inherit it. Not in an extract worker: its tap
    inherits the worker's environment, which is the user's to set.
    """
    if stage == "extract":
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main() -> int:
    """Read the spec, run the stage, return the exit code."""
    secure_umask()
    no_core_dumps()  # nor the tap's: it inherits the limit
    spec = TaskSpec.model_validate_json(sys.stdin.buffer.read())
    single_threaded_math(spec.stage)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)

    lock = threading.Lock()
    engine_gone = threading.Event()

    def emit(event: EventBase) -> None:
        if isinstance(event, TaskFinished):
            event = with_usage(event)
        line = dump_event(event)
        with lock:  # heartbeat threads emit too: one whole line at a time
            if engine_gone.is_set():
                return
            try:
                out.write(line)
            except OSError:  # the engine died (EPIPE): finish the run on disk, tell nobody
                engine_gone.set()

    cap_memory(spec.limits.memory_limit_mb)
    started = time.monotonic()
    try:
        return run_stage(spec, emit)
    except MemoryError:
        emit(TaskFinished(task_id=spec.task_id, stage=spec.stage, extractor=spec.extractor.name,
                          account=spec.extractor.account, status="failed", attempt=spec.attempt,
                          error_code=ErrorCode.WORKER_OUT_OF_MEMORY.value,
                          duration_s=round(time.monotonic() - started, 3)))
        return 1


def run_stage(spec: TaskSpec, emit: Callable[[EventBase], None]) -> int:
    """Run the stage the spec names; return the worker's exit code."""
    if spec.stage == "extract":
        from engine.stages.extract import run_extract

        return run_extract(spec, emit)
    if spec.stage == "canonize":
        from engine.stages.canonize import run_canonize

        return run_canonize(spec, emit)
    if spec.stage == "index":
        from engine.stages.index import run_index

        return run_index(spec, emit)
    if spec.stage == "project":
        from engine.stages.project import run_project

        return run_project(spec, emit)
    raise SystemExit(f"stage {spec.stage} is not implemented by this worker")


def exit_now(code: int) -> None:
    """End the worker without the interpreter's teardown once its work is on disk and its
    final event written: freeing a large heap object by object (the index's and the project's
    hundreds of MiB) cost up to 0.3 CPU-s a task, after the task had reported its CPU time.
    Only when no other non-daemon thread is alive (one could still be writing); otherwise the
    normal exit, which waits for it."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
