"""A full disk: DISK_FULL on the task and the run, one clear message, nothing half-written,
LATEST untouched, and the next run green once space is back.

Two ways to fill the disk, both real subprocess runs of ``lorchestra``:

* a 3 MiB tmpfs holds the workspace (when ``mount -t tmpfs`` is allowed, e.g. as root in
  CI's container); every writer, the engine's JSON log and run history included, meets a
  real ``ENOSPC``; then the tmpfs is remounted at 512 MiB and the next run must succeed;
* fault injection, which needs no privilege: ``tests/crashshim/sitecustomize.py`` makes a
  stage worker's fsyncs fail with ``ENOSPC`` (``LORCH_TEST_ENOSPC_FSYNC``), as a file system
  does when it runs out of space at flush time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import REPO, account_dir, clean_env, demo_extractor, demo_mappings, write_config
from tests.invariants import canonical_version, log_problems, vault_problems

SHIM = REPO / "tests" / "crashshim"


def _run(cfg: Path, *args: str, env: dict[str, str] | None = None,
         prog: str = "lorch_tui.cli") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", prog, *args, "--config", str(cfg)], cwd=REPO,
                          env=env or clean_env(), capture_output=True, text=True, timeout=300)


def _events(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _assert_clean_disk_full(res: subprocess.CompletedProcess[str], ws: Path) -> None:
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-2000:]
    assert "internal error" not in out and "Traceback" not in out, out[-2000:]
    assert "detached" not in out and "cannot write the run history" not in out, out[-2000:]
    messages = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(messages) == 1 and "DISK_FULL" in messages[0] and str(ws) in messages[0], res.stderr
    assert " free of " in messages[0]


def _assert_consistent(ws: Path, exs: list[dict[str, Any]]) -> None:
    assert not list(ws.glob("vault/*/*/*/dt=*/.run_id=*.partial")), "a partial run folder was left"
    for ex in exs:
        assert vault_problems(account_dir(ws, ex)) == []
        _, problems = canonical_version(ws, ex["source"], ex["account"])
        assert problems == []
    assert not list(ws.glob("canonical/*/.*.gen/.g*.partial"))
    assert log_problems(ws) == []


@pytest.fixture
def tmpfs(tmp_path: Path) -> Any:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True)
    if res.returncode != 0:
        pytest.skip("mount -t tmpfs is not allowed here; test_disk_full_by_fault_injection covers it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_tmpfs_workspace(tmpfs: Path, tmp_path: Path) -> None:
    ws = tmpfs / "ws"
    exs = [demo_extractor(f"acct{i}", tap, records=1000, seed=i)
           for i, tap in enumerate(("gmail", "gmail", "msgraph", "gmail"))]
    cfg = write_config(tmp_path, exs, stages={"canonize": {"mappings": demo_mappings()}})
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "ws"), str(ws)))
    latest_before: dict[str, bytes] = {}
    res = _run(cfg, "run", "--json")
    _assert_clean_disk_full(res, ws)
    events = _events(res.stdout)
    codes = {e["task_id"]: e.get("error_code") for e in events if e["type"] == "task_finished"}
    assert "DISK_FULL" in codes.values(), codes
    run_finished = [e for e in events if e["type"] == "run_finished"]
    assert run_finished and run_finished[0]["error_code"] == "DISK_FULL"
    _assert_consistent(ws, exs)
    for ex in exs:
        latest = account_dir(ws, ex) / "LATEST.json"
        if latest.exists():
            latest_before[ex["name"]] = latest.read_bytes()
    # the headless cron face says the same, once
    res = _run(cfg, "--no-ui", prog="lorch_tui.tui_main")
    _assert_clean_disk_full(res, ws)
    _assert_consistent(ws, exs)
    # space is back: the next run is green, verify passes
    assert subprocess.run(["mount", "-o", "remount,size=512m", str(tmpfs)]).returncode == 0
    res = _run(cfg, "run")
    assert res.returncode == 0, res.stderr[-2000:]
    res = _run(cfg, "verify", "--all", "--deep")
    assert res.returncode == 0, res.stdout[-2000:]
    _assert_consistent(ws, exs)


def test_disk_full_by_fault_injection(tmp_path: Path) -> None:
    exs = [demo_extractor("acct0", "gmail", records=40, seed=1),
           demo_extractor("acct1", "dataverse", records=40, seed=2)]
    cfg = write_config(tmp_path, exs, stages={"canonize": {"mappings": demo_mappings()}})
    ws = tmp_path / "ws"
    assert _run(cfg, "run").returncode == 0
    latest = {ex["name"]: (account_dir(ws, ex) / "LATEST.json").read_bytes() for ex in exs}
    canon = {ex["name"]: canonical_version(ws, ex["source"], ex["account"])[0] for ex in exs}
    for stage in ("extract", "canonize", "index"):
        env = clean_env(PYTHONPATH=str(SHIM), LORCH_TEST_ENOSPC_FSYNC="1")
        cfg = write_config(tmp_path, [demo_extractor("acct0", "gmail", records=40, seed=7),
                                      demo_extractor("acct1", "dataverse", records=40, seed=8)],
                           stages={"canonize": {"mappings": demo_mappings()}})
        if stage != "extract":  # new input for the later stage, then fill the disk there
            assert _run(cfg, "run", "--stage", "extract" if stage == "canonize" else "canonize").returncode == 0
        res = _run(cfg, "run", "--stage", stage, "--json", "--force", env=env)
        _assert_clean_disk_full(res, ws)
        events = _events(res.stdout)
        finals = [e for e in events if e["type"] == "task_finished" and e["stage"] == stage]
        assert finals and all(e["error_code"] == "DISK_FULL" for e in finals), finals
        assert [e["error_code"] for e in events if e["type"] == "run_finished"] == ["DISK_FULL"]
        _assert_consistent(ws, exs)
        if stage == "extract":
            assert {ex["name"]: (account_dir(ws, ex) / "LATEST.json").read_bytes() for ex in exs} == latest
        if stage == "canonize":
            assert {ex["name"]: canonical_version(ws, ex["source"], ex["account"])[0] for ex in exs} == canon
        res = _run(cfg, "run", "--stage", stage)
        assert res.returncode == 0, res.stderr[-2000:]
        canon = {ex["name"]: canonical_version(ws, ex["source"], ex["account"])[0] for ex in exs}
    assert _run(cfg, "verify", "--all").returncode == 0


def test_sqlite_failing_to_grow_its_shared_memory_file_is_a_full_disk() -> None:
    """On a full volume a WAL index first fails growing its `-shm` file: SQLite says
    SQLITE_IOERR_SHMSIZE (an I/O error), and the index stage said INDEX_DB_ERROR with no word
    of the disk. It is DISK_FULL now, as SQLITE_FULL is; other I/O errors stay what they are."""
    import sqlite3

    from engine.errors import from_os_error
    from engine.index.outcome import sqlite_code

    def error(code: int) -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode = code  # what the sqlite3 module sets from the extended result code
        return exc

    assert sqlite_code(error(4874)) == "DISK_FULL"  # SQLITE_IOERR_SHMSIZE
    assert sqlite_code(error(13)) == "DISK_FULL"  # SQLITE_FULL
    assert sqlite_code(error(10)) == sqlite_code(error(3338)) == "INDEX_DB_ERROR"  # IOERR, IOERR_FSYNC
    said = from_os_error(error(4874), Path("/tmp"))
    assert said is not None and "full" in str(said).lower()
