"""A failure alert fires on every run that ends badly: a failed task, a full disk, an
engine error, an interrupt. Each ending records the run (as far as the disk allows), prints
the summary line, runs the on_failure hook, releases the lock, and leaves no torn log line,
no hidden ``.partial`` run and no 0-byte temporary file.

Real CLI subprocesses throughout; the full disk is a real 1 MiB tmpfs where the machine
allows mounting one (root), and otherwise a real ``RLIMIT_FSIZE`` on the engine process;
the engine error is injected through a ``sitecustomize`` module on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import (
    REPO,
    account_dir,
    clean_env,
    demo_extractor,
    demo_mappings,
    log_events,
    run_cli,
    wait_for,
    write_config,
)

HOOK = """\
import sys
from pathlib import Path
Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())
"""


def hook(tmp: Path) -> tuple[list[str], Path]:
    script = tmp / "hook.py"
    script.write_text(HOOK)
    out = tmp / "hook-called.json"
    return [sys.executable, str(script), str(out)], out


def no_ui(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          preexec: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lorch_tui.tui_main", "--no-ui", *args], capture_output=True,
                          text=True, cwd=REPO, env=env or clean_env(), timeout=timeout, preexec_fn=preexec)


def summary_is_last_line(res: subprocess.CompletedProcess[str], status: str) -> None:
    last = res.stdout.strip().splitlines()[-1]
    assert f" {status}: " in last and "tasks ok" in last and "log: " in last, res.stdout


def log_lines_whole(ws: Path) -> None:
    for f in (ws / "logs").glob("pipeline-*.log"):
        data = f.read_bytes()
        assert not data or data.endswith(b"\n"), "no torn last line"
        for line in data.splitlines():
            orjson.loads(line)


def no_leftovers(ws: Path) -> None:
    assert not list(ws.rglob(".run_id=*.partial")), "no hidden partial run"
    assert not [p for p in ws.rglob("*.tmp-*") if p.is_file()], "no temporary file"


def lock_free(ws: Path) -> None:
    import fcntl

    with open(ws / "state" / "lock", "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ------------------------------------------------------------------ a full disk




def test_a_full_disk_still_alarms_summarises_and_leaves_nothing_torn(tmp_path: Path, small_disk: Path) -> None:
    ws = small_disk / "ws"
    command, called = hook(tmp_path)
    ex = demo_extractor("full", "gmail", records=6000, seed=2, retries=5, retry_backoff_s=0)
    cfg = write_config(tmp_path, [ex], workspace=str(ws), on_failure=command)
    res = no_ui("--config", str(cfg), "--stage", "extract", timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    summary_is_last_line(res, "failed")
    alarm = orjson.loads(called.read_bytes())
    assert alarm["status"] == "failed" and alarm["failed_tasks"][0]["error_code"] in ("WRITE_FAILED", "DISK_FULL")
    assert alarm["failed_tasks"][0]["attempt"] == 1, "a full disk is not retried"
    log_lines_whole(ws)
    no_leftovers(ws)
    lock_free(ws)
    # the failed attempt freed its space, so the history caught up and holds the run
    with sqlite3.connect(ws / "state" / "lorch.sqlite") as db:
        assert db.execute("SELECT run_id, status FROM runs").fetchall() == [(alarm["run_id"], "failed")]
    for run in account_dir(ws, ex).glob("dt=*/run_id=*"):  # a run whose manifest fitted is marked
        assert orjson.loads((run / "manifest.json").read_bytes())["status"] == "failed"


def _fsize(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_log_that_cannot_grow_is_cut_back_not_torn(tmp_path: Path) -> None:
    """RLIMIT_FSIZE on the engine (and its workers): the write that crosses the limit is a
    real short write, then EFBIG, as on a disk that fills mid-line."""
    limit = 64 * 1024
    ws = tmp_path / "ws"
    command, called = hook(tmp_path)
    ex = demo_extractor("big", "gmail", records=3000, seed=2)
    cfg = write_config(tmp_path, [ex], on_failure=command)
    logs = ws / "logs"
    logs.mkdir(parents=True, mode=0o700)
    ws.chmod(0o700)
    log = logs / f"pipeline-{datetime.now(UTC):%Y-%m-%d}.log"
    filler = orjson.dumps({"level": "info", "type": "filler", "pad": "x" * 200}) + b"\n"
    log.write_bytes(filler * ((limit - 150) // len(filler)))
    log.chmod(0o600)
    before = log.read_bytes()
    res = no_ui("--config", str(cfg), "--stage", "extract", timeout=300, preexec=_fsize(limit))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    summary_is_last_line(res, "failed")
    # the lack of space is said once, by the face (DISK_FULL), not by every writer that met it
    said = res.stderr.count("free space") + res.stderr.count("the JSON log cannot be written")
    assert said == 1, res.stderr
    data = log.read_bytes()
    assert data.startswith(before) and data.endswith(b"\n")
    log_lines_whole(ws)
    assert orjson.loads(called.read_bytes())["status"] == "failed"
    no_leftovers(ws)
    lock_free(ws)


# ------------------------------------------------------------------ an engine error

SITE = """\
import os
if os.environ.get("LORCH_TEST_BREAK_RELAY"):
    import asyncio
    import engine.run.task

    async def _broken(self, deadline_s):
        while self.worker is not None and not (await self.worker.readline()):
            pass
        raise RuntimeError("injected engine failure")

    engine.run.task.TaskProcess._relay = _broken
