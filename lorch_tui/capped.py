"""`lorchestra transform run` under the canonize worker's memory cap, in a child process.

The canonize worker caps its own address space (``stages.canonize.memory_limit_mb``), so a
transform that allocates without bound fails the task with ``WORKER_OUT_OF_MEMORY``. The CLI
applied the same transform in its own process, uncapped: it allocated gigabytes, then said
"0 rejected", or died of SIGSEGV with no message. The command now runs again as a child
under the cap, with its standard input and output; what the child prints on stderr is
passed on as it comes (through a pipe: reject reasons hold record values, which never go
through a file), SIGTERM is passed to it, and when it died one message says why, in the
canonize task's words.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from engine.limits import OOM_MARKERS, cap_memory

TAIL_BYTES = 64 * 1024
CHILD_ENV = "LORCH_TRANSFORM_CAPPED"
"""Set in the child to the cap in MiB: it caps itself (:func:`cap_child_early`) and does the work."""


def cap_child_early() -> None:
    """In the child, cap the address space before anything imports the JSONata engine (the
    CLI's first step): the engine reserves about 1 GiB at import when nothing limits it, and
    a cap set after that left no room at 512 or 1024 MiB ("does not compile"); under the cap
    it reserves what fits, as in the canonize worker, which caps itself first."""
    value = os.environ.get(CHILD_ENV, "")
    if value.isdigit():
        cap_memory(int(value))


def run_capped(argv: list[str], limit_mb: int | None) -> int | None:
    """The exit code of the command run in a capped child, or None when it runs here (this
    is that child, now capped, or no cap is configured)."""
    if limit_mb is None:
        return None
    if os.environ.get(CHILD_ENV):
        cap_memory(limit_mb)  # set already by cap_child_early; kept for a child started otherwise
        return None
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if started:
            started[0].send_signal(signum)
        else:  # before the child exists: passed on as soon as it does (it died with us before)
            pending.append(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", *argv], stderr=subprocess.PIPE,
                                env={**os.environ, CHILD_ENV: str(limit_mb)})
        started.append(proc)
        if pending:
            proc.send_signal(pending[0])
        said = _relay(proc)
        proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if any(m in said for m in OOM_MARKERS) or b"WORKER_OUT_OF_MEMORY" in said:
        print(f"lorchestra: error: WORKER_OUT_OF_MEMORY: the transform allocated past "
              f"stages.canonize.memory_limit_mb ({limit_mb} MiB), as the canonize task would\n"
              "  hint: look for an expression that builds a huge value ($pad, $string of a big "
              "array, a recursion); docs/operations.md", file=sys.stderr)
        return 1
    if proc.returncode < 0:
        print(f"lorchestra: error: WORKER_CRASHED: the transform crashed its process (signal "
              f"{-proc.returncode}), as the canonize task would\n"
              "  hint: run `lorchestra transform test` on its samples; docs/operations.md", file=sys.stderr)
        return 1
    return proc.returncode


def _relay(proc: subprocess.Popen[bytes]) -> bytes:
    """Pass the child's stderr on as it comes (reject reasons are record values: they go to
    the terminal, never through a file) and return its last bytes, where an allocation
    failure would be said."""
    assert proc.stderr is not None
    tail = b""
    for line in proc.stderr:
        tail = (tail + line)[-TAIL_BYTES:]
        if line.strip() != b"WORKER_OUT_OF_MEMORY":  # the child's own marker: said in full below
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
    return tail
