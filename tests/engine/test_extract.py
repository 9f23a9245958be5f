"""The extract stage end to end: real demo taps, real worker subprocesses, real files."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
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


def test_many_unknown_messages_give_two_warnings_with_the_count(tmp_path: Path) -> None:
    """A tap that sends a METRIC after every record gave one warning per line (100,000 lines
    on the terminal and in the log): now one at the first, one with the total at the end."""
    script = tmp_path / "tap.py"
    script.write_text("import json\n"
                      "print(json.dumps({'type': 'SCHEMA', 'stream': 's', 'schema': {}, 'key_properties': []}))\n"
                      "for i in range(3000):\n"
                      "    print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'id': i}}))\n"
                      "    print(json.dumps({'type': 'METRIC', 'value': i}))\n")
    cfg = write_config(tmp_path, [{"name": "m", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script)]}])
    res = extract(cfg, "m")
    assert res.returncode == 0, res.stdout + res.stderr
    warnings = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_warning"]
    assert [(w["code"], w["count"], w["line"]) for w in warnings] == [
        ("UNKNOWN_MESSAGE", 1, 3), ("UNKNOWN_MESSAGE", 3000, 6001)]
    assert res.stdout.count("UNKNOWN_MESSAGE") <= 2


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


@pytest.mark.parametrize(("stderr", "lines"), [
    ("'fatal: token expired'", 1),  # no final newline: was 0 lines, and no path in the failure line
    ("'first\\nlast words'", 2),
    ("'fatal: token expired\\n'", 1),
    ("'x' * (20 << 20)", 1),  # 20 MB, one line
], ids=["one-unterminated", "two-last-unterminated", "one-terminated", "20mb-unterminated"])
def test_a_last_stderr_line_without_a_newline_counts_and_the_failure_names_the_file(
        tmp_path: Path, stderr: str, lines: int) -> None:
    script = tmp_path / "tap.py"
    script.write_text(f"import sys\nsys.stderr.write({stderr})\nsys.exit(1)\n")
    cfg = write_config(tmp_path, [{"name": "e", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "retries": 0, "command": [sys.executable, str(script)]}])
    res = extract(cfg, "e")
    assert res.returncode == 1, res.stdout + res.stderr
    [run] = runs_of(tmp_path / "ws" / "vault" / "t" / "s" / "a")
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert finished["error_code"] == "TAP_EXIT_NONZERO"
    assert finished["stderr_lines"] == lines and manifest(run)["stderr_lines"] == lines
    word = "line" if lines == 1 else "lines"
    assert f"tap stderr ({lines} {word}): {run / 'tap.stderr.log'}" in res.stdout, res.stdout


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


# --- tap inputs: incremental STATE, catalogs, discovery cache ------------------------------


def test_incremental_passes_the_latest_runs_final_state(tmp_path: Path) -> None:
    ex = demo_extractor("inc", "sheets", records=40, incremental=True)
    cfg = write_config(tmp_path, [ex])
    assert extract(cfg, "inc").returncode == 0
    acct = account_dir(tmp_path / "ws", ex)
    first = manifest(runs_of(acct)[0])
    assert first["records"] == 40 and first["incremental"] == {"from_run": None, "state_passed": False}
    assert extract(cfg, "inc").returncode == 0
    second = manifest(runs_of(acct)[-1])
    assert second["incremental"] == {"from_run": f"dt={first['dt']}/run_id={first['run_id']}",
                                     "state_passed": True}
    assert second["records"] == 0, "the demo tap resumes at the offsets of the first run's STATE"
    assert not list(runs_of(acct)[-1].glob("tap-state*"))


def test_incremental_ignores_failed_runs(tmp_path: Path) -> None:
    ok = demo_extractor("inc", "gmail", records=10, incremental=True)
    cfg = write_config(tmp_path, [ok])
    assert extract(cfg, "inc").returncode == 0
    acct = account_dir(tmp_path / "ws", ok)
    good = manifest(runs_of(acct)[0])
    bad = demo_extractor("inc", "gmail", records=20, incremental=True, faults={"fail_after": 2})
    assert extract(write_config(tmp_path, [bad]), "inc").returncode == 1
    assert extract(write_config(tmp_path, [ok]), "inc").returncode == 0
    third = manifest(runs_of(acct)[-1])
    assert third["incremental"]["from_run"] == f"dt={good['dt']}/run_id={good['run_id']}"


def test_incremental_with_an_unreadable_latest_fails_instead_of_a_full_extract(tmp_path: Path) -> None:
    ex = demo_extractor("inc", "gmail", records=5, incremental=True)
    cfg = write_config(tmp_path, [ex])
    assert extract(cfg, "inc").returncode == 0
    acct = account_dir(tmp_path / "ws", ex)
    (runs_of(acct)[0] / "manifest.json").write_text("{broken")
    assert extract(cfg, "inc").returncode == 1
    assert manifest(runs_of(acct)[-1])["error_code"] == "STATE_UNREADABLE"


def test_discovery_is_cached_and_rerun_when_the_config_changes(tmp_path: Path) -> None:
    ex = demo_extractor("disc", "dataverse", records=5, discover=True)
    cfg = write_config(tmp_path, [ex])
    assert extract(cfg, "disc").returncode == 0
    cached = tmp_path / "ws" / "catalogs" / "disc.json"
    assert oct(cached.stat().st_mode & 0o777) == "0o600"
    catalog = orjson.loads(cached.read_bytes())
    assert all(any(m["breadcrumb"] == [] and m["metadata"]["selected"] for m in s["metadata"])
               for s in catalog["streams"]), "streams are selected"
    acct = account_dir(tmp_path / "ws", ex)
    assert manifest(runs_of(acct)[-1])["catalog"]["discovered_now"] is True
    assert extract(cfg, "disc").returncode == 0
    assert manifest(runs_of(acct)[-1])["catalog"]["discovered_now"] is False
    changed = demo_extractor("disc", "dataverse", records=6, discover=True)
    assert extract(write_config(tmp_path, [changed]), "disc").returncode == 0
    assert manifest(runs_of(acct)[-1])["catalog"]["discovered_now"] is True


def test_a_failing_discovery_fails_the_run(tmp_path: Path) -> None:
    script = tmp_path / "tap.py"
    script.write_text("import sys\nsys.exit(3 if '--discover' in sys.argv else 0)\n")
    cfg = write_config(tmp_path, [{"name": "d", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script)], "discover": True}])
    assert extract(cfg, "d").returncode == 1
    [run] = runs_of(tmp_path / "ws" / "vault" / "t" / "s" / "a")
    assert (manifest(run)["error_code"], manifest(run)["tap_exit_code"]) == ("DISCOVERY_FAILED", 3)


ARGV_TAP = ("import json, sys\n"
            "open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))\n"
            "print(json.dumps({'type': 'SCHEMA', 'stream': 's', 'schema': {}, 'key_properties': []}))\n")


def test_catalog_and_state_files_are_passed_by_path(tmp_path: Path) -> None:
    script, seen = tmp_path / "tap.py", tmp_path / "argv.json"
    script.write_text(ARGV_TAP)
    catalog = tmp_path / "catalog.json"
    catalog.write_text('{"streams": []}')
    ex = {"name": "c", "domain": "t", "source": "s", "account": "a", "kind": "singer",
          "command": [sys.executable, str(script), str(seen)], "config": str(tmp_path / "cfg.json"),
          "catalog": "catalog.json", "incremental": True}
    cfg = write_config(tmp_path, [ex])
    assert extract(cfg, "c").returncode == 0
    assert orjson.loads(seen.read_bytes()) == ["--config", str(tmp_path / "cfg.json"), "--catalog", str(catalog)]


@pytest.mark.parametrize(("extra", "message"), [
    ({"catalog": "c.json", "discover": True}, "not both"),
    ({"kind": "meltano", "meltano": {"project": ".", "plugin": "tap-x"}, "catalog": "c.json"},
     "do not apply to kind: meltano"),
])
def test_catalog_settings_are_checked(tmp_path: Path, extra: dict[str, object], message: str) -> None:
    ex = {"name": "c", "domain": "t", "source": "s", "account": "a", "kind": "singer",
          "command": ["tap-x"], **extra}
    if ex["kind"] == "meltano":
        del ex["command"]
    res = run_cli("list", "extractors", "--config", str(write_config(tmp_path, [ex])))
    assert res.returncode == 2 and message in res.stderr


# --- the Singer stream: BATCH errors that need a script tap --------------------------------

REPLAY = "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), sys.stdout.buffer)"
SCHEMA_LINE = b'{"type": "SCHEMA", "stream": "m", "schema": {}, "key_properties": []}\n'


def _batch(url: str, fmt: str = "jsonl", compression: str = "none") -> bytes:
    return orjson.dumps({"type": "BATCH", "stream": "m", "manifest": [url],
                         "encoding": {"format": fmt, "compression": compression}}) + b"\n"


@pytest.mark.parametrize(("name", "content", "encoding", "code"), [
    ("bad-line", b'{"id": 1}\nnot json\n', ("jsonl", "none"), "BATCH_INVALID"),
    ("not-gzip", b'{"id": 1}\n', ("jsonl", "gzip"), "BATCH_INVALID"),
    ("parquet", b"PAR1", ("parquet", "none"), "BATCH_UNSUPPORTED"),
])
def test_bad_batch_files_fail_the_run(tmp_path: Path, name: str, content: bytes,
                                      encoding: tuple[str, str], code: str) -> None:
    data = tmp_path / "batch.file"
    data.write_bytes(content)
    stream = tmp_path / "out.singer"
    stream.write_bytes(SCHEMA_LINE + _batch(f"file://{data}", *encoding))
    cfg = write_config(tmp_path, [{"name": "b", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, "-c", REPLAY, str(stream)]}])
    assert extract(cfg, "b").returncode == 1
    [run] = runs_of(tmp_path / "ws" / "vault" / "t" / "s" / "a")
    assert (manifest(run)["error_code"], manifest(run)["error_line"]) == (code, 2)
    if name == "bad-line":
        assert manifest(run)["error_detail"] == {"batch_file": 0, "batch_line": 2}


def test_activate_version_alone_is_not_a_schema(tmp_path: Path) -> None:
    stream = tmp_path / "out.singer"
    stream.write_bytes(b'{"type": "ACTIVATE_VERSION", "stream": "m", "version": 1}\n'
                       b'{"type": "RECORD", "stream": "m", "record": {}}\n')
    cfg = write_config(tmp_path, [{"name": "b", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, "-c", REPLAY, str(stream)]}])
    assert extract(cfg, "b").returncode == 1
    [run] = runs_of(tmp_path / "ws" / "vault" / "t" / "s" / "a")
    assert (manifest(run)["error_code"], manifest(run)["error_line"]) == ("SCHEMA_MISSING", 2)


# --- --target LOADER ------------------------------------------------------------------------

TARGET = ("import sys\n"
          "out = open(sys.argv[sys.argv.index('--config') + 1] + '.out', 'wb')\n"
          "for line in sys.stdin.buffer:\n"
          "    out.write(line)\n"
          "print('{\"type\": \"STATE\", \"value\": {}}')\n"
          "sys.exit(int(sys.argv[1]))\n")


def test_target_gets_the_tap_output_and_the_vault_is_untouched(tmp_path: Path) -> None:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    ex = demo_extractor("mail", "gmail", records=30)
    loaders = [{"name": "ok", "command": [sys.executable, str(script), "0"], "config": "t.json"},
               {"name": "fails", "command": [sys.executable, str(script), "4"], "config": "t.json"},
               {"name": "missing", "command": [str(tmp_path / "no-such-target")]}]
    cfg = write_config(tmp_path, [ex], loaders=loaders)
    res = extract(cfg, "mail", "--target", "ok")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "vault and LATEST not touched" in res.stdout
    lines = (tmp_path / "t.json.out").read_bytes().splitlines()
    assert sum(1 for line in lines if orjson.loads(line)["type"] == "RECORD") == 30
    assert not account_dir(tmp_path / "ws", ex).exists()
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert (finished["target"], finished["records"], finished.get("vault_run")) == ("ok", 30, None)
    folder = Path(finished["detail_path"])
    assert folder.is_relative_to(tmp_path / "ws" / "diagnostics" / "targets" / "ok" / "mail")
    assert (folder / "target.stdout.log").read_bytes().startswith(b'{"type": "STATE"')
    for loader, code in (("fails", "TARGET_EXIT_NONZERO"), ("missing", "TARGET_NOT_FOUND")):
        res = extract(cfg, "mail", "--target", loader)
        assert res.returncode == 1, loader
        finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
        assert finished["error_code"] == code
    assert not account_dir(tmp_path / "ws", ex).exists()
    res = extract(cfg, "mail", "--target", "nope")
    assert res.returncode == 2 and "no loader named 'nope'" in res.stderr and "ok, fails, missing" in res.stderr


def test_list_loaders_and_kinds(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("m1"), demo_extractor("m2")], jobs={"all": ["m1", "m2"]},
                       loaders=[{"name": "files", "command": ["target-jsonl"], "config": "/etc/t.json"}])
    rows = orjson.loads(run_cli("list", "loaders", "--json", "--config", str(cfg)).stdout)
    assert rows == [{"name": "files", "command": "target-jsonl --config /etc/t.json"}]
    jobs = orjson.loads(run_cli("list", "jobs", "--json", "--config", str(cfg)).stdout)
    assert jobs[0]["kinds"] == {"demo": 2}


DEEP_TAP = ("import json, sys\n"
            "print(json.dumps({'type': 'SCHEMA', 'stream': 's', 'schema': {}, 'key_properties': []}))\n"
            "print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'ok': 1}}))\n"
            "depth = int(sys.argv[1])\n"
            "print('{\"type\": \"RECORD\", \"stream\": \"s\", \"record\": {\"a\": ' + '[' * depth + ']' * depth + '}}')\n")


@pytest.mark.parametrize("depth", [600, 990, 1500, 200_000])
def test_a_record_nested_too_deep_fails_the_line_not_the_worker(tmp_path: Path, depth: int) -> None:
    """Beyond MAX_DEPTH (512) levels the line is refused whatever the stack: at 985-998 levels
    msgspec took it or not by how deep its caller was, and a line the extract took crashed
    canonize or read as a corrupt part to `verify`."""
    script = tmp_path / "tap.py"
    script.write_text(DEEP_TAP)
    cfg = write_config(tmp_path, [{"name": "d", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script), str(depth)]}])
    res = extract(cfg, "d")
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    acct = tmp_path / "ws" / "vault" / "t" / "s" / "a"
    [run] = runs_of(acct)  # kept for audit, with its manifest
    m = manifest(run)
    assert (m["status"], m["error_code"], m["error_line"]) == ("failed", "TAP_MESSAGE_INVALID", 3)
    assert not list(acct.rglob("*.partial")) and not (acct / "LATEST.json").exists()


def test_a_record_nested_within_the_limit_is_kept_and_read_back(tmp_path: Path) -> None:
    """500 levels (under MAX_DEPTH) with a long number: extracted, and the vault's reader and
    `verify --deep` read it back as the extract wrote it."""
    from engine.vault.reader import StreamKeys, iter_part_records

    script = tmp_path / "tap.py"
    script.write_text(DEEP_TAP.replace("'[' * depth + ']' * depth", "'[' * depth + '12345678901234567890123' + ']' * depth"))
    cfg = write_config(tmp_path, [{"name": "d", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script), "500"]}])
    res = extract(cfg, "d")
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(tmp_path / "ws" / "vault" / "t" / "s" / "a")
    keys = StreamKeys(manifest(run))
    records = [r.record for r in iter_part_records(run / "part-000.jsonl.gz", keys)]
    assert len(records) == 2 and records[1].count(b"[") == 500
    deep = run_cli("verify", "--deep", "--config", str(cfg))
    assert deep.returncode == 0, deep.stdout + deep.stderr


@pytest.mark.parametrize("quiet", [
    "",  # nothing at all
    "print(json.dumps({'type': 'https://tools.ietf.org/html/rfc7235#section-3.1', 'status': 401}))\n",
    "print(json.dumps({'type': 'ACTIVATE_VERSION', 'stream': 's', 'version': 1}))\n",
], ids=["nothing", "an-api-error-body", "activate-version-only"])
def test_a_tap_that_says_no_schema_state_or_record_fails_and_latest_stays(tmp_path: Path, quiet: str) -> None:
    script, mode = tmp_path / "tap.py", tmp_path / "mode"
    script.write_text("import json, pathlib, sys\n"
                      "if pathlib.Path(sys.argv[1]).read_text() == 'ok':\n"
                      "    print(json.dumps({'type': 'SCHEMA', 'stream': 's', 'schema': {}, 'key_properties': []}))\n"
                      "    print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'id': 1}}))\n"
                      "else:\n"
                      f"    pass\n    {quiet}")
    cfg = write_config(tmp_path, [{"name": "q", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script), str(mode)]}])
    acct = tmp_path / "ws" / "vault" / "t" / "s" / "a"
    mode.write_text("ok")
    assert extract(cfg, "q").returncode == 0
    before = (acct / "LATEST.json").read_bytes()
    mode.write_text("quiet")  # exits 0 having written nothing
    res = extract(cfg, "q")
    assert res.returncode == 1 and "TAP_OUTPUT_EMPTY" in res.stdout + res.stderr, res.stdout + res.stderr
    assert (acct / "LATEST.json").read_bytes() == before
    assert manifest(runs_of(acct)[-1])["error_code"] == "TAP_OUTPUT_EMPTY"


def test_a_lone_surrogate_escape_is_kept_as_a_replacement_character(tmp_path: Path) -> None:
    """Python's json.dumps writes ``\\ud83d`` for a string an API cut mid-emoji: the record is
    kept (its lone surrogate as U+FFFD), counted, warned, and canonize reads it."""
    script = tmp_path / "tap.py"
    script.write_text("import json\n"
                      "print(json.dumps({'type': 'SCHEMA', 'stream': 's', 'schema': {}, 'key_properties': ['id']}))\n"
                      "print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'id': 1, 't': 'cut \\ud83d'}}))\n"
                      "print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'id': 2, 't': 'ok \\U0001F600'}}))\n")
    cfg = write_config(tmp_path, [{"name": "q", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script)]}])
    res = extract(cfg, "q", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    events = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert [e["count"] for e in events if e.get("code") == "TAP_TEXT_REPAIRED"] == [1]
    acct = tmp_path / "ws" / "vault" / "t" / "s" / "a"
    [run] = runs_of(acct)
    m = manifest(run)
    assert (m["status"], m["records"], m["repaired_lines"]) == ("success", 2, 1)
    lines = gzip.decompress((run / m["parts"][0]["file"]).read_bytes()).splitlines()
    records = [orjson.loads(x)["record"] for x in lines if b'"RECORD"' in x]
    assert records == [{"id": 1, "t": "cut \ufffd"}, {"id": 2, "t": "ok \U0001F600"}]
    assert lines[2] == b'{"type": "RECORD", "stream": "s", "record": {"id": 2, "t": "ok \\ud83d\\ude00"}}', \
        "a line without a lone surrogate is kept byte for byte"


DEEP_STATE_TAP = ("import json, sys\n"
                  "depth = 300\n"
                  "given = sys.argv[sys.argv.index('--state') + 1] if '--state' in sys.argv else None\n"
                  "if given:\n"
                  "    seen = json.load(open(given))\n"
                  "    n = 0\n"
                  "    while isinstance(seen, dict) and 'n' in seen:\n"
                  "        seen, n = seen['n'], n + 1\n"
                  "    print('state depth', n, file=sys.stderr)\n"
                  "schema = {'type': 'object'}\n"
                  "for _ in range(140):  # two levels each: 280\n"
                  "    schema = {'type': 'object', 'properties': {'n': schema}}\n"
                  "print(json.dumps({'type': 'SCHEMA', 'stream': 's', 'schema': schema, 'key_properties': []}))\n"
                  "print(json.dumps({'type': 'RECORD', 'stream': 's', 'record': {'ok': 1}}))\n"
                  "print('{\"type\": \"STATE\", \"value\": ' + '{\"n\": ' * depth + '{}' + '}' * depth + '}')\n")


def test_a_state_and_a_schema_nested_past_255_levels_are_kept_and_passed_back(tmp_path: Path) -> None:
    """orjson writes at most 255 levels: a STATE or SCHEMA 256-512 deep (within MAX_DEPTH)
    crashed the worker writing the manifest (WORKER_CRASHED on every run, the account stuck)."""
    script = tmp_path / "tap.py"
    script.write_text(DEEP_STATE_TAP)
    cfg = write_config(tmp_path, [{"name": "d", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script)], "incremental": True}])
    for _ in range(2):
        res = extract(cfg, "d")
        assert res.returncode == 0, res.stdout + res.stderr
    acct = tmp_path / "ws" / "vault" / "t" / "s" / "a"
    first, second = runs_of(acct)
    assert manifest(second)["status"] == "success"
    assert (second / "tap.stderr.log").read_text() == "state depth 300\n"  # the first run's STATE, whole
    assert not list(acct.rglob("*.partial"))


def test_a_temporary_latest_a_killed_worker_left_is_removed_by_the_next_success(tmp_path: Path) -> None:
    from tests.helpers import tiny_tap

    tap = tiny_tap(tmp_path, 2)
    assert run_cli("extract", tap.name, "--config", str(tap.config)).returncode == 0
    left = tap.account_dir / ".LATEST.json.tmp-999999"
    left.write_text('{"dt": "2020-01-01"')
    left.chmod(0o600)
    assert run_cli("extract", tap.name, "--config", str(tap.config)).returncode == 0
    assert not left.exists() and (tap.account_dir / "LATEST.json").is_file()
