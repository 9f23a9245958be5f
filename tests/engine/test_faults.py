"""Faults with a clear error and nothing lost: taps that misbehave, a damaged vault, a full disk.

test_extract.py already covers a nonzero exit, malformed JSON, RECORD before SCHEMA,
invalid UTF-8, a hang past the timeout, unknown message types, a 16 MB line and a 20 MB
stderr flood; test_canonize.py a tampered part and a truncated gzip on their own. Here:
the 100 MB stderr flood, stdout closed early (with exit 0, and then hanging), every kind of
vault damage at once with the healthy accounts going on, ``lorchestra verify``, and writes
that fail for real (a file-size limit on the process, and a full tmpfs).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.demo_taps.canary import CANARIES
from tests.helpers import (
    REPO,
    account_dir,
    clean_env,
    demo_extractor,
    demo_mappings,
    latest,
    log_events,
    manifest,
    run_cli,
    runs_of,
    verify_parts,
    write_config,
)
from tests.invariants import canonical_version, vault_problems


def finished(ws: Path, stage: str | None = None) -> list[dict[str, Any]]:
    return [e for e in log_events(ws) if e["type"] == "task_finished" and (stage is None or e["stage"] == stage)]


def no_canary(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"PHI canary {canary!r} leaked into {where}"


# ------------------------------------------------------------------ taps


def test_a_100_megabyte_stderr_flood_is_drained_and_stays_in_the_vault(tmp_path: Path) -> None:
    ex = demo_extractor("flood", "dataverse", records=30, faults={"stderr_flood_bytes": 100 << 20})
    cfg = write_config(tmp_path, [ex])
    res = run_cli("extract", "flood", "--config", str(cfg), "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    acct = account_dir(tmp_path / "ws", ex)
    [run] = runs_of(acct)
    assert verify_parts(run) == 30, "every record arrived despite the flood"
    assert (run / "tap.stderr.log").stat().st_size >= 100 << 20
    event = finished(tmp_path / "ws")[-1]
    assert event["status"] == "success" and event["stderr_lines"] > 100_000
    assert len(res.stdout) + len(res.stderr) < 20_000, "the flood never reaches our output"
    no_canary(res.stdout + res.stderr, "the output of `lorchestra extract --json`")
    log = b"".join(p.read_bytes() for p in (tmp_path / "ws" / "logs").glob("*.log"))
    assert len(log) < 20_000
    no_canary(log.decode(), "the pipeline log")


def test_stdout_closed_early_keeps_what_arrived(tmp_path: Path) -> None:
    """A tap that closes stdout after 15 records and exits 0 looks like a short sync: the 15
    records are kept, checksummed and become LATEST, nothing hangs (docs/configuration.md)."""
    ex = demo_extractor("early", "gmail", records=40, faults={"close_stdout_after": 15})
    cfg = write_config(tmp_path, [ex])
    res = run_cli("extract", "early", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    acct = account_dir(tmp_path / "ws", ex)
    [run] = runs_of(acct)
    assert manifest(run)["status"] == "success" and verify_parts(run) == 15
    assert latest(acct)["records"] == 15  # type: ignore[index]
    assert b"closed stdout after 15 records" in (run / "tap.stderr.log").read_bytes()


HANG_AFTER_CLOSE = textwrap.dedent("""\
    import json, os, sys, time
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    print(json.dumps({"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]}))
    for i in range(7):
        print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i}}))
    sys.stdout.flush()
    os.close(1)
    print("stdout closed; still busy", file=sys.stderr, flush=True)
    time.sleep(3600)