"""


def test_an_engine_error_is_recorded_summarised_and_alarmed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    command, called = hook(tmp_path)
    slow = demo_extractor("slow", "gmail", records=50, faults={"hang_after": 5})
    cfg = write_config(tmp_path, [slow], on_failure=command)
    env = clean_env(PYTHONPATH=f"{site}{os.pathsep}{REPO}", LORCH_TEST_BREAK_RELAY="1")
    res = no_ui("--config", str(cfg), "--stage", "extract", env=env, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert "internal error (RuntimeError)" in res.stderr and "injected" not in res.stderr
    summary_is_last_line(res, "failed")
    ws = tmp_path / "ws"
    alarm = orjson.loads(called.read_bytes())
    assert alarm["internal_error"] == "RuntimeError"
    assert alarm["failed_tasks"][0]["error_code"] == "INTERNAL_ERROR"
    with sqlite3.connect(ws / "state" / "lorch.sqlite") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    started = [e for e in log_events(ws) if e["type"] == "task_started"]
    for e in started:  # the worker (and its hanging tap) is gone, the lock with it
        with pytest.raises(ProcessLookupError):
            os.kill(e["pid"], 0)
    lock_free(ws)
    assert "injected engine failure" in (ws / "diagnostics" / "engine" / "internal-error.log").read_text()


# ------------------------------------------------------------------ an interrupt


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["int", "term", "hup"])
def test_an_interrupt_runs_the_hook_and_prints_the_summary(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C, kill, and a terminal or ssh session closing (SIGHUP: it ended the run with 129,
    no hook, no summary, the history left "running") all cancel cleanly."""
    command, called = hook(tmp_path)
    slow = demo_extractor("slow", "gmail", records=50, faults={"hang_after": 5})
    cfg = write_config(tmp_path, [slow], on_failure=command)
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.tui_main", "--no-ui", "--config", str(cfg),
                             "--stage", "extract"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, env=clean_env())
    ws = tmp_path / "ws"
    wait_for(lambda: any(e["type"] == "task_progress" for e in log_events(ws)) if (ws / "logs").is_dir() else False,
             60, "the tap to be running")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    last = out.strip().splitlines()[-1]
    assert " cancelled: " in last and "log: " in last
    alarm = orjson.loads(called.read_bytes())
    assert alarm["interrupted"] is True and alarm["status"] == "cancelled"
    lock_free(ws)
    con = sqlite3.connect(ws / "state" / "lorch.sqlite")
    assert [r[0] for r in con.execute("SELECT status FROM runs")] == ["cancelled"]
    con.close()


