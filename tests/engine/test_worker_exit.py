"""The worker ends without interpreter teardown (engine.run.worker.exit_now), safely.

Real subprocesses: what was printed is flushed, the exit code is the task's, and a
non-daemon thread still running keeps the normal exit (it finishes its write first).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, clean_env


def run_py(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True,
                          text=True, timeout=60)


def test_exit_now_flushes_output_and_keeps_the_code() -> None:
    res = run_py("import sys\nfrom engine.run.worker import exit_now\n"
                 "sys.stdout.write('buffered, no newline'); sys.stderr.write('err')\n"
                 "big = [dict(n=i) for i in range(200000)]\n"
                 "exit_now(3)\nprint('not reached')")
    assert res.returncode == 3
    assert res.stdout == "buffered, no newline"
    assert res.stderr == "err"


def test_exit_now_waits_for_a_live_non_daemon_thread(tmp_path: Path) -> None:
    out = tmp_path / "written"
    res = run_py("import threading, time\nfrom engine.run.worker import exit_now\n"
                 "def late():\n    time.sleep(0.3)\n"
                 f"    open({str(out)!r}, 'w').write('done')\n"
                 "threading.Thread(target=late).start()\n"
                 "exit_now(1)")
    assert res.returncode == 1
    assert out.read_text() == "done"