""")


def test_stdout_closed_then_hanging_times_out_and_keeps_the_records(tmp_path: Path) -> None:
    script = tmp_path / "tap_close_hang.py"
    script.write_text(HANG_AFTER_CLOSE)
    ex = {"name": "ch", "domain": "test", "source": "tiny", "account": "ch", "kind": "singer",
          "command": [sys.executable, str(script)], "timeout_s": 2}
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 1}})
    res = run_cli("extract", "ch", "--config", str(cfg), timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    acct = tmp_path / "ws" / "vault" / "test" / "tiny" / "ch"
    [run] = runs_of(acct)
    m = manifest(run)
    assert m["status"] == "timeout" and m["error_code"] == "TIMEOUT"
    assert verify_parts(run) == 7, "the records that arrived are kept in the (timed-out) run"
    assert latest(acct) is None
    assert finished(tmp_path / "ws")[-1]["error_code"] == "TIMEOUT"


LEAVES_A_CHILD = textwrap.dedent("""\
    import json, os, signal, sys, time
    mode = sys.argv[1]
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    print(json.dumps({"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]}))
    for i in range(5):
        print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i}}))
    sys.stdout.flush()
    if mode == "background":  # a helper in the tap's own group writes the rest, after the tap exits
        if os.fork() == 0:
            for i in range(5, 11):
                time.sleep(0.4)
                print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i}}), flush=True)
            os._exit(0)
        sys.exit(0)
    if os.fork() == 0:
        os.setsid()  # out of the tap's process group, stdout still open
        with open(sys.argv[2], "w") as f:
            f.write(str(os.getpid()))
        if mode == "forker":  # keeps making more holders of the pipe
            while True:
                if os.fork() == 0:
                    time.sleep(3600)
                    os._exit(0)
                time.sleep(0.02)
        time.sleep(3600)
        os._exit(0)
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)
""")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(("mode", "status"), [("exit", "failed"), ("hang", "timeout"), ("forker", "failed")])
def test_a_child_the_tap_left_holding_stdout_ends_with_the_tap(tmp_path: Path, mode: str, status: str) -> None:
    """A tap that forks a helper into a session of its own (out of reach of the stop to the
    tap's group) kept the pipe open: a finished tap looked like a hang (until its timeout), a
    timed-out one outlived its deadline until the engine killed the worker, which left a
    `.partial` run with no manifest. The helper is killed once the tap has ended, and the
    run is not a success (what it still had to write is missing): LATEST stays, no retry."""
    script = tmp_path / "tap_leaves_child.py"
    script.write_text(LEAVES_A_CHILD)
    pid_file = tmp_path / "child.pid"
    ex = {"name": "lc", "domain": "test", "source": "tiny", "account": "lc", "kind": "singer",
          "command": [sys.executable, str(script), mode, str(pid_file)], "timeout_s": 60 if mode == "exit" else 2,
          "retries": 0}
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 1}})
    ex["retries"] = 0 if status == "timeout" else 2  # never retried: the tap would leave its helper again
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 1}})
    res = run_cli("extract", "lc", "--config", str(cfg), timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    acct = tmp_path / "ws" / "vault" / "test" / "tiny" / "lc"
    [run] = runs_of(acct)
    assert manifest(run)["status"] == status and verify_parts(run) == 5
    assert latest(acct) is None
    done = finished(tmp_path / "ws")[-1]
    code = "TIMEOUT" if status == "timeout" else "TAP_LEFTOVER_KILLED"
    assert (done["status"], done["error_code"]) == (status, code) and done["duration_s"] < 30, done
    leader = int(pid_file.read_text())
    assert not _alive(leader), "the leftover helper is gone"
    deadline = time.monotonic() + 10  # SIGKILLed: gone once the kernel has reaped them
    while (left := [p for p in subprocess.run(["pgrep", "-g", str(leader)], capture_output=True,
                                                text=True).stdout.split() if _alive(int(p))]):
        assert time.monotonic() < deadline, f"processes it forked still run: {left}"
        time.sleep(0.05)


def test_a_helper_in_the_tap_s_own_group_is_read_to_its_end(tmp_path: Path) -> None:
    """A tap that exits 0 while a helper it started in the background (its own process group)
    still writes records: those are the tap's records, read to the end, nothing killed."""
    script = tmp_path / "tap_background.py"
    script.write_text(LEAVES_A_CHILD)
    ex = {"name": "bg", "domain": "test", "source": "tiny", "account": "bg", "kind": "singer",
          "command": [sys.executable, str(script), "background", str(tmp_path / "unused")], "retries": 0}
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 1}})
    res = run_cli("extract", "bg", "--config", str(cfg), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(tmp_path / "ws" / "vault" / "test" / "tiny" / "bg")
    assert manifest(run)["status"] == "success" and verify_parts(run) == 11
    assert not any(e.get("code") == "TAP_LEFTOVER_KILLED" for e in log_events(tmp_path / "ws"))


HANG_TAP = textwrap.dedent("""\
    import json, os, signal, sys, time
    mode, pid_file = sys.argv[1], sys.argv[2]
    if mode != "obey-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(pid_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {os.getpgrp()}")
    os.rename(pid_file + ".tmp", pid_file)
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    if mode != "quiet":
        print(json.dumps({"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]}))
        print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": 0}}), flush=True)
    i = 0
    while True:  # never ends on its own; says something on stderr now and then (PHI in real life)
        time.sleep(0.2)
        i += 1
        print(f"still here {i}", file=sys.stderr, flush=True)
        if mode == "writes-on":
            print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i}}), flush=True)
""")


def _group_left(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if _alive(int(p))]


def _kill_all(pid: int, pgid: int) -> None:
    """Whatever of the test's tap is left, gone (a failed test must not leave it running)."""
    for p in [pid, *_group_left(pgid)]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def _wait_group_gone(pid: int, pgid: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while _alive(pid) or _group_left(pgid):
        assert time.monotonic() < deadline, f"the tap's group survives: {pid} {_group_left(pgid)}"
        time.sleep(0.05)


def _wrapper(tmp_path: Path, mode: str, *, redirect: str = "") -> tuple[Path, Path]:
    """A shell wrapper that runs the real tap in the background and exits 0 a second later."""
    tap = tmp_path / "hang_tap.py"
    tap.write_text(HANG_TAP)
    pid_file = tmp_path / "tap.pid"
    wrapper = tmp_path / "wrapper.sh"
    echo = ""
    if redirect:  # the wrapper writes the records itself; its helper holds no stdout
        echo = ("echo '{\"type\": \"SCHEMA\", \"stream\": \"items\", \"schema\": {\"type\": \"object\"}, "
                "\"key_properties\": [\"id\"]}'\necho '{\"type\": \"RECORD\", \"stream\": \"items\", "
                "\"record\": {\"id\": 0}}'\n")
    wrapper.write_text(f"#!/bin/sh\n{echo}{sys.executable} {tap} {mode} {pid_file} {redirect} &\nsleep 1\nexit 0\n")
    wrapper.chmod(0o755)
    return wrapper, pid_file


@pytest.mark.parametrize("mode", ["ignore-term", "obey-term", "writes-on"])
def test_a_wrapper_that_exits_leaving_a_hanging_tap_times_out_and_kills_its_group(tmp_path: Path, mode: str) -> None:
    """The reviewer's cron case: a wrapper script runs the real tap in the background and
    exits 0; the tap ignores SIGTERM and hangs holding stdout. The stop waited on the wrapper
    (already gone) and never sent SIGKILL: the extract ran until the engine's 30 s backstop
    killed the worker, the run stayed a hidden `.partial` with no manifest, and the tap lived
    on (parent pid 1), writing into that run's tap.stderr.log. Now the tap's group gets
    SIGKILL after the grace period whether or not its leader has ended: `timeout` within
    timeout_s + cancel_grace_s, the records that arrived kept in the published run."""
    wrapper, pid_file = _wrapper(tmp_path, mode)
    ex = {"name": "wr", "domain": "test", "source": "tiny", "account": "wr", "kind": "singer",
          "command": [str(wrapper)], "timeout_s": 5, "retries": 0}
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 2}})
    t0 = time.monotonic()
    res = run_cli("extract", "wr", "--config", str(cfg), timeout=120)
    elapsed = time.monotonic() - t0
    pid, pgid = map(int, pid_file.read_text().split())
    try:
        assert res.returncode == 1, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        done = finished(tmp_path / "ws")[-1]
        assert (done["status"], done["error_code"]) == ("timeout", "TIMEOUT"), done
        assert 4.5 < done["duration_s"] < 20 and elapsed < 25, (done, elapsed)
        acct = tmp_path / "ws" / "vault" / "test" / "tiny" / "wr"
        [run] = runs_of(acct)
        assert not list(acct.glob("dt=*/.run_id=*")), "no hidden .partial run is left"
        m = manifest(run)
        assert (m["status"], m["error_code"]) == ("timeout", "TIMEOUT")
        records = verify_parts(run)
        assert records >= 1 if mode == "writes-on" else records == 1, records
        assert latest(acct) is None
        _wait_group_gone(pid, pgid)
        size = (run / "tap.stderr.log").stat().st_size
        time.sleep(0.5)
        assert (run / "tap.stderr.log").stat().st_size == size, "nothing writes into the run any more"
    finally:
        _kill_all(pid, pgid)


