"""A stage worker's cancel: SIGTERM sets a flag, the work raises :class:`Cancelled` where it is safe.

Why not raise from the signal handler: Python runs a handler between two bytecodes of the
main thread, wherever it is, including the instant after a ``with`` statement's Python-level
``__enter__`` (``threading.Condition``, used by ``queue.Queue``, ``Future.result`` and
``Thread.start``) took its lock, and the start of its ``__exit__`` before the release. An
exception raised there leaves the lock held for good: the worker's own threads then wait for
it forever, and so does the cancel that joins them. Seen once in CI (a cancelled index load
that never exited); tests/engine/test_cancel.py's probe (SIGTERM at varied instants while the
main thread takes and releases a Condition) finds the lock held after about a third of such
cancels.

So the handler only records the request, and the worker raises :class:`Cancelled` itself
where it holds no lock: between the batches of a load and before its commit, at each
progress report or phase of a projection, and in the loops that wait for SQLite's write
lock (:func:`engine.index.store.with_write_wait`). A cancel waits at most one batch or one
short step; the engine kills a worker that outlives its grace period anyway.

Only the main thread installs the handler (:func:`on_sigterm`); :func:`check` may be called
from any thread, but only where the code can unwind cleanly.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()


class Cancelled(Exception):
    """Raised by :func:`check` once SIGTERM arrived (the engine's cancel of this task)."""


def check() -> None:
    """Raise :class:`Cancelled` if SIGTERM arrived: call it where nothing is half-done."""
    if _requested.is_set():
        raise Cancelled()


def _on_term(signum: int, frame: FrameType | None) -> None:
    _requested.set()


@contextmanager
def on_sigterm() -> Iterator[None]:
    """While inside: SIGTERM only records a cancel (see the module docstring); restored after."""
    _requested.clear()
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested.clear()  # the request was this task's: later work in the process runs
