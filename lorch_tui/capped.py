"""`lorchestra transform run` under the canonize worker's memory cap, in a child process.

The canonize worker caps its own address space (``stages.canonize.memory_limit_mb``), so a
transform that allocates without bound fails the task with ``WORKER_OUT_OF_MEMORY``. The CLI
applied the same transform in its own process, uncapped: it allocated gigabytes, then said
"0 rejected", or died of SIGSEGV with no message. The command now runs again as a child
under the cap, with its standard input and output; what the child prints on stderr is
passed on unless it died, and then one message says why, in the canonize task's words.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from engine.limits import OOM_MARKERS, cap_memory

CHILD_ENV = "LORCH_TRANSFORM_CAPPED"
"""Set in the child: it caps itself and does the work."""


def run_capped(argv: list[str], limit_mb: int | None) -> int | None:
    """The exit code of the command run in a capped child, or None when it runs here (this
    is that child, now capped, or no cap is configured)."""
    if limit_mb is None:
        return None
    if os.environ.get(CHILD_ENV):
        cap_memory(limit_mb)
        return None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-m", "lorch_tui.cli", *argv], stderr=err, check=False,
                              env={**os.environ, CHILD_ENV: "1"})
        err.seek(0)
        said = err.read()
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
    sys.stderr.buffer.write(said)
    sys.stderr.flush()
    return proc.returncode
