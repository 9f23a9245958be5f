"""The extract stage end to end: real demo taps, real worker subprocesses, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    REPO,
    account_dir,
    clean_env,
    demo_extractor,
    latest,
    log_events,
    manifest,
    run_cli,
    runs_of,
    verify_parts,
    wait_for,
    write_config,
)


def extract(cfg: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("extract", name, "--config", str(cfg), *extra)


def test_success_writes_a_checksummed_run_and_moves_latest(tmp_path: Path) -> None:
    ex = demo_extractor("mail1", "gmail", records=250)
    cfg = write_config(tmp_path, [ex], stages={"extract": {"part_max_bytes": 64 * 1024}})
    res = extract(cfg, "mail1")
    assert res.returncode == 0, res.stderr
    acct = account_dir(tmp_path / "ws", ex)
    [run] = runs_of(acct)
    m = manifest(run)
    assert m["status"] == "success" and m["records"] == 250
    assert len(m["parts"]) > 1, "a small part_max_bytes must roll parts over"
    assert verify_parts(run) == 250
    assert m["streams"]["messages"]["records"] == 250
    assert m["state"] is not None and m["compression_ratio"] > 1
    lat = latest(acct)
    assert lat is not None and lat["run_id"] == m["run_id"] and lat["records"] == 250
    assert (run / "tap.stderr.log").stat().st_size > 0
    assert "1 tasks ok" in res.stdout.replace("1/1", "1") or "success" in res.stdout


def test_same_second_reruns_get_distinct_run_ids(tmp_path: Path) -> None:
    ex = demo_extractor("mail1", "gmail", records=5)
    cfg = write_config(tmp_path, [ex])
    for _ in range(3):
        assert extract(cfg, "mail1").returncode == 0
    runs = runs_of(account_dir(tmp_path / "ws", ex))
    assert len({r.name for r in runs}) == 3
    assert latest(account_dir(tmp_path / "ws", ex))["run_id"] == manifest(runs[-1])["run_id"]  # type: ignore[index]


FAULTS = [
    ({"fail_after": 5, "exit_code": 3}, "failed", "TAP_EXIT_NONZERO"),
    ({"malformed_at": 4}, "failed", "TAP_OUTPUT_INVALID"),
    ({"record_before_schema": True}, "failed", "SCHEMA_MISSING"),
    ({"invalid_utf8_at": 3}, "failed", "TAP_OUTPUT_INVALID"),
    ({"hang_after": 3}, "timeout", "TIMEOUT"),
]


@pytest.mark.parametrize(("faults", "status", "code"), FAULTS, ids=[f[2] + "-" + next(iter(f[0])) for f in FAULTS])
def test_a_failing_tap_leaves_latest_untouched_and_records_the_run(
        tmp_path: Path, faults: dict[str, object], status: str, code: str) -> None:
    good = demo_extractor("acct", "dataverse", records=30)
    cfg = write_config(tmp_path, [good])
    assert extract(cfg, "acct").returncode == 0
    acct = account_dir(tmp_path / "ws", good)
    before = latest(acct)
    bad = demo_extractor("acct", "dataverse", records=30, faults=faults, timeout_s=3)
    cfg = write_config(tmp_path, [bad], stages={"extract": {"cancel_grace_s": 1}})
    res = extract(cfg, "acct")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert latest(acct) == before
    runs = runs_of(acct)
    assert len(runs) == 2
    failed = manifest(runs[-1])
    assert failed["status"] == status and failed["error_code"] == code
    verify_parts(runs[-1])
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"]
    assert finished[-1]["status"] == status and finished[-1]["error_code"] == code
    assert finished[-1]["latest_moved"] is False
    if code == "TAP_OUTPUT_INVALID":
        assert finished[-1]["line"] and finished[-1]["line"] > 1


def test_retries_with_backoff_then_fail(tmp_path: Path) -> None:
    ex = demo_extractor("qb", "quickbooks", records=10, faults={"fail_after": 2},
                        retries=2, retry_backoff_s=0.1)
    cfg = write_config(tmp_path, [ex])
    res = extract(cfg, "qb")
    assert res.returncode == 1
    events = log_events(tmp_path / "ws")
    retries = [e for e in events if e["type"] == "task_retry"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert [r["delay_s"] for r in retries] == [0.1, 0.2]
    starts = [e["attempt"] for e in events if e["type"] == "task_started"]
    assert starts == [1, 2, 3]
    runs = runs_of(account_dir(tmp_path / "ws", ex))
    assert [manifest(r)["attempt"] for r in runs] == [1, 2, 3]
    assert all(manifest(r)["status"] == "failed" for r in runs)
    assert latest(account_dir(tmp_path / "ws", ex)) is None


def test_unknown_messages_are_counted_and_skipped(tmp_path: Path) -> None:
    ex = demo_extractor("sh", "sheets", records=20, faults={"unknown_message_at": 5})
    cfg = write_config(tmp_path, [ex])
    assert extract(cfg, "sh").returncode == 0
    warnings = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_warning"]
    assert [w["code"] for w in warnings] == ["UNKNOWN_MESSAGE"]
    [run] = runs_of(account_dir(tmp_path / "ws", ex))
    assert verify_parts(run) == 20
    assert manifest(run)["streams"], "sheets streams recorded"


def test_sixteen_megabyte_record_line(tmp_path: Path) -> None:
    ex = demo_extractor("big", "msgraph", records=4, faults={"huge_record_at": 1, "huge_record_bytes": 16 << 20})
    cfg = write_config(tmp_path, [ex])
    res = extract(cfg, "big")
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(account_dir(tmp_path / "ws", ex))
    assert verify_parts(run) == 4
    assert manifest(run)["uncompressed_bytes"] > 16 << 20


def test_stderr_flood_stays_in_the_run_folder(tmp_path: Path) -> None:
    ex = demo_extractor("fl", "gmail", records=5, faults={"stderr_flood_bytes": 20 << 20})
    cfg = write_config(tmp_path, [ex])
    res = extract(cfg, "fl")
    assert res.returncode == 0
    [run] = runs_of(account_dir(tmp_path / "ws", ex))
    assert (run / "tap.stderr.log").stat().st_size >= 20 << 20
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert finished["stderr_lines"] > 1000
    assert len(res.stdout) + len(res.stderr) < 10_000


def _pids_with(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return [p for p in pids if p != os.getpid()]


def test_interrupt_cancels_cleanly_without_orphans(tmp_path: Path) -> None:
    ex = demo_extractor("hang", "gmail", records=50, faults={"hang_after": 10}, timeout_s=300)
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 2}})
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "extract", "hang", "--config", str(cfg)],
                            cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ws = tmp_path / "ws"
    wait_for(lambda: any(e["type"] == "task_progress" for e in log_events(ws))
             if (ws / "logs").exists() else False, what="progress")
    marker = str(tmp_path / "ws")
    wait_for(lambda: any("demo_taps" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
                         for p in _pids_with(marker)), what="tap running")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    acct = account_dir(ws, ex)
    [run] = runs_of(acct)
    assert manifest(run)["status"] == "cancelled"
    assert latest(acct) is None
    wait_for(lambda: not _pids_with(marker), timeout=10, what="no orphan processes")
    assert not list(acct.glob("dt=*/.run_id=*"))