def test_a_helper_left_in_the_tap_s_group_after_its_output_ended_is_stopped(tmp_path: Path) -> None:
    """A wrapper writes its records and exits 0, leaving a helper in its group that holds no
    stdout and ignores SIGTERM: the output ends, the run is a success as before, and the
    helper is stopped with the group (SIGKILL after the grace period) instead of living on."""
    wrapper, pid_file = _wrapper(tmp_path, "quiet", redirect=">/dev/null")
    ex = {"name": "ql", "domain": "test", "source": "tiny", "account": "ql", "kind": "singer",
          "command": [str(wrapper)], "timeout_s": 60, "retries": 0}
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 2}})
    res = run_cli("extract", "ql", "--config", str(cfg), timeout=120)
    pid, pgid = map(int, pid_file.read_text().split())
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        done = finished(tmp_path / "ws")[-1]
        assert done["status"] == "success" and done["duration_s"] < 20, done
        acct = tmp_path / "ws" / "vault" / "test" / "tiny" / "ql"
        [run] = runs_of(acct)
        assert manifest(run)["status"] == "success" and verify_parts(run) == 1
        assert latest(acct) is not None
        _wait_group_gone(pid, pgid)
    finally:
        _kill_all(pid, pgid)


# ------------------------------------------------------------------ vault damage


