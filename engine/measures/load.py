"""Indexing the measurements in a process of its own, beside the project task's tables and charts.

The measures step publishes the measurements as the canonical account ``measures/scored``
and has the index's own loader (:class:`engine.index.load.AccountLoader`) index them. With
vectors on (``index.vectors``, the default) that loader embeds every new measurement and so
loads the embedding model: about 65 MiB, which stacked on the project task's own memory
(its clients, the resolver's memos, the SQLite caches) and made it the largest worker of a
1,000,000-record pipeline (352 MiB, docs/performance.md). Here the load runs in a fresh
interpreter (``python -m engine.measures.load``) that holds only the loader and the model
and ends with the load. With vectors off there is no model and the load stays in the task
(no process start, :func:`load`).

The child is started in the background (:func:`start`): while it reads, embeds and stages
the measurements, the task writes the client tables and the charts, which do not read the
measurements' index rows, so the second core is busy instead of idle (a 1,000,000-record
first run: 131,515 measurements, about 10 s of one core). The child loads in two phases
(:class:`engine.index.load.AccountLoader` ``two_phase``): its staging takes no lock, and its
replay waits for the tables' transaction to commit; the task waits for the child
(:meth:`Background.wait`, its ``index-measures`` phase) before it marks the charts done, so a
load that fails leaves ``charts_done`` unset and the next run projects again.

The child writes its progress on its stdout, ``P <lines read> <lines in all>`` now and then
(numbers only: the task forwards them as its ``index-measures`` phase), then one line, ``OK``
or the stable error code of what failed (never a message from data); its stderr is
discarded. It writes a progress line at most every quarter second, so the pipe's 64 KiB hold
about thirteen minutes of them before the task reads them (:class:`Background`; were it
full, the child would only wait for that read). It asks Linux to kill it when the task dies
(``PR_SET_PDEATHSIG``), and the task kills it when it stops early (SIGTERM, an error): a
load never outlives its task. A child that ends without its line (killed, out of memory)
fails the task with ``WORKER_CRASHED``.
"""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.events import ErrorCode

OK = "OK"
PROGRESS = "P"
"""The first word of a progress line of the child."""
Progress = Callable[[int, int | None], None]


class LoadError(Exception):
    """The measurements could not be indexed; ``code`` is an ErrorCode value."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def load(root: Path, *, vectors: bool, progress: Progress | None = None, force: bool = False) -> None:
    """Index the published measurements of the workspace at ``root``; LoadError(code) when not.
    ``progress`` gets (lines read, lines in all) now and then; ``force`` (``run --stage project
    --force``) re-checks every object and rewrites a damaged or missing one, as ``index --force``
    does for an account. With vectors, this is :func:`start` and :meth:`Background.wait`."""
    report = progress or (lambda done, total: None)
    if not vectors:  # no model: in the task, as any error propagates (the task maps it)
        from engine.index.load import AccountLoader
        from engine.index.outcome import LoadFailed
        from engine.measures.score import MEASURES_ACCOUNT, MEASURES_SOURCE
        from engine.store.workspace import Workspace
        try:
            AccountLoader(Workspace(root), MEASURES_SOURCE, MEASURES_ACCOUNT, vectors=False,
                          progress=report, force=force).run()
        except LoadFailed as exc:
            raise LoadError(exc.code) from None
        return
    child = start(root, force=force)
    try:
        child.wait(report)
    finally:
        child.stop()


def start(root: Path, *, force: bool = False) -> Background:
    """Start the load with vectors in ``python -m engine.measures.load``; it runs until
    :meth:`Background.wait` (or :meth:`Background.stop`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.measures.load", str(root), str(os.getpid()), *(["--force"] if force else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return Background(proc)


class Background:
    """A measurements' load running in its own process while the task goes on.

    No thread reads its stdout meanwhile (the task forks its second chart writer while the
    load runs, and a fork beside a thread blocked in a read is a fork with a lock held): the
    child writes a progress line at most every :data:`REPORT_EVERY_S`, and :meth:`wait`
    reads what it wrote."""

    WAIT_SLICE_S = 0.1
    """How often :meth:`wait` reports progress (and so sees a cancel) while it waits."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.done = 0
        """Lines the child has read, as far as its progress lines read so far say."""
        self.total: int | None = None
        """Lines in all, once the child has said."""
        self.last = ""
        """The child's outcome line (``OK`` or an error code), once read."""

    def _line(self, raw: bytes) -> None:
        words = raw.decode("ascii", "replace").split()
        if len(words) == 3 and words[0] == PROGRESS and words[1].isdigit():
            self.done, self.total = int(words[1]), int(words[2]) if words[2].isdigit() else None
        elif words:
            self.last = " ".join(words)

    def wait(self, progress: Progress) -> None:
        """Read the child's lines until it ends, reporting its progress every
        :data:`WAIT_SLICE_S` (``progress`` may raise to stop: the caller then calls
        :meth:`stop`); LoadError(code) when the load failed."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        pending = b""
        while True:
            progress(self.done, self.total)
            if not select.select([fd], [], [], self.WAIT_SLICE_S)[0]:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._line(raw)
        self._line(pending)
        rc = self.proc.wait()
        progress(self.done, self.total)
        if rc != 0 or not self.last:
            raise LoadError(ErrorCode.WORKER_CRASHED.value)
        if self.last != OK:
            raise LoadError(self.last)

    def stop(self) -> None:
        """Kill the child if it still runs (the task stops early) and close its pipe; idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


REPORT_EVERY_S = 0.25
"""In the child: at most one progress line this often (and the last one always)."""


class _Reporter:
    """In the child: progress lines, numbers only, rate-limited (see :class:`Background`)."""

    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self.at < REPORT_EVERY_S and (total is None or done < total):
            return
        self.at = now
        sys.stdout.write(f"{PROGRESS} {done} {total if total is not None else '-'}\n")
        sys.stdout.flush()


def _load(root: Path, force: bool = False) -> str:
    """The load with vectors (in the child): ``OK`` or the error code the project task
    would report for what it raised."""
    from engine.index.load import AccountLoader
    from engine.index.outcome import LoadFailed, sqlite_failure
    from engine.index.store import ObjectCorrupt, StoreError
    from engine.measures.score import MEASURES_ACCOUNT, MEASURES_SOURCE
    from engine.store.workspace import Workspace
    try:
        # two phases: the staging takes no lock while the task writes the client tables
        AccountLoader(Workspace(root), MEASURES_SOURCE, MEASURES_ACCOUNT, vectors=True,
                      progress=_Reporter(), force=force, two_phase=True).run()
    except LoadFailed as exc:
        return exc.code
    except ObjectCorrupt:
        return ErrorCode.OBJECT_CORRUPT.value
    except StoreError as exc:
        return exc.code
    except sqlite3.Error as exc:
        return sqlite_failure(exc)
    except OSError:
        return ErrorCode.WRITE_FAILED.value
    return OK


def main(argv: list[str]) -> int:
    """``python -m engine.measures.load WORKSPACE PARENT_PID [--force]``: load with vectors,
    print the line."""
    from engine.clients.forked import die_with_parent
    from engine.store.fsutil import secure_umask
    secure_umask()
    die_with_parent(int(argv[1]))
    code = _load(Path(argv[0]), force="--force" in argv[2:])
    sys.stdout.write(code + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