def test_status_calls_a_run_whose_process_was_killed_abandoned(tmp_path: Path) -> None:
    """`kill -9` of the process running a run left `status` saying "running" for good."""
    slow = demo_extractor("slow", "gmail", records=50, faults={"hang_after": 5})
    cfg = write_config(tmp_path, [slow])
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "run", "--config", str(cfg), "--stage", "extract"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=clean_env())
    ws = tmp_path / "ws"
    wait_for(lambda: any(e["type"] == "task_progress" for e in log_events(ws)) if (ws / "logs").is_dir() else False,
             60, "the tap to be running")
    running = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "status", "--config", str(cfg), "--json"],
                             capture_output=True, text=True, cwd=REPO, env=clean_env(), timeout=60)
    assert orjson.loads(running.stdout)["last_run"]["status"] == "running"  # alive: it is running
    proc.kill()
    proc.wait(timeout=30)

    def free() -> bool:
        try:
            lock_free(ws)
        except BlockingIOError:  # the worker (told by PR_SET_PDEATHSIG) is still on its way out
            return False
        return True
    wait_for(free, 30, "the lock to be free")
    res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "status", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=REPO, env=clean_env(), timeout=60)
    line = next(x for x in res.stdout.splitlines() if x.startswith("last run:"))
    assert " abandoned," in line, res.stdout
    assert "ended without recording the end" in res.stdout
    killed_run = orjson.loads(running.stdout)["last_run"]["run_id"]
    # the killed run could not alarm: the next run, which records it abandoned, does (even a good one)
    command, called = hook(tmp_path)
    cfg = write_config(tmp_path, [demo_extractor("slow", "gmail", records=3)], on_failure=command)
    assert subprocess.run([sys.executable, "-m", "lorch_tui.cli", "run", "--config", str(cfg), "--stage", "extract"],
                          capture_output=True, cwd=REPO, env=clean_env(), timeout=120).returncode == 0
    summary = orjson.loads(called.read_bytes())
    assert summary["abandoned_runs"] == [killed_run] and summary["status"] == "success"


def test_a_worker_that_cannot_start_fails_its_task_not_the_engine(tmp_path: Path) -> None:
    """The worker's diagnostics file cannot be created (its folder is a file): the task fails
    with WRITE_FAILED, not retried, and the run still ends with its summary and alarm."""
    command, called = hook(tmp_path)
    ex = demo_extractor("one", "gmail", records=3, retries=3, retry_backoff_s=0)
    cfg = write_config(tmp_path, [ex], on_failure=command)
    ws = tmp_path / "ws"
    (ws / "diagnostics").mkdir(parents=True, mode=0o700)
    ws.chmod(0o700)
    (ws / "diagnostics" / "extract").write_bytes(b"")
    (ws / "diagnostics" / "extract").chmod(0o600)
    res = no_ui("--config", str(cfg), "--stage", "extract")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr and "internal error" not in res.stderr
    summary_is_last_line(res, "failed")
    [failed] = orjson.loads(called.read_bytes())["failed_tasks"]
    assert (failed["error_code"], failed["attempt"]) == ("WRITE_FAILED", 1)
    lock_free(ws)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_device_under_standard_output_is_not_the_workspaces_disk_full(tmp_path: Path) -> None:
    """A cron log on a full partition, the workspace on another disk: the run succeeded and
    LATEST moved, but every face said `DISK_FULL ... LATEST did not move` about the workspace."""
    cfg = write_config(tmp_path, [demo_extractor("one", "gmail", records=5)])
    # cron sets no PYTHONUNBUFFERED: the buffered rest was written at exit, which failed with 120
    buffered = {k: v for k, v in clean_env().items() if k != "PYTHONUNBUFFERED"}
    for env in (clean_env(PYTHONUNBUFFERED="1"), buffered):
        for args, prog in ((["--no-ui", "--config", str(cfg)], "lorch_tui.tui_main"),
                           (["status", "--config", str(cfg)], "lorch_tui.cli"),
                           (["list", "extractors", "--config", str(cfg)], "lorch_tui.cli"),
                           (["run", "--json", "--config", str(cfg)], "lorch_tui.cli")):  # --json exited 0
            with open("/dev/full", "w") as full:
                res = subprocess.run([sys.executable, "-m", prog, *args], stdout=full, stderr=subprocess.PIPE,
                                     text=True, cwd=REPO, env=env, timeout=120)
            assert res.returncode == 1, (args, res.returncode, res.stderr)
            assert "could not write the output" in res.stderr and "DISK_FULL" not in res.stderr, res.stderr
            assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    con = sqlite3.connect(tmp_path / "ws" / "state" / "lorch.sqlite")
    assert [r[0] for r in con.execute("SELECT status FROM runs")] == ["success"] * 4
    con.close()


