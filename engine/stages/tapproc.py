"""The child processes of an extract worker (tap, discovery, target): spawn, deadline, cancel.

Every child starts in its own session, so a stop reaches its whole process group (the tap
under ``meltano invoke`` too), and gets SIGKILL if the worker dies (PR_SET_PDEATHSIG). One
:class:`Supervisor` per worker owns SIGTERM/SIGINT and the task's deadline, which covers
every phase of the task (discovery, then the tap, and a target beside it): a cancel stops
whatever runs now and any process started later at once. A stop is SIGTERM to the group,
then SIGKILL after the grace period to whatever of the group is still alive, its leader
ended or not; callers always ``wait()``, and a tap's group is ended once its output has
(:meth:`Watchdog.end_group`), so nothing is orphaned.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Literal

from engine.limits import uncap_memory

StopReason = Literal["cancelled", "timeout", "stream"]


def die_with_parent() -> None:
    """In a child process: get SIGKILL if the worker dies (Linux), and drop the worker's own
    memory cap (the tap is the user's program; the cap guards our per-record code)."""
    uncap_memory()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Watchdog:
    """Stops one child on its deadline or on demand: SIGTERM to its group, SIGKILL after grace.

    The stop is aimed at the child's process group, not at the child: the group outlives its
    leader while any member is left (a wrapper script that ran the real tap in the background
    and exited). SIGKILL follows the grace period whenever a live member is still there,
    whether or not the leader has ended; waiting on the leader alone let a tap that ignores
    SIGTERM write on for ever after its wrapper exited."""

    POLL_S = 0.05
    """How often the group is looked at during the grace period."""

    KILL_ROUNDS = 50
    """SIGKILLs to the group at most, 0.1 s apart, until no live member is left."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout_s: float, grace_s: float) -> None:
        self.proc = proc
        self.pgid = proc.pid  # started with start_new_session: the child leads its own group
        self.grace_s = grace_s
        self.reason: StopReason | None = None
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._killer: threading.Thread | None = None
        self._ended = False
        threading.Thread(target=self._run, args=(max(0.0, timeout_s),), daemon=True).start()

    def _run(self, timeout_s: float) -> None:
        if not self._wake.wait(timeout_s) and self.reason is None:
            self.stop("timeout")

    def stop(self, reason: StopReason) -> None:
        """Stop the child's group for ``reason`` (the first reason wins)."""
        if self.reason is None:
            self.reason = reason
        self._begin_stop()

    def _begin_stop(self) -> threading.Thread | None:
        """SIGTERM to the group and a thread that SIGKILLs what is left after the grace period
        (once per child); None when the child has ended and left nothing in its group."""
        with self._lock:
            if self._killer is None:
                if self._ended and not group_alive(self.pgid):
                    return None  # nothing left: never signal a process group id that may be reused
                self._signal(signal.SIGTERM)
                self._killer = threading.Thread(target=self._kill_later, name="tap-kill", daemon=True)
                self._killer.start()
            return self._killer

    def _kill_later(self) -> None:
        end = time.monotonic() + self.grace_s
        while group_alive(self.pgid):
            if time.monotonic() >= end:
                self._kill_group()
                return
            time.sleep(self.POLL_S)

    def _kill_group(self) -> None:
        """SIGKILL to the group until no live member is left (a member forking as the first
        signal arrives cannot leave a child behind)."""
        for _ in range(self.KILL_ROUNDS):
            if not self._signal(signal.SIGKILL):
                return
            time.sleep(0.1)
            if not group_alive(self.pgid):
                return

    def _signal(self, sig: int) -> bool:
        """Signal the group; False when no member of it is left (ESRCH)."""
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def done(self) -> None:
        """The child has ended; stop the timer."""
        self._ended = True
        self._wake.set()

    def end_group(self) -> None:
        """After the child ended and its output was read to its end: stop whatever is still
        left in its group (SIGTERM, SIGKILL after the grace period) and wait until it is gone,
        or until a stop already under way has sent its SIGKILL. Nothing of the group outlives
        the worker, which no longer reads it (a process left so writes no records: the output
        had ended)."""
        self.done()
        killer = self._begin_stop()
        if killer is not None:
            killer.join()


class Supervisor:
    """The worker's children under one deadline and one cancel switch."""

    def __init__(self, timeout_s: float, grace_s: float, *, handle_signals: bool = True) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.grace_s = grace_s
        self.cancelled = False
        self._dogs: list[Watchdog] = []
        self._lock = threading.Lock()
        if handle_signals:
            self._listen()

    def _listen(self) -> None:
        """SIGTERM/SIGINT wake a thread that cancels. The handler itself only writes a byte:
        it runs in the main thread between any two bytecodes, possibly while that thread
        holds ``_lock`` or is starting a thread, so taking a lock there could wait forever
        (engine/cancel.py says the same of the index and project workers)."""
        read, write = os.pipe()
        os.set_blocking(write, False)

        def on_signal(signum: int, frame: object) -> None:
            try:
                os.write(write, b"\0")
            except BlockingIOError:
                pass  # a cancel is on its way already

        def wait_and_cancel() -> None:
            os.read(read, 1)
            self.cancel()

        threading.Thread(target=wait_and_cancel, name="cancel", daemon=True).start()
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def spawn(self, argv: list[str], *, stdout: IO[bytes] | int | None, stderr: IO[bytes] | int | None,
              env: Mapping[str, str], cwd: Path | None = None,
              stdin: IO[bytes] | int | None = subprocess.DEVNULL) -> tuple[subprocess.Popen[bytes], Watchdog]:
        """Start a watched child (raises OSError when the command cannot start)."""
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, env=dict(env),
                                start_new_session=True, preexec_fn=die_with_parent, bufsize=1 << 20)
        dog = Watchdog(proc, self.deadline - time.monotonic(), self.grace_s)
        with self._lock:
            self._dogs.append(dog)
            if self.cancelled:
                dog.stop("cancelled")
        return proc, dog

    def cancel(self) -> None:
        """Stop every child, now and later (SIGTERM/SIGINT on the worker)."""
        with self._lock:
            self.cancelled = True
            dogs = list(self._dogs)
        for dog in dogs:
            dog.stop("cancelled")

    @property
    def reason(self) -> StopReason | None:
        """Why the task was stopped: cancelled beats timeout beats a stream breach."""
        if self.cancelled:
            return "cancelled"
        reasons = {d.reason for d in self._dogs}
        for reason in ("timeout", "stream"):
            if reason in reasons:
                return reason  # type: ignore[return-value]
        return None

    @property
    def expired(self) -> bool:
        """Whether the task's deadline has passed."""
        return time.monotonic() >= self.deadline


