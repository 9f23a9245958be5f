"""Benchmarks that create files by the hundred thousand must not measure the last one's clean-up.

Why this module exists: on ext4 **without a journal** (this machine's root volume:
``/sys/fs/ext4/<dev>/journal_task`` says ``<none>``), the kernel does not reuse an inode deleted
in the last 60 seconds, or 360 seconds while its inode-table block is dirty
(``fs/ext4/ialloc.c``: ``recently_deleted``, ``RECENTCY_MIN`` and ``RECENTCY_DIRTY``). Every new
inode scans past each such free inode of its block group, one buffer lookup per inode, and new
folders are placed in the groups with the most free inodes: the ones a deletion just emptied.
Measured here (session 7, ``perf``: 60% of the time in ``recently_deleted``): creating 30,000
files in a fresh ``ab/cd`` tree costs 25-40 us of system CPU per file on a settled volume, and
400-830 us for about six minutes after 200,000 files were removed. The benchmarks remove
workspaces of up to a million files, so a run started within those minutes measured the
previous run's clean-up: the index and project stages' CPU moved by tens of seconds between
runs of the same code.

So: every large removal in a benchmark goes through :func:`remove_tree`, which stamps the time
in the benchmark cache; :func:`settle` (called before a measured run that creates many files)
flushes the file system and waits until :data:`WINDOW_S` have passed since the last stamp,
saying so. Deletions made outside the benchmarks (a test suite, a manual ``rm -rf``) are not
stamped: wait the same few minutes after them before a quiet run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from bench.common import cache_root

WINDOW_S = 420.0
"""Seconds after a large removal before file creation is back to normal: the kernel's 360 s
for dirty inode-table blocks, plus the time the removal itself took to reach the disk."""
LARGE = 10_000
"""Removals that free at least this many inodes are stamped; smaller ones slow nothing down
(and a quick benchmark run must not wait minutes after its own small clean-up)."""
STAMP = "mass-delete.stamp"


def _stamp() -> Path:
    return cache_root() / STAMP


def remove_tree(path: Path, *, large: int = LARGE) -> int:
    """``shutil.rmtree`` (errors ignored); stamps the time for :func:`settle` when the removal
    freed at least ``large`` inodes (counted from the volume's free inodes). Returns that count."""
    if not path.exists():
        return 0
    before = os.statvfs(path).f_ffree
    parent = path.parent
    shutil.rmtree(path, ignore_errors=True)
    freed = max(0, os.statvfs(parent).f_ffree - before)
    if freed >= large:
        _stamp().write_text(f"{time.time():.3f}\n")
    return freed


def last_removal() -> float | None:
    """The time (epoch seconds) of the last stamped removal, if any."""
    with contextlib.suppress(OSError, ValueError):
        return float(_stamp().read_text().strip())
    return None


def settle(*, window_s: float | None = None) -> float:
    """Flush the file system, then wait until ``window_s`` have passed since the last removal.

    ``window_s`` defaults to ``LORCH_BENCH_SETTLE_S`` or :data:`WINDOW_S` (``python -m bench
    --quick`` sets it to 0: tiny runs do not wait). Prints what it waits for, and returns the
    seconds waited.
    """
    if window_s is None:
        window_s = float(os.environ.get("LORCH_BENCH_SETTLE_S") or WINDOW_S)
    os.sync()
    last = last_removal()
    ago = window_s if last is None else time.time() - last
    wait = max(0.0, window_s - ago)
    if wait > 0:
        print(f"  (a benchmark removed a large tree {ago:.0f} s ago: on ext4 without a "
              f"journal, creating files stays slow for minutes after that; waiting {wait:.0f} s "
              f"so this run does not measure it; bench/volume.py)", flush=True)
        time.sleep(wait)
        os.sync()
    return wait
