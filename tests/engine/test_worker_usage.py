"""The final event's resource figures count the helper processes a worker forks for its own
work (the project's reader and chart writer), but never an extract's tap."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, resource, sys
    # a process started by fork+exec inherits its parent's peak (pytest's, here): measure from it
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("base", base)
    from engine.events import TaskFinished
    from engine.run.worker import with_usage
    pid = os.fork()
    if pid == 0:  # a helper that touches 300 MiB more than that peak, then ends
        block = bytearray((base + 300 * 1024) * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os._exit(0)
    os.waitpid(pid, 0)
    for stage in ("project", "extract"):
        final = TaskFinished(task_id=f"{stage}:x", stage=stage, extractor="x", account="x", status="success")
        done = with_usage(final)
        assert done.sys_s is not None and done.cpu_s is not None and 0 < done.sys_s <= done.cpu_s
        print(stage, done.peak_rss_kb)
""")


def test_peak_rss_counts_forked_helpers_but_not_a_tap() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60)
    peaks = {stage: int(kb) for stage, kb in (line.split() for line in out.stdout.splitlines())}
    assert peaks["project"] >= peaks["base"] + 300 * 1024  # the helper's peak
    assert peaks["extract"] < peaks["base"] + 100 * 1024  # the worker's own: the child is a tap there