class LeftoverGuard:
    """Ends a tap's output when the tap has ended but a process it left holds its stdout.

    A process the tap started in a process group of its own (``setsid``, a daemonising
    helper) is out of reach of the stop to the tap's group, and while it keeps the pipe open
    the worker never reads end-of-file: a finished tap looked like a hang, and a timed-out
    one outlived its deadline until the engine killed the worker. Once the tap has ended and
    ``grace_s`` has passed without end-of-file, every process holding the pipe (found by its
    inode under ``/proc``) outside the tap's group gets SIGKILL, its group too when it leads
    one, scan after scan until none is left; :attr:`killed` counts them, and a run that
    needed it is never a success (what they still had to write is missing: a tap started
    under ``setsid`` exits at once while the real tap writes on). A process of the tap's own
    group is never killed here: it may still be writing the tap's records (a helper the tap
    ran in the background), and the deadline stops it as before."""

    def __init__(self, proc: subprocess.Popen[bytes], grace_s: float) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.grace_s = grace_s
        self.killed = 0
        self._pipe = f"pipe:[{os.fstat(proc.stdout.fileno()).st_ino}]"
        self._eof = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tap-leftovers", daemon=True)
        self._thread.start()

    ROUNDS = 50
    """Scans of ``/proc`` at most, 0.1 s apart: a leftover that keeps forking is caught too."""

    def _run(self) -> None:
        self.proc.wait()
        if self._eof.wait(self.grace_s):
            return
        for _ in range(self.ROUNDS):
            found = [pid for pid in pipe_holders(self._pipe) if _group_of(pid) not in (None, self.proc.pid)]
            if not found:
                return
            for pid in found:
                self._kill(pid)
            if self._eof.wait(0.1):
                return

    def _kill(self, pid: int) -> None:
        """SIGKILL to a leftover, and to its group when it leads one (its forks share the pipe)."""
        try:
            if _group_of(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            self.killed += 1
        except (ProcessLookupError, PermissionError):
            pass

    def done(self) -> int:
        """End-of-file was read: stop watching; return how many leftovers were killed."""
        self._eof.set()
        self._thread.join(timeout=1.0)
        return self.killed


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a live member (zombies, waiting for whoever reaps
    them, do not count); without ``/proc``, whether the group can be signalled at all."""
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _group_of(pid: int) -> int | None:
    """The process group of ``pid`` (``/proc/PID/stat``), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
    return int(fields[2]) if len(fields) > 2 else None


def pipe_holders(pipe: str) -> list[int]:
    """Other processes with a file descriptor on ``pipe`` (``pipe:[INODE]``); Linux ``/proc``."""
    me = os.getpid()
    out: list[int] = []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == pipe for fd in fds):
                out.append(pid)
        except OSError:  # gone, or not ours to look at
            continue
    return out


def reap(proc: subprocess.Popen[Any], dog: Watchdog) -> int:
    """Wait for a child to end and stop its timer; return its exit code."""
    rc = proc.wait()
    dog.done()
    return rc
