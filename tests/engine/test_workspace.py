"""The PHI workspace on disk: private modes whatever the umask, the writer lock, and the
permission check, all through the real ``lorchestra extract`` process and a real Singer tap.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

from tests.helpers import (
    REPO,
    TinyTap,
    clean_env,
    latest,
    run_cli,
    runs_of,
    tiny_tap,
    verify_parts,
    wait_for,
)

CLI = [sys.executable, "-m", "lorch_tui.cli"]

HOLDER = """\
import sys
from pathlib import Path
from engine.store.fsutil import secure_umask
from engine.store.workspace import Workspace
from engine.store.lock import WorkspaceLock
secure_umask()
ws = Workspace(Path(sys.argv[1])).prepare()
lock = WorkspaceLock(ws, command="test-holder").acquire()
Path(sys.argv[2]).write_text("locked")
sys.stdin.readline()
lock.release()
"""


def extract(tap: TinyTap, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("extract", tap.name, "--config", str(tap.config), *extra, cwd=tap.config.parent,
                   env=clean_env(COLUMNS="1000"))


def private_violations(root: Path) -> list[str]:
    """Every path under root (root included) that is not a 0700 folder or a 0600 file."""
    bad: list[str] = []
    paths = [root, *root.rglob("*")]
    for p in paths:
        st = p.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            ok = mode == 0o700
        elif stat.S_ISREG(st.st_mode):
            ok = mode == 0o600
        else:
            ok = False  # no symlinks, fifos or sockets belong in the workspace
        if not ok:
            bad.append(f"{p} {stat.filemode(st.st_mode)}")
    return bad


def test_umask_zero_still_gives_a_private_workspace(tmp_path: Path) -> None:
    # the child really starts with umask 000
    probe = subprocess.run([sys.executable, "-c", "import os; print(os.umask(0))"], umask=0,
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "0"

    tap = tiny_tap(tmp_path, records=25)
    res = subprocess.run([*CLI, "extract", tap.name, "--config", str(tap.config)], umask=0,
                         capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    [run] = runs_of(tap.account_dir)
    assert verify_parts(run) == 25
    lat = latest(tap.account_dir)
    assert lat is not None and lat["records"] == 25

    ws = tap.workspace
    expected_files = [
        run / "manifest.json", run / "part-000.jsonl.gz", run / "tap.stderr.log",
        tap.account_dir / "LATEST.json", ws / "state" / "lock",
    ]
    for f in expected_files:
        assert f.is_file(), f
    assert list((ws / "logs").glob("pipeline-*.log")), "the JSON log is written"
    assert (run / "tap.stderr.log").read_text().startswith("tiny tap: starting")
    assert private_violations(ws) == []


def test_a_second_writer_exits_3_naming_the_holder(tmp_path: Path) -> None:
    tap = tiny_tap(tmp_path)
    with hold_lock(tmp_path, tap.workspace) as holder:
        res = extract(tap)
        assert res.returncode == 3, (res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        assert "busy" in res.stderr
        assert f"pid {holder.pid}" in res.stderr and "test-holder" in res.stderr
        assert str(tap.workspace) in res.stderr
        assert "hint:" in res.stderr
        assert not tap.account_dir.exists(), "a refused writer writes nothing into the vault"
    assert extract(tap).returncode == 0


def test_wait_waits_for_the_holder_then_runs(tmp_path: Path) -> None:
    tap = tiny_tap(tmp_path)
    with hold_lock(tmp_path, tap.workspace) as holder:
        waiter = subprocess.Popen([*CLI, "extract", tap.name, "--config", str(tap.config), "--wait", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  cwd=tmp_path, env=clean_env())
        try:
            lock_file = (tap.workspace / "state" / "lock").resolve()
            # the waiter has opened the lock file: it is inside its wait loop
            wait_for(lambda: has_open(waiter.pid, lock_file), timeout=30, what="the waiter to open the lock")
            assert waiter.poll() is None, "the waiter must not give up while the lock is held"
            assert not tap.account_dir.exists()
            assert holder.stdin is not None
            holder.stdin.write(b"release\n")
            holder.stdin.flush()
            out, err = waiter.communicate(timeout=60)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait()
    assert waiter.returncode == 0, err
    [run] = runs_of(tap.account_dir)
    assert verify_parts(run) == tap.records


def test_a_lock_left_by_a_killed_holder_does_not_block(tmp_path: Path) -> None:
    tap = tiny_tap(tmp_path)
    with hold_lock(tmp_path, tap.workspace) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    lock_file = tap.workspace / "state" / "lock"
    assert lock_file.read_text().split()[0] == str(holder.pid), "the stale file still names the dead holder"
    res = extract(tap)
    assert res.returncode == 0, res.stderr
    assert len(runs_of(tap.account_dir)) == 1
    # released cleanly: the file is emptied ("not held") and no longer names the dead holder
    assert str(holder.pid) not in lock_file.read_text().split()[:1]


def test_loose_permissions_exit_4_unless_skipped(tmp_path: Path) -> None:
    tap = tiny_tap(tmp_path)
    assert extract(tap).returncode == 0
    [run] = runs_of(tap.account_dir)
    cases = [
        (tap.workspace / "vault" / "test", 0o755),  # a folder inside, world-readable
        (run / "manifest.json", 0o644),  # a file
        (tap.workspace / "logs", 0o710),  # group access only is still too loose
        (tap.workspace, 0o750),  # the workspace itself
    ]
    for loose, mode in cases:
        before = stat.S_IMODE(loose.stat().st_mode)
        os.chmod(loose, mode)
        res = extract(tap)
        assert res.returncode == 4, (loose, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        assert str(loose) in res.stderr
        assert "chmod" in res.stderr and "--skip-permissions" in res.stderr
        assert len(runs_of(tap.account_dir)) == 1, "a refused run writes nothing"
        if loose != tap.workspace:
            os.chmod(loose, before)
    res = extract(tap, "--skip-permissions")
    assert res.returncode == 0, res.stderr
    assert len(runs_of(tap.account_dir)) == 2
    assert verify_parts(runs_of(tap.account_dir)[-1]) == tap.records


# ---------------------------------------------------------------- helpers


class HoldLock:
    """A separate process that holds the workspace lock until it reads a line on stdin."""

    def __init__(self, tmp_path: Path, workspace: Path) -> None:
        self.ready = tmp_path / f"holder-ready-{os.urandom(4).hex()}"
        self.workspace = workspace
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(self.workspace), str(self.ready)],
                                     stdin=subprocess.PIPE, cwd=REPO, env=clean_env())
        proc = self.proc
        wait_for(lambda: self.ready.exists() or proc.poll() is not None, timeout=30, what="the lock holder")
        assert self.ready.exists(), f"the holder exited early with {proc.returncode}"
        return proc

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        assert proc is not None
        if proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.write(b"release\n")
                proc.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def hold_lock(tmp_path: Path, workspace: Path) -> HoldLock:
    return HoldLock(tmp_path, workspace)


def has_open(pid: int, target: Path) -> bool:
    """Whether process ``pid`` has ``target`` open (Linux /proc)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return False
    for fd in fds:
        try:
            if Path(os.readlink(fd)) == target:
                return True
        except OSError:
            continue
    return False