DAMAGE = {
    "tampered": "CHECKSUM_MISMATCH",
    "no-manifest": "MANIFEST_MISSING",
    "run-gone": "RUN_MISSING",
    "truncated": "PART_CORRUPT",
}


def _damage(acct: Path, how: str) -> Path:
    """Damage the LATEST run of an account; return the path a person should look at."""
    [run] = runs_of(acct)
    m = manifest(run)
    part = run / m["parts"][-1]["file"]
    if how == "tampered":
        raw = bytearray(part.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        part.write_bytes(bytes(raw))
        return part
    if how == "no-manifest":
        (run / "manifest.json").unlink()
        return run / "manifest.json"
    if how == "run-gone":
        shutil.rmtree(run)
        return run
    cut = part.read_bytes()[: m["parts"][-1]["bytes"] // 2]  # truncated, manifest updated to match
    part.write_bytes(cut)
    m["parts"][-1].update(sha256=hashlib.sha256(cut).hexdigest(), bytes=len(cut))
    (run / "manifest.json").write_bytes(orjson.dumps(m))
    return part


@pytest.fixture
def damaged(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, dict[str, Any]], dict[str, Any]]]:
    """A workspace whose accounts were all canonized, then four of them damaged."""
    taps = {"tampered": "gmail", "no-manifest": "dataverse", "run-gone": "quickbooks",
            "truncated": "sheets", "healthy": "msgraph"}
    exs = {n: demo_extractor(n, t, records=40, seed=5) for n, t in taps.items()}
    cfg = write_config(tmp_path, list(exs.values()),
                       stages={"extract": {"part_max_bytes": 4096}, "canonize": {"mappings": demo_mappings()}})
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    ws = tmp_path / "ws"
    before = {n: canonical_version(ws, e["source"], e["account"])[0] for n, e in exs.items()}
    where = {n: _damage(account_dir(ws, exs[n]), n) for n in DAMAGE}
    yield cfg, ws, exs, {"before": before, "where": where}