def test_a_cancel_while_a_task_waits_to_retry_ends_it_cancelled(tmp_path: Path) -> None:
    """Cancelled in its retry backoff, the task never said how it ended (its row stayed
    `retrying` in the dashboard) and the chain after it read UPSTREAM_FAILED."""
    ex = demo_extractor("flaky", "gmail", records=20, faults={"fail_after": 3}, retries=3, retry_backoff_s=30)
    cfg = write_config(tmp_path, [ex], stages={"canonize": {"mappings": demo_mappings()}})
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.tui_main", "--no-ui", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=clean_env())
    ws = tmp_path / "ws"
    wait_for(lambda: any(e["type"] == "task_retry" for e in log_events(ws)) if (ws / "logs").is_dir() else False,
             60, "the retry backoff")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    ends = [e for e in log_events(ws) if e["type"] == "task_finished"]
    extract = [e for e in ends if e["task_id"] == "extract:flaky"]
    assert [(e["status"], e.get("error_code"), e["attempt"]) for e in extract] == [
        ("failed", "TAP_EXIT_NONZERO", 1), ("cancelled", "CANCELLED", 2)], extract
    after = {e["task_id"]: e.get("error_code") for e in ends if e["task_id"] != "extract:flaky"}
    assert after and set(after.values()) == {"CANCELLED"}, after
    lock_free(ws)


def test_a_run_refused_before_it_begins_calls_the_hook_too(tmp_path: Path) -> None:
    """A reviewer's cron night: a workspace made with `mkdir` (0755) refused every run with
    exit 4, and a stuck lock holder every run with exit 3, and the on_failure hook never ran:
    nobody learnt of it. The hook now gets a `run_refused` summary (no message: it names
    paths), and writes nothing into the refused workspace."""
    from engine.store.lock import WorkspaceLock
    from engine.store.workspace import Workspace

    command, called = hook(tmp_path)
    cfg = write_config(tmp_path, [demo_extractor("one", "gmail", records=3)], on_failure=command)
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o755)
    ws.chmod(0o755)
    res = no_ui("--config", str(cfg))
    assert res.returncode == 4, res.stdout + res.stderr
    got = orjson.loads(called.read_bytes())
    assert (got["event"], got["status"], got["reason"], got["exit_code"]) == ("run_refused", "refused",
                                                                              "WORKSPACE_UNSAFE", 4)
    assert got["workspace"] == str(ws) and got["run_id"] is None and not (ws / "diagnostics").exists()
    called.unlink()
    ws.chmod(0o700)
    lock = WorkspaceLock(Workspace(ws), command="a test").acquire()
    try:
        res = run_cli("run", "--config", str(cfg))
    finally:
        lock.release()
    assert res.returncode == 3, res.stdout + res.stderr
    got = orjson.loads(called.read_bytes())
    assert (got["reason"], got["exit_code"]) == ("WORKSPACE_BUSY", 3)
    called.unlink()
    assert no_ui("--config", str(cfg)).returncode == 0 and not called.exists(), "a good night calls nothing"
