"""A forked helper process of the project task: the second core, and never an orphan.

The project task shares two kinds of independent work with one forked child: reading and
reducing some accounts' documents (:mod:`engine.clients.reading`) and writing half of the
chart folders (:mod:`engine.clients.shards`). The child inherits what it needs by ``fork``
(nothing is serialised on the way in), never touches the parent's SQLite connections (it
opens its own and leaves by ``os._exit``, so no finaliser runs on inherited state), asks
Linux to SIGKILL it when the task dies (``PR_SET_PDEATHSIG``: a ``kill -9`` of the task
never leaves an orphan racing the next run), is killed when the task stops early (cancel,
an error), and sends back one PHI-free or in-workspace payload through a pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
OS_ERROR_EXIT = 64
"""A helper that fails on a file operation exits with 64 + its errno, so the task reports a
full disk as DISK_FULL and names the error (its message, with the path, goes to stderr)."""


class ChildFailed(OSError):
    """The helper process ended without its result."""


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent ends (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def can_fork() -> bool:
    """True where a helper process can be forked."""
    return hasattr(os, "fork")


class Child:
    """A forked process running ``work`` and sending back the bytes it returns."""

    def __init__(self, work: Callable[[], bytes]) -> None:
        parent = os.getpid()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - measured through the project tests' subprocesses
            code = 1
            try:
                os.close(r)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                die_with_parent(parent)
                data = work()
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view):]
                code = 0
            except OSError as exc:  # the task reports it: DISK_FULL, or WRITE_FAILED with the errno
                if exc.errno is not None and 0 < exc.errno < 256 - OS_ERROR_EXIT:
                    code = OS_ERROR_EXIT + exc.errno
                with contextlib.suppress(OSError):  # its stderr is the task's, in diagnostics/
                    os.write(2, f"project helper process: {exc!r}\n".encode(errors="replace"))
            finally:
                os._exit(code)
        os.close(w)
        self.pid: int | None = pid
        self.fd = r

    def result(self) -> bytes:
        """Wait for the child; what its work returned, or ChildFailed."""
        chunks: list[bytes] = []
        while chunk := os.read(self.fd, 1 << 20):
            chunks.append(chunk)
        assert self.pid is not None
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        code = os.waitstatus_to_exitcode(status)
        if code > OS_ERROR_EXIT:
            raise ChildFailed(code - OS_ERROR_EXIT, os.strerror(code - OS_ERROR_EXIT))
        if code != 0 or not chunks:
            raise ChildFailed("a helper process of the project task failed")
        return b"".join(chunks)

    def stop(self) -> None:
        """Kill the child if it still runs (the task stops early); close the pipe."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None
        with contextlib.suppress(OSError):
            os.close(self.fd)