def test_canonize_refuses_each_damaged_account_and_the_others_go_on(damaged: Any) -> None:
    cfg, ws, exs, info = damaged
    res = run_cli("run", "--config", str(cfg), "--stage", "canonize", "--stage", "index", "--force")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    canon = {e["extractor"]: e for e in finished(ws, "canonize")[-5:]}
    for name, code in DAMAGE.items():
        assert canon[name]["status"] == "failed" and canon[name]["error_code"] == code, canon[name]
        assert code in res.stdout, f"the printed summary names {code}"
        # nothing lost: the account's canonical output is still the last good version
        ex = exs[name]
        now, problems = canonical_version(ws, ex["source"], ex["account"])
        assert not problems and now == info["before"][name]
    assert canon["healthy"]["status"] == "success"
    index = {e["extractor"]: e for e in finished(ws, "index")[-5:]}
    assert index["healthy"]["status"] in ("success", "skipped")
    assert all(index[n]["error_code"] == "UPSTREAM_FAILED" for n in DAMAGE)
    no_canary(res.stdout + res.stderr, "the output of `lorchestra run`")


def test_verify_reports_each_problem_with_its_code_and_path(damaged: Any) -> None:
    cfg, ws, exs, info = damaged
    res = run_cli("verify", "--config", str(cfg))
    assert res.returncode == 1, res.stdout + res.stderr
    for name in ("tampered", "no-manifest", "run-gone"):
        rel = str(info["where"][name].relative_to(ws))
        assert f"FAIL {DAMAGE[name]} {rel}" in res.stdout, res.stdout
    assert "PART_CORRUPT" not in res.stdout, "re-hashing alone cannot see a consistently rewritten part"
    deep = run_cli("verify", "--deep", "--json", "--config", str(cfg))
    assert deep.returncode == 1
    report = orjson.loads(deep.stdout)
    got = {(p["code"], p["path"]) for p in report["problems"]}
    assert ("PART_CORRUPT", str(info["where"]["truncated"].relative_to(ws))) in got
    assert {c for c, _ in got} == set(DAMAGE.values())
    assert report["accounts"] == 5
    for out in (res, deep):
        no_canary(out.stdout + out.stderr, "the output of `lorchestra verify`")
        assert "Traceback" not in out.stderr


