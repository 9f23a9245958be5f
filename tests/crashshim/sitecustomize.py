"""Test-only crash points for stage workers (loaded through PYTHONPATH by test_crash_steps).

When ``LORCH_TEST_CRASH_STEP`` is set and this process is a stage worker
(``python -m engine.run.worker``), every call of the file-system steps a writer commits through
(``os.replace``, ``os.rename``, ``os.link``, ``os.unlink``, ``os.rmdir``, ``os.fsync``) is
counted, and the process SIGKILLs itself just before step N (with ``LORCH_TEST_CRASH_SIGNAL=TERM``
it sends itself the engine's cancel, SIGTERM, instead, and goes on). With N = 0 it only
counts and writes the total to ``LORCH_TEST_CRASH_COUNT`` when it exits (atomically: every
process that exits reports, the last one wins).

With ``LORCH_TEST_ENOSPC_FSYNC=N`` (test_disk_full's fallback where no tmpfs can be
mounted), a stage worker's Nth and every later ``os.fsync`` fails with ``ENOSPC``, as on a
file system that runs out of space when the data is flushed, and from then on so does every
``os.write`` to a regular file (the index's object writes; never the event pipe). Nothing in ``engine/`` knows
about this file.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

_STEP = os.environ.get("LORCH_TEST_CRASH_STEP")
if _STEP is not None and "engine.run.worker" in getattr(sys, "orig_argv", []):
    _at = int(_STEP)
    _SIGNAL = signal.SIGTERM if os.environ.get("LORCH_TEST_CRASH_SIGNAL") == "TERM" else signal.SIGKILL
    _calls = [0]
    _count_file = os.environ.get("LORCH_TEST_CRASH_COUNT")
    _real_replace = os.replace  # the report's own rename is no step

    def _wrap(name: str) -> None:
        real = getattr(os, name)

        def step(*args, **kwargs):  # type: ignore[no-untyped-def]
            _calls[0] += 1
            if _calls[0] == _at:
                os.kill(os.getpid(), _SIGNAL)
            return real(*args, **kwargs)

        setattr(os, name, step)

    for _name in ("replace", "rename", "link", "unlink", "rmdir", "fsync"):
        _wrap(_name)

    if _count_file:
        def _report() -> None:
            # Whole or not at all: a forked helper (the project's second chart writer) reports
            # too, and may still be exiting when the test reads the count after the task ended.
            tmp = f"{_count_file}.{os.getpid()}"
            with open(tmp, "w") as fh:
                fh.write(str(_calls[0]))
            _real_replace(tmp, _count_file)

        atexit.register(_report)
        _real_exit = os._exit

        def _exit(code: int) -> None:  # the worker ends with os._exit: atexit never runs
            _report()
            _real_exit(code)

        os._exit = _exit  # type: ignore[assignment]


_ENOSPC = os.environ.get("LORCH_TEST_ENOSPC_FSYNC")
if _ENOSPC is not None and "engine.run.worker" in getattr(sys, "orig_argv", []):
    import errno
    import stat

    _from = int(_ENOSPC)
    _real_fsync, _real_write = os.fsync, os.write
    _fsyncs = [0]

    def _full() -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def _full_fsync(fd):  # type: ignore[no-untyped-def]
        _fsyncs[0] += 1
        if _fsyncs[0] >= _from:
            raise _full()
        return _real_fsync(fd)

    def _full_write(fd, data):  # type: ignore[no-untyped-def]
        if _fsyncs[0] + 1 >= _from and stat.S_ISREG(os.fstat(fd).st_mode):
            raise _full()  # a regular file (never the event pipe)
        return _real_write(fd, data)

    os.fsync, os.write = _full_fsync, _full_write
