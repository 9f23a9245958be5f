"""Waiting with a deadline inside the dashboard benchmarks, so that none can hang silently.

``python -m bench.dashboard`` once waited forever for a key press that the app never handled
(its handler had raised, the app had stopped, and the loop polled on, idle). Every wait in a
benchmark that drives the app goes through :func:`until`, which raises :class:`Stuck` naming
what it waited for; :func:`watchdog` arms ``faulthandler`` as a last resort, so a benchmark
that still gets stuck prints every thread's stack and exits instead of printing nothing.
"""

from __future__ import annotations

import asyncio
import faulthandler
import sys
import time
from collections.abc import Callable


class Stuck(Exception):
    """A benchmark waited longer than its deadline for something the app should have done."""


async def until(cond: Callable[[], object], timeout: float, what: str, *, step: float = 0.0005) -> float:
    """Poll ``cond`` on the loop until it is truthy; the ``perf_counter`` time it became so.

    Raises :class:`Stuck` after ``timeout`` seconds, saying what was awaited.
    """
    deadline = time.perf_counter() + timeout
    while not cond():
        now = time.perf_counter()
        if now > deadline:
            raise Stuck(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(step)
    return time.perf_counter()


def watchdog(seconds: float) -> None:
    """Dump every thread's stack to stderr and exit (code 1) if the process is still running
    after ``seconds``; 0 disarms it."""
    faulthandler.cancel_dump_traceback_later()
    if seconds > 0:
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.stderr)