def test_verify_all_checks_every_run_and_passes_a_healthy_workspace(tmp_path: Path) -> None:
    ok = demo_extractor("ok", "gmail", records=30)
    failing = demo_extractor("ok", "gmail", records=30, faults={"fail_after": 12})
    ws = tmp_path / "ws"
    cfg = write_config(tmp_path, [ok], stages={"extract": {"part_max_bytes": 2048}})
    assert run_cli("extract", "ok", "--config", str(cfg)).returncode == 0
    cfg = write_config(tmp_path, [failing], stages={"extract": {"part_max_bytes": 2048}})
    assert run_cli("extract", "ok", "--config", str(cfg)).returncode == 1
    for flags in ((), ("--all",), ("--all", "--deep")):
        res = run_cli("verify", *flags, "--config", str(cfg))
        assert res.returncode == 0, res.stdout
        assert "all verified" in res.stdout
    runs = runs_of(account_dir(ws, ok))
    failed_run = next(r for r in runs if manifest(r)["status"] == "failed")
    part = failed_run / manifest(failed_run)["parts"][0]["file"]
    part.write_bytes(part.read_bytes()[:-3])
    assert run_cli("verify", "--config", str(cfg)).returncode == 0, "the LATEST run is still intact"
    res = run_cli("verify", "--all", "--config", str(cfg))
    assert res.returncode == 1
    assert f"FAIL CHECKSUM_MISMATCH {part.relative_to(ws)}" in res.stdout
    (account_dir(ws, ok) / "LATEST.json").write_text('{"dt": "../../..", "run_id": "x"}')
    res = run_cli("verify", "--config", str(cfg))
    assert res.returncode == 1 and "LATEST_INVALID" in res.stdout
    res = run_cli("verify", "--config", str(cfg), "--workspace", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "no workspace" in res.stderr


# ------------------------------------------------------------------ a disk that fails


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _check_failed_write(ws: Path, ex: dict[str, Any], before: dict[str, Any] | None,
                        res: subprocess.CompletedProcess[str], code: str = "WRITE_FAILED") -> None:
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    acct = account_dir(ws, ex)
    assert latest(acct) == before, "LATEST stays where it was"
    assert vault_problems(acct) == []
    events = [orjson.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    final = [e for e in events if e["type"] == "task_finished" and e["stage"] == "extract"][-1]
    assert final["status"] == "failed" and final["error_code"] == code, final
    runs = runs_of(acct)
    if len(runs) == 2:  # the manifest could still be written: the run is marked
        m = manifest(runs[-1])
        assert m["status"] == "failed" and m["error_code"] == code
        verify_parts(runs[-1])
    else:  # it could not: the hidden run is removed (nothing could ever read it), no temp file stays
        assert len(runs) == 1 and not list(acct.glob("dt=*/.run_id=*.partial"))
    assert not [p for p in acct.rglob("*.tmp-*") if p.is_file()], "no 0-byte temporary manifest"


def test_a_write_beyond_the_file_size_limit_fails_the_run_cleanly(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes write() fail with EFBIG (Python ignores SIGXFSZ) in the worker that
    writes the vault part: a real failing write, no test hook in the engine."""
    small = demo_extractor("big", "gmail", records=20)
    cfg = write_config(tmp_path, [small])
    assert run_cli("extract", "big", "--config", str(cfg)).returncode == 0
    ws = tmp_path / "ws"
    before = latest(account_dir(ws, small))
    large = demo_extractor("big", "gmail", records=3000, seed=2)
    cfg = write_config(tmp_path, [large])
    res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "extract", "big", "--config", str(cfg), "--json"],
                         capture_output=True, text=True, cwd=REPO, env=clean_env(), timeout=300,
                         preexec_fn=_limit_file_size(512 * 1024))
    _check_failed_write(ws, large, before, res)
    assert len(runs_of(account_dir(ws, large))) == 2, "a small manifest still fits: the run is marked"




def test_a_full_disk_fails_the_run_cleanly(tmp_path: Path, small_disk: Path) -> None:
    ws = small_disk / "ws"
    small = demo_extractor("full", "gmail", records=20)
    cfg = write_config(tmp_path, [small], workspace=str(ws))
    assert run_cli("extract", "full", "--config", str(cfg)).returncode == 0
    before = latest(account_dir(ws, small))
    large = demo_extractor("full", "gmail", records=6000, seed=2)
    cfg = write_config(tmp_path, [large], workspace=str(ws))
    res = run_cli("extract", "full", "--config", str(cfg), "--json", timeout=300)
    _check_failed_write(ws, large, before, res, code="DISK_FULL")
    assert "DISK_FULL" in res.stderr and "internal error" not in res.stderr
    after = run_cli("verify", "--all", "--config", str(cfg))
    assert after.returncode == 0, after.stdout
