"""Running and operating the pipeline from the command line, as cron and a person would:
``lorch-tui --no-ui`` (lock, failures, dry run, permissions, the on_failure hook), and
``lorchestra status``, ``validate``, ``clean`` and ``config schema``, all as real processes
against real workspaces and the real history database."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from engine.demo_taps.canary import CANARIES
from engine.run.plan import IMPLEMENTED_STAGES
from tests.helpers import (
    REPO,
    clean_env,
    demo_extractor,
    latest,
    log_events,
    run_cli,
    wait_for,
    write_config,
)

GMAIL = {"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"}
STAGES = {"canonize": {"mappings": [GMAIL]}}
ENV = clean_env(COLUMNS="250")

HOLDER = """\
import sys
from pathlib import Path
from engine.store.fsutil import secure_umask
from engine.store.workspace import Workspace
from engine.store.lock import WorkspaceLock
secure_umask()
ws = Workspace(Path(sys.argv[1])).prepare()
lock = WorkspaceLock(ws, command="test-holder").acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


def cli(*args: str, stdin: Any = subprocess.DEVNULL, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`lorchestra ARGS` with no terminal on stdin; never a traceback."""
    res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", *args], capture_output=True, text=True,
                         env=ENV, cwd=REPO, timeout=timeout, stdin=stdin)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def no_ui(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`lorch-tui --no-ui ARGS` as cron runs it (no terminal anywhere)."""
    res = run_cli("--no-ui", *args, env=ENV, prog="lorch_tui.tui_main", timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def no_ui_popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "lorch_tui.tui_main", "--no-ui", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root: (size, mtime_ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def db_rows(db: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


# --- one built workspace, copied for the tests that change it ---

BUILT_EXTRACTORS = [
    demo_extractor("mail-a", records=15, seed=3),
    demo_extractor("crm", tap="dataverse", records=10, seed=4),
    demo_extractor("mail-bad", records=15, seed=5, faults={"fail_after": 5, "exit_code": 3}),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after one full run in which `mail-bad` failed (the original: copy it)."""
    base = tmp_path_factory.mktemp("built")
    cfg = write_config(base, BUILT_EXTRACTORS, stages=STAGES)
    res = cli("run", "--config", str(cfg))
    assert res.returncode == 1, res.stdout + res.stderr
    return base / "ws"


@pytest.fixture
def ws_copy(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the built workspace and a config pointing at it: (config, workspace)."""
    ws = tmp_path / "ws"
    shutil.copytree(built, ws, symlinks=True)
    return write_config(tmp_path, BUILT_EXTRACTORS, stages=STAGES), ws


# --- lorch-tui --no-ui ---


def slow_started(ws: Path) -> bool:
    try:
        return any(e["type"] == "task_started" and e["task_id"] == "extract:slow" for e in log_events(ws))
    except (OSError, orjson.JSONDecodeError):
        return False


def test_two_no_ui_runs_at_once_one_exits_3_and_wait_queues(tmp_path: Path) -> None:
    exs = [demo_extractor("slow", records=50, faults={"hang_after": 2}, timeout_s=6),
           demo_extractor("quick", records=5, seed=9)]
    cfg = write_config(tmp_path, exs, stages={"extract": {"cancel_grace_s": 1}})
    ws = tmp_path / "ws"
    first = no_ui_popen("--config", str(cfg), "--stage", "extract")
    try:
        wait_for(lambda: slow_started(ws), timeout=60, what="the first run to start")
        started = time.monotonic()
        second = no_ui("--config", str(cfg), "--stage", "extract")
        assert second.returncode == 3, second.stdout + second.stderr
        assert time.monotonic() - started < 20  # at once, not after the first run
        assert "busy" in second.stderr and "lorch-tui --no-ui" in second.stderr and "hint:" in second.stderr
        assert second.stdout == ""
        waiting = no_ui_popen("--config", str(cfg), "--stage", "extract", "--account", "quick", "--wait", "120")
        out, err = first.communicate(timeout=120)
        assert first.returncode == 1, out + err  # the hung tap timed out
        w_out, w_err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, w_out + w_err
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
                p.wait()
    runs = db_rows(ws / "state" / "lorch.sqlite", "SELECT * FROM runs ORDER BY started_at")
    assert [(r["trigger"], r["status"]) for r in runs] == [("cron", "failed"), ("cron", "success")]
    assert runs[1]["started_at"] >= runs[0]["finished_at"]  # the waiting run really waited
    slow = db_rows(ws / "state" / "lorch.sqlite", "SELECT * FROM tasks WHERE task_id = 'extract:slow'")
    assert slow[0]["error_code"] == "TIMEOUT"


def test_a_failing_account_does_not_stop_the_others(tmp_path: Path) -> None:
    exs = [demo_extractor("good-mail", records=12, seed=1),
           demo_extractor("bad-mail", records=12, seed=2, faults={"fail_after": 4, "exit_code": 7}),
           demo_extractor("good-crm", tap="dataverse", records=8, seed=3)]
    cfg = write_config(tmp_path, exs, stages=STAGES)
    res = no_ui("--config", str(cfg))
    assert res.returncode == 1, res.stdout + res.stderr
    ws = tmp_path / "ws"
    for ex in (exs[0], exs[2]):
        acct = ws / "vault" / ex["domain"] / ex["source"] / ex["account"]
        assert latest(acct) is not None
        assert (ws / "canonical" / ex["source"] / f"{ex['account']}.meta.json").is_file()
    assert latest(ws / "vault" / "email" / "gmail" / "bad-mail") is None
    # plain mode: one line per task as it ends, then exactly one summary line, last
    lines = res.stdout.strip().splitlines()
    n = len(IMPLEMENTED_STAGES)
    assert re.fullmatch(rf"\S+ run \S+ failed: {3 * n - n}/{3 * n} tasks ok, 1 failed, {n - 1} cancelled, "
                        rf"\d+ records in [\d.]+s; log: {re.escape(str(ws))}/logs/pipeline-[\d-]+\.log", lines[-1])
    assert sum("tasks ok" in line for line in lines) == 1
    assert "extract:bad-mail failed TAP_EXIT_NONZERO" in res.stdout
    assert "canonize:bad-mail cancelled UPSTREAM_FAILED" in res.stdout


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one"), demo_extractor("two", tap="sheets")])
    before = sorted(tmp_path.iterdir())
    for res in (no_ui("--config", str(cfg), "--dry-run"), cli("run", "--config", str(cfg), "--dry-run"),
                no_ui("--config", str(cfg), "--dry-run", "--account", "two", "--stage", "extract")):
        assert res.returncode == 0, res.stderr
        assert "plan:" in res.stdout and f"workspace: {tmp_path / 'ws'}" in res.stdout
    assert "two: extract" in res.stdout and "one:" not in res.stdout
    assert sorted(tmp_path.iterdir()) == before and not (tmp_path / "ws").exists()


def test_every_run_checks_permissions_first(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    leaky = next((ws / "canonical").rglob("*.jsonl"))
    leaky.chmod(0o644)
    runs_before = db_rows(ws / "state" / "lorch.sqlite", "SELECT run_id FROM runs")
    res = no_ui("--config", str(cfg), "--stage", "extract")
    assert res.returncode == 4
    assert str(leaky) in res.stderr and "chmod -R go-rwx" in res.stderr and "--skip-permissions" in res.stderr
    assert db_rows(ws / "state" / "lorch.sqlite", "SELECT run_id FROM runs") == runs_before
    res = no_ui("--config", str(cfg), "--stage", "extract", "--account", "crm", "--skip-permissions")
    assert res.returncode == 0, res.stdout + res.stderr


# --- the on_failure hook ---

HOOK = """\
import sys
from pathlib import Path
Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())
print("HOOK-STDOUT-MARKER")
print("HOOK-STDERR-MARKER", file=sys.stderr)
sys.exit(int(sys.argv[2]))
"""


def hook_config(tmp_path: Path, exit_code: int, *, fail: bool = True) -> tuple[Path, Path]:
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    out = tmp_path / "hook-input.json"
    faults = {"fail_after": 5, "exit_code": 3} if fail else {}
    exs = [demo_extractor("ok-account", records=10, seed=1),
           demo_extractor("leaky-account", records=10, seed=2, faults=faults)]
    cfg = write_config(tmp_path, exs, stages=STAGES,
                       on_failure=[sys.executable, str(hook), str(out), str(exit_code)])
    return cfg, out


def test_on_failure_hook_gets_a_phi_free_summary(tmp_path: Path) -> None:
    cfg, out = hook_config(tmp_path, 0)
    res = no_ui("--config", str(cfg), "--stage", "extract", "--stage", "canonize")
    assert res.returncode == 1, res.stdout + res.stderr
    raw = out.read_text()
    for canary in CANARIES:
        assert canary not in raw, canary
    summary = orjson.loads(raw)
    assert summary["status"] == "failed" and summary["trigger"] == "cron"
    assert (summary["tasks"], summary["succeeded"], summary["failed"], summary["cancelled"]) == (4, 2, 1, 1)
    [failed] = summary["failed_tasks"]
    assert (failed["task_id"], failed["extractor"], failed["error_code"], failed["exit_code"]) == (
        "extract:leaky-account", "leaky-account", "TAP_EXIT_NONZERO", 3)
    ws = tmp_path / "ws"
    assert summary["log_path"].startswith(str(ws / "logs" / "pipeline-"))
    [run] = db_rows(ws / "state" / "lorch.sqlite", "SELECT * FROM runs")
    assert summary["run_id"] == run["run_id"]
    # the hook's own output stays out of ours, in the workspace
    assert "HOOK-" not in res.stdout + res.stderr and "warning" not in res.stderr
    hook_log = (ws / "diagnostics" / "hooks" / "on_failure.log").read_text()
    assert "HOOK-STDOUT-MARKER" in hook_log and "HOOK-STDERR-MARKER" in hook_log
    assert stat.S_IMODE((ws / "diagnostics" / "hooks" / "on_failure.log").stat().st_mode) == 0o600


def test_a_failing_hook_warns_and_keeps_the_exit_code(tmp_path: Path) -> None:
    cfg, out = hook_config(tmp_path, 5)
    res = no_ui("--config", str(cfg), "--stage", "extract")
    assert res.returncode == 1
    assert "lorch-tui: warning: the on_failure hook" in res.stderr and "exited with code 5" in res.stderr
    assert out.is_file()


def test_a_missing_hook_warns_and_a_successful_run_calls_no_hook(tmp_path: Path) -> None:
    cfg, out = hook_config(tmp_path, 0, fail=False)
    res = no_ui("--config", str(cfg), "--stage", "extract")
    assert res.returncode == 0 and not out.exists()
    data = yaml.safe_load(cfg.read_text())
    data["on_failure"] = [str(tmp_path / "no-such-hook")]
    data["extractors"][1]["demo"]["faults"] = {"fail_after": 2}
    cfg.write_text(yaml.safe_dump(data))
    res = no_ui("--config", str(cfg), "--stage", "extract")
    assert res.returncode == 1 and "could not be started" in res.stderr


# --- status ---


def test_status_json_matches_the_history_database(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    assert cli("run", "--config", str(cfg), "--stage", "extract", "--account", "crm").returncode == 0
    res = cli("status", "--json", "--history", "5", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    doc = orjson.loads(res.stdout)
    db = ws / "state" / "lorch.sqlite"
    runs = db_rows(db, "SELECT * FROM runs ORDER BY started_at DESC")
    assert len(runs) == 2 and [{k: h[k] for k in runs[0]} for h in doc["history"]] == runs
    assert [h["records_stage"] for h in doc["history"]] == ["extract", "extract"]
    last = doc["last_run"]
    assert {k: last[k] for k in runs[0]} == runs[0]
    assert last["log_path"] == str(ws / "logs" / f"pipeline-{runs[0]['started_at'][:10]}.log")
    assert [s["stage"] for s in last["stage_summary"]] == ["extract"]
    assert last["stage_summary"][0]["records"] == 10 and last["failed_tasks"] == []
    assert doc["pipeline"] == {"name": "test", "version": "1"} and doc["stale_after_hours"] == 26
    accounts = {a["extractor"]: a for a in doc["accounts"]}
    crm, mail, bad = accounts["crm"], accounts["mail-a"], accounts["mail-bad"]
    crm_latest = latest(ws / "vault" / "clinical" / "dataverse" / "crm")
    assert crm_latest is not None and crm["latest_run"] == crm_latest["run_id"]
    assert (crm["stale"], crm["canonical"], crm["latest_records"]) == (False, "outdated", 10)
    assert (mail["stale"], mail["canonical"], mail["canonical_records"]) == (False, "current", 15)
    assert (mail["index"], crm["index"], bad["index"]) == ("current", "outdated", "missing")
    assert (bad["latest_run"], bad["stale"], bad["canonical"]) == (None, True, "missing")
    # the first run's failed task, read through --history's run ids
    first = db_rows(db, "SELECT * FROM tasks WHERE run_id = ? AND status = 'failed'", runs[1]["run_id"])
    assert [t["extractor"] for t in first] == ["mail-bad"]


def test_a_run_without_extract_shows_its_own_stage_s_records_everywhere(tmp_path: Path) -> None:
    """`run --stage canonize` said "15 records canonized" while its log line, the history and
    `status --history` said 0 records (the run's count summed its extract tasks, of which it
    had none). Real runs on a real workspace: every face now shows the stage's own count, and a
    full run still shows what it extracted."""
    cfg = write_config(tmp_path, [demo_extractor("mail-a", records=15, seed=3),
                                  demo_extractor("mail-b", records=9, seed=6)], stages=STAGES)
    ws = tmp_path / "ws"
    assert cli("run", "--config", str(cfg)).returncode == 0
    canon = cli("run", "--stage", "canonize", "--account", "mail-a", "--force", "--config", str(cfg))
    assert canon.returncode == 0, canon.stderr
    index = cli("run", "--stage", "index", "--force", "--config", str(cfg))
    assert index.returncode == 0, index.stderr
    # the counts from the files themselves, not from any event
    canonized = len((ws / "canonical" / "gmail" / "mail-a.jsonl").read_bytes().splitlines())
    conn = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    try:
        indexed = int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    finally:
        conn.close()
    assert (canonized, indexed) == (15, 24)
    assert f"1/1 tasks ok, 0 failed, 0 cancelled, {canonized} records canonized in" in canon.stdout
    assert f"2/2 tasks ok, 0 failed, 0 cancelled, {indexed} records indexed in" in index.stdout

    doc = orjson.loads(cli("status", "--json", "--history", "3", "--config", str(cfg)).stdout)
    shown = [(h["stages"], h["records"], h["records_stage"]) for h in doc["history"]]
    assert shown == [("index", indexed, "index"), ("canonize", canonized, "canonize"),
                     ("extract,canonize,index", 24, "extract")]
    assert (doc["last_run"]["records"], doc["last_run"]["records_stage"]) == (indexed, "index")
    finished = {e["run_id"]: e["records"] for e in log_events(ws) if e["type"] == "run_finished"}
    assert [finished[h["run_id"]] for h in doc["history"]] == [indexed, canonized, 24]  # the log line's count

    text = cli("status", "--history", "3", "--config", str(cfg)).stdout
    rows = {h["run_id"]: next(ln for ln in text.splitlines() if ln.split()[:1] == [h["run_id"]])
            for h in doc["history"]}
    newest, middle, oldest = (rows[h["run_id"]] for h in doc["history"])
    assert f" {indexed} indexed " in newest and f" {canonized} canonized " in middle
    assert " 24 " in oldest and "extracted" not in oldest
    assert f"0 cancelled; {indexed} records indexed" in text


def test_status_text_and_staleness(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    res = cli("status", "--config", str(cfg), "--history", "3")
    assert res.returncode == 0, res.stderr
    for text in ("pipeline: test 1", "last run:", "failed", "extract:mail-bad", "TAP_EXIT_NONZERO",
                 f"log: {ws}/logs/pipeline-", "mail-a", "crm", "history (last 1 run)", "current", "missing"):
        assert text in res.stdout, text
    data = yaml.safe_load(cfg.read_text())
    data["stale_after_hours"] = 0.0001
    cfg.write_text(yaml.safe_dump(data))
    time.sleep(0.5)
    doc = orjson.loads(cli("status", "--json", "--config", str(cfg)).stdout)
    assert all(a["stale"] for a in doc["accounts"])


def test_status_of_a_workspace_that_does_not_exist(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one")])
    res = cli("status", "--config", str(cfg))
    assert res.returncode == 0 and "none recorded yet" in res.stdout and "does not exist yet" in res.stdout
    doc = orjson.loads(cli("status", "--json", "--config", str(cfg)).stdout)
    assert doc["last_run"] is None and doc["accounts"][0]["latest_run"] is None
    assert not (tmp_path / "ws").exists()


# --- validate ---


def test_validate_a_good_setup_then_loose_permissions_then_fix(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 0, res.stdout
    assert "all checks passed" in res.stdout and "FAIL" not in res.stdout
    leaky_file = next((ws / "canonical").rglob("*.meta.json"))
    leaky_dir = ws / "vault" / "email"
    leaky_file.chmod(0o644)
    leaky_dir.chmod(0o755)
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 4, res.stdout
    assert str(leaky_file) in res.stdout and str(leaky_dir) in res.stdout and "--fix-permissions" in res.stdout
    assert cli("validate", "--config", str(cfg), "--skip-permissions").returncode == 0
    res = cli("validate", "--config", str(cfg), "--fix-permissions")
    assert res.returncode == 0, res.stdout
    assert "tightened 2 path(s)" in res.stdout
    assert stat.S_IMODE(leaky_file.stat().st_mode) == 0o600 and stat.S_IMODE(leaky_dir.stat().st_mode) == 0o700
    assert cli("validate", "--config", str(cfg)).returncode == 0


def test_validate_fails_a_catalog_file_that_is_not_there(tmp_path: Path) -> None:
    tap = tmp_path / "tap.py"
    tap.write_text("print('{}')\n")
    exs = [{"name": "cat", "domain": "d", "source": "s", "account": "a", "kind": "singer",
            "command": [sys.executable, str(tap)], "catalog": "gone.json"}]
    res = cli("validate", "--config", str(write_config(tmp_path, exs)))
    assert res.returncode == 2, res.stdout
    assert "FAIL" in res.stdout and "the catalog file" in res.stdout and "gone.json" in res.stdout
    (tmp_path / "gone.json").write_text('{"streams": []}')
    res = cli("validate", "--config", str(write_config(tmp_path, exs)))
    assert "the catalog file" not in res.stdout, res.stdout


def test_validate_catches_a_missing_transform_and_a_missing_tap(tmp_path: Path) -> None:
    exs = [demo_extractor("one"),
           {"name": "real", "domain": "d", "source": "s", "account": "a", "kind": "singer",
            "command": ["tap-that-is-not-installed-anywhere"]}]
    stages = {"canonize": {"mappings": [GMAIL, {"source": "gmail", "stream": "labels",
                                                "transform": "email/no_such_transform_v1"}]}}
    cfg = write_config(tmp_path, exs, stages=stages)
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 2, res.stdout
    assert "email/no_such_transform_v1" in res.stdout and "tap-that-is-not-installed-anywhere" in res.stdout
    assert "email/gmail_to_canonical_v1 compiles" in res.stdout and "configuration problem" in res.stdout
    assert not (tmp_path / "ws").exists()  # validate never creates the workspace


def test_validate_with_a_config_and_a_permission_failure_says_both(tmp_path: Path) -> None:
    """A missing transform and a 0755 workspace: validate exited 4 and its summary spoke only
    of permissions. It still exits 4 (docs/operations.md: 4 wins over 2), and the summary
    names both problems."""
    stages = {"canonize": {"mappings": [{"source": "gmail", "stream": "labels",
                                         "transform": "email/no_such_transform_v1"}]}}
    cfg = write_config(tmp_path, [demo_extractor("one")], stages=stages)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws").chmod(0o755)
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 4, res.stdout
    summary = res.stdout.strip().splitlines()[-3:]
    assert any(line.startswith("permission problem") for line in summary), summary
    assert any(line.startswith("configuration problem") and "exit 4" in line for line in summary), summary
    (tmp_path / "ws").chmod(0o700)  # the permission fixed: the configuration problem alone, exit 2
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 2 and "permission problem" not in res.stdout, res.stdout
    assert res.stdout.strip().splitlines()[-1].startswith("configuration problem")


def test_validate_a_broken_config_names_the_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one")])
    cfg.write_text(cfg.read_text() + "stale_after_hours: -3\n")
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 2
    line = len(cfg.read_text().splitlines())
    assert f"{cfg}:{line}: stale_after_hours" in res.stdout and "FAIL" in res.stdout


def test_validate_warns_about_streams_without_a_mapping(ws_copy: tuple[Path, Path]) -> None:
    cfg, _ws = ws_copy  # the built config maps no dataverse stream and declares none
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 0
    # undeclared stream names may carry PHI: placeholders, and how to declare them
    assert re.search(r"warn\s+crm: streams without a mapping \(not canonized\): "
                     r"stream #1 \([0-9a-f]{6}\), stream #2 \([0-9a-f]{6}\)", res.stdout), res.stdout
    assert "lorchestra list streams crm --reveal" in res.stdout and "`streams:`" in res.stdout
    declared = [dict(ex, streams=["contacts"]) if ex["name"] == "crm" else ex for ex in BUILT_EXTRACTORS]
    cfg = write_config(cfg.parent, declared, stages=STAGES)
    res = cli("validate", "--config", str(cfg))
    assert re.search(r"warn\s+crm: streams without a mapping \(not canonized\): "
                     r"contacts, stream #2 \([0-9a-f]{6}\)", res.stdout), res.stdout


# --- clean ---


def listed(stdout: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s+delete \S+\s+(\S+)\s+\(", stdout, re.M)]


def test_clean_without_a_terminal_or_yes_deletes_nothing(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    before = snapshot(ws)
    for args in (["--stage", "canonize"], ["--all"], ["--stage", "extract"]):
        res = cli("clean", *args, "--config", str(cfg))
        assert res.returncode == 2, res.stdout + res.stderr
        assert "refusing" in res.stdout and "--yes" in res.stdout
    assert snapshot(ws) == before


def test_clean_yes_deletes_exactly_what_dry_run_listed(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    dry = cli("clean", "--stage", "canonize", "--stage", "index", "--dry-run", "--config", str(cfg))
    assert dry.returncode == 0 and "dry run: nothing was deleted" in dry.stdout
    paths = listed(dry.stdout)
    assert any(p.startswith("canonical/") for p in paths)
    before = snapshot(ws)
    assert snapshot(ws) == before
    res = cli("clean", "--stage", "canonize", "--stage", "index", "--yes", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert listed(res.stdout) == paths
    gone = set(before) - set(snapshot(ws))
    expected = {f for f in before if any(f == p or f.startswith(p + "/") for p in paths)}
    assert gone == expected
    files = re.search(r"total: \d+ path\(s\), (\d+) file\(s\)", dry.stdout)
    assert files is not None and int(files.group(1)) == len(gone)
    assert f"deleted {len(gone)} file(s)" in res.stdout
    assert not list((ws / "canonical").iterdir()) and (ws / "vault" / "email").is_dir()


def test_clean_all_yes_keeps_the_vault_unless_extract_is_named(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    tap_log = ws / "diagnostics" / "extract" / "tap-x.stderr.log"  # the extract stage's own output
    catalog = ws / "catalogs" / "tap-x.json"
    loader_log = ws / "diagnostics" / "targets" / "files" / "tap-x" / "target.stderr.log"
    for path in (tap_log, catalog, loader_log):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("PHI-ish\n")
    vault_before = snapshot(ws / "vault")
    res = cli("clean", "--all", "--yes", "--config", str(cfg))
    assert res.returncode == 0, res.stdout
    assert "the vault is kept" in res.stdout
    assert snapshot(ws / "vault") == vault_before and not list((ws / "canonical").iterdir())
    assert tap_log.is_file() and catalog.is_file() and loader_log.is_file(), "--all keeps them with the vault"
    accounts = len(list((ws / "vault").glob("*/*/*")))
    res = cli("clean", "--stage", "extract", "--yes", "--config", str(cfg))
    assert res.returncode == 0, res.stdout
    assert "audit trail" in res.stdout and "3 vault run(s)" in res.stdout
    assert f"3 vault run(s) of {accounts} account folder(s)" in res.stdout  # diagnostics/ are none
    assert list((ws / "vault").iterdir()) == [] and (ws / "state" / "lorch.sqlite").is_file()
    assert not tap_log.exists() and not catalog.exists() and not loader_log.exists()


def test_clean_takes_the_workspace_lock(ws_copy: tuple[Path, Path]) -> None:
    cfg, ws = ws_copy
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws)], cwd=REPO, env=ENV, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = snapshot(ws / "canonical")
        res = cli("clean", "--stage", "canonize", "--yes", "--config", str(cfg))
        assert res.returncode == 3 and "test-holder" in res.stderr
        assert snapshot(ws / "canonical") == before
    finally:
        holder.communicate("\n", timeout=30)


def test_clean_on_a_terminal_needs_the_word_vault(ws_copy: tuple[Path, Path]) -> None:
    import pty

    cfg, ws = ws_copy

    def on_tty(answers: str, *args: str) -> tuple[int, str]:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "clean", *args, "--config", str(cfg)],
                                cwd=REPO, env=ENV, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        os.write(master, answers.encode())
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        return proc.wait(timeout=60), out.decode(errors="replace")

    vault_before = snapshot(ws / "vault")
    rc, out = on_tty("y\nyes please\n", "--all")
    assert rc == 0, out
    assert "type 'vault'" in out and "the vault is kept" in out
    assert snapshot(ws / "vault") == vault_before and not list((ws / "canonical").iterdir())
    assert (ws / "diagnostics" / "extract").exists()  # the extract stage's: it stays with the vault
    rc, out = on_tty("vault\n", "--stage", "extract")  # only the vault (and its diagnostics) is left
    assert rc == 0, out
    assert "WARNING" in out and "audit trail" in out
    assert list((ws / "vault").iterdir()) == [] and not (ws / "diagnostics" / "extract").exists()


def test_clean_needs_a_stage_or_all(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one")])
    res = cli("clean", "--config", str(cfg))
    assert res.returncode == 2 and "--stage" in res.stderr and "--all" in res.stderr


# --- config schema, help, global options ---


def test_config_schema_is_valid_and_checks_a_config(tmp_path: Path) -> None:
    import jsonschema_rs

    res = cli("config", "schema")
    assert res.returncode == 0, res.stderr
    schema = orjson.loads(res.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema_rs.meta.is_valid(schema)
    assert {"on_failure", "stale_after_hours", "extractors", "workspace"} <= set(schema["properties"])
    validator = jsonschema_rs.validator_for(schema)
    cfg = write_config(tmp_path, [demo_extractor("one")], stages=STAGES, on_failure=["notify-send", "x"])
    data = yaml.safe_load(cfg.read_text())
    assert validator.is_valid(data)
    data["extractors"][0]["retires"] = 2
    assert not validator.is_valid(data)


@pytest.mark.parametrize(("args", "words"), [
    (["status"], ["--history", "--json", "--config", "--workspace", "--verbose"]),
    (["validate"], ["--skip-permissions", "--fix-permissions", "--config", "exit codes"]),
    (["clean"], ["--stage", "--all", "--dry-run", "--yes", "--wait", "vault", "--config"]),
    (["config"], ["schema", "--config"]),
    (["config", "schema"], ["JSON Schema", "--config", "--workspace"]),
])
def test_every_command_has_help(args: list[str], words: list[str]) -> None:
    res = cli(*args, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"usage: lorchestra {' '.join(args)}")
    for word in words:
        assert word in res.stdout, word
    top = cli("--help")
    assert args[0] in top.stdout


def test_lorch_tui_help_lists_the_cron_options() -> None:
    res = run_cli("--help", env=ENV, prog="lorch_tui.tui_main")
    assert res.returncode == 0
    for word in ("--no-ui", "--dry-run", "--wait", "--json", "--skip-permissions", "--stage", "--account",
                 "--job", "3 workspace busy"):
        assert word in res.stdout, word


def test_global_options_before_and_after_the_command(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("one")])
    other = tmp_path / "elsewhere"
    a = orjson.loads(cli("--config", str(cfg), "--workspace", str(other), "status", "--json").stdout)
    b = orjson.loads(cli("status", "--json", "--config", str(cfg), "--workspace", str(other)).stdout)
    assert a == b and a["workspace"] == str(other)
    v = cli("--config", str(cfg), "validate", "--skip-permissions")
    assert v.returncode == 0 and str(cfg) in v.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_run_waiting_for_the_lock_says_so_and_stops_at_once_on_a_signal(tmp_path: Path, sig: int) -> None:
    """--wait used to sleep outside the event loop: Ctrl-C took effect only when the lock
    freed, SIGTERM killed the process without its exit code, and nothing said it waited."""
    import threading

    from engine.store.lock import WorkspaceLock
    from engine.store.workspace import Workspace
    cfg = write_config(tmp_path, [demo_extractor("quick", records=5)])
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir(mode=0o700)
    held = WorkspaceLock(ws, command="a test").acquire()
    proc = no_ui_popen("--config", str(cfg), "--wait", "600")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: any("waiting up to 600 s" in x for x in lines), timeout=60, what="the wait to be said")
        started = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=30)
        assert time.monotonic() - started < 15, "stopped at once, not when the lock frees"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        held.release()
    reader.join(timeout=10)
    text = "".join(lines)
    assert proc.returncode == 130, text
    assert "Traceback" not in text and "interrupted" in text
    assert not (ws.state_db.exists() and db_rows(ws.state_db, "SELECT * FROM runs")), "no run was started"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_clean_waiting_for_the_lock_says_so_and_exits_130_on_a_signal(tmp_path: Path, sig: int) -> None:
    """`clean --wait` said nothing while it waited, and SIGTERM ended it with 143."""
    import threading

    from engine.store.lock import WorkspaceLock
    from engine.store.workspace import Workspace
    cfg = write_config(tmp_path, [demo_extractor("quick", records=5)])
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir(mode=0o700)
    (ws.root / "canonical").mkdir(mode=0o700)
    held = WorkspaceLock(ws, command="a test").acquire()
    ws.state_db.touch(mode=0o600)  # a workspace some run has used (clean refuses any other folder)
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "clean", "--all", "--yes", "--wait", "600",
                             "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env=clean_env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_for(lambda: any("waiting up to 600 s" in x for x in lines), timeout=60, what="the wait to be said")
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        held.release()
    reader.join(timeout=10)
    assert proc.returncode == 130, "".join(lines)
    assert "Traceback" not in "".join(lines) and (ws.root / "canonical").is_dir(), "nothing was deleted"


def test_status_names_the_unfinished_run_folders_a_killed_extract_left(tmp_path: Path) -> None:
    from tests.helpers import tiny_tap

    tap = tiny_tap(tmp_path, 2)
    assert run_cli("run", "--config", str(tap.config), "--stage", "extract").returncode == 0
    assert "unfinished run folder" not in run_cli("status", "--config", str(tap.config)).stdout
    [dt] = [p for p in tap.account_dir.iterdir() if p.name.startswith("dt=")]
    partial = dt / ".run_id=20261130T020000Z.partial"
    partial.mkdir(mode=0o700)
    (partial / "part-000.jsonl.gz").write_bytes(b"")
    res = run_cli("status", "--config", str(tap.config))
    assert res.returncode == 0 and "vault: 1 unfinished run folder(s)" in res.stdout, res.stdout
    assert "lorchestra clean --partials" in res.stdout


def test_a_latest_written_in_the_future_is_stale_not_fresh(tmp_path: Path) -> None:
    """After the clock was set back, an account whose extracts failed every night showed
    `0m fresh`: its LATEST had been written "in the future"."""
    import orjson

    from tests.helpers import tiny_tap

    tap = tiny_tap(tmp_path, 2)
    assert run_cli("run", "--config", str(tap.config), "--stage", "extract").returncode == 0
    latest = tap.account_dir / "LATEST.json"
    doc = orjson.loads(latest.read_bytes())
    doc["updated_at"] = "2099-01-01T00:00:00Z"
    latest.write_bytes(orjson.dumps(doc))
    res = run_cli("status", "--config", str(tap.config), "--json")
    [row] = orjson.loads(res.stdout)["accounts"]
    assert row["stale"] is True and row["latest_age_hours"] < 0
    assert "in the future" in run_cli("status", "--config", str(tap.config)).stdout


def test_status_during_a_run_counts_the_tasks_so_far(tmp_path: Path) -> None:
    """A reviewer's morning: `status` during a run said `tasks: 0/7 ok ... 0 records extracted`
    while its stage table below already showed an extract done (the run's totals are only
    written when it ends)."""
    cfg = write_config(tmp_path, [demo_extractor("quick", "gmail", records=3),
                                  demo_extractor("stuck", "gmail", records=50, faults={"hang_after": 5})])
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "run", "--stage", "extract", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=clean_env())
    try:
        def quick_done() -> str | None:
            res = cli("status", "--config", str(cfg))
            return res.stdout if "tasks so far: 1 ok, 0 failed" in res.stdout else None
        out = wait_for(quick_done, timeout=60)
        assert "[running]" in out or "running" in out
        assert "tasks: 0/" not in out and "0 records extracted" not in out, out
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
