"""The workers' cooperative cancel (engine/cancel.py): SIGTERM never unwinds through a lock.

A stage worker used to raise its cancel from the SIGTERM handler. Python runs a handler
between any two bytecodes of the main thread, and a ``with threading.Condition():`` block
(``queue.Queue``, ``Future.result``, ``Thread.start``) has two such points where an exception
leaves the lock held for good; the index worker's threads then waited for it forever (CI,
session 11). Real processes, real signals: the probe below sends SIGTERM from another thread
at varied instants while the main thread takes and releases a Condition, and counts the
locks left held after the cancel unwound.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO, clean_env

PROBE = """
import os, signal, sys, threading, time
from engine import cancel

MODE, TRIALS = sys.argv[1], int(sys.argv[2])

def raise_now(signum, frame):
    raise cancel.Cancelled()

fire = threading.Semaphore(0)
def killer():
    n = 0
    while True:
        fire.acquire()
        n += 1
        time.sleep(0.00005 * (n % 11))
        os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=killer, daemon=True).start()

def held(lock):
    got = []
    def probe():
        ok = lock.acquire(blocking=False)
        if ok:
            lock.release()
        got.append(ok)
    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return not got[0]

leaked = cancelled = 0
for _ in range(TRIALS):
    cond = threading.Condition()
    with cancel.on_sigterm():
        if MODE == "raise":  # the old way: the handler itself raises
            signal.signal(signal.SIGTERM, raise_now)
        fire.release()
        try:
            while True:
                with cond:
                    pass
                cancel.check()
        except cancel.Cancelled:
            cancelled += 1
    leaked += held(cond._lock)
print(cancelled, leaked)
"""


def _probe(mode: str, trials: int) -> tuple[int, int]:
    res = subprocess.run([sys.executable, "-c", PROBE, mode, str(trials)], cwd=REPO, env=clean_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    cancelled, leaked = res.stdout.split()
    return int(cancelled), int(leaked)


def test_a_cancel_never_leaves_a_lock_held() -> None:
    """Every SIGTERM ends the loop through ``cancel.check()``, and no lock stays held; the
    same probe with the handler raising (the old way) does leave locks held, so the probe
    can see what it looks for."""
    assert _probe("flag", 200) == (200, 0)
    cancelled, leaked = _probe("raise", 200)
    assert cancelled == 200 and leaked > 0


SUPERVISED = """
import os, signal, subprocess, sys, time
from engine.stages.tapproc import Supervisor, reap

sup = Supervisor(timeout_s=60, grace_s=1)
proc, dog = sup.spawn([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, env=os.environ)
with sup._lock:  # the main thread inside the supervisor's lock, as in spawn(), when SIGTERM comes
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)  # the handler has run by now (in this thread)
rc = reap(proc, dog)
print(sup.reason, rc)
"""


def test_an_extract_cancel_arriving_inside_the_supervisors_lock_still_stops_the_tap() -> None:
    """The extract worker's SIGTERM handler runs in the main thread, which may hold the
    supervisor's lock at that instant: the cancel must still stop the child (the handler
    only wakes a thread that cancels), not wait for a lock its own thread holds."""
    res = subprocess.run([sys.executable, "-c", SUPERVISED], cwd=REPO, env=clean_env(),
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    reason, rc = res.stdout.split()
    assert reason == "cancelled" and int(rc) == -15
