"""The headless faces and the CLI as a daily tool (issue 17): cron never runs the demo by
mistake, every headless run names its config first, failures name their exit code and files,
and the wording is right. Real subprocesses, real workspaces.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.config.load import DEMO_CONFIG
from lorch_tui.failinfo import exit_text
from tests.helpers import REPO, clean_env, demo_extractor, run_cli, write_config
from tests.tui.dash import MAPPINGS


@pytest.fixture
def empty_cwd(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder without config/pipeline.yaml (cron without `cd`), and a small demo."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd, clean_env(XDG_DATA_HOME=str(tmp_path / "xdg"), LORCH_DEMO_RECORDS="5")


def test_cron_without_a_config_refuses_the_bundled_demo(empty_cwd: tuple[Path, dict[str, str]],
                                                        tmp_path: Path) -> None:
    cwd, env = empty_cwd
    res = run_cli("--no-ui", "--workspace", str(tmp_path / "ws"), prog="lorch_tui.tui_main", cwd=cwd, env=env)
    assert res.returncode == 2 and res.stdout == ""
    assert "bundled demo" in res.stderr and str(DEMO_CONFIG) in res.stderr and "--demo" in res.stderr
    assert not (tmp_path / "ws").exists()


def test_demo_on_purpose_runs_and_names_its_config_first(empty_cwd: tuple[Path, dict[str, str]],
                                                         tmp_path: Path) -> None:
    cwd, env = empty_cwd
    res = run_cli("--no-ui", "--demo", "--stage", "extract", "--account", "tap-gmail--acct1-personal",
                  "--workspace", str(tmp_path / "ws"), prog="lorch_tui.tui_main", cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first == f"config: {DEMO_CONFIG} (bundled demo) · workspace: {tmp_path / 'ws'}"
    assert re.search(r"extract:tap-gmail--acct1-personal success: 5 records, 1 part, [\d,]+ bytes", res.stdout)


def test_dashboard_options_without_no_ui_are_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("a")])
    res = run_cli("--config", str(cfg), "--account", "a", prog="lorch_tui.tui_main")
    assert res.returncode == 2 and "--account only applies with --no-ui" in res.stderr


@pytest.fixture
def failing_cfg(tmp_path: Path) -> Path:
    exs = [demo_extractor("bad-mail", "gmail", records=20, seed=3, retries=0, timeout_s=60,
                          faults={"fail_after": 5, "exit_code": 3}, account="shared-box"),
           demo_extractor("good-mail", "gmail", records=7, seed=4, retries=0, timeout_s=60)]
    return write_config(tmp_path, exs, stages={"canonize": {"mappings": MAPPINGS[:1]}})


def test_a_failed_tap_line_names_the_exit_code_and_the_stderr_file(failing_cfg: Path, tmp_path: Path) -> None:
    res = run_cli("--no-ui", "--config", str(failing_cfg), "--stage", "extract", prog="lorch_tui.tui_main")
    assert res.returncode == 1
    assert res.stdout.splitlines()[0].startswith(f"config: {failing_cfg} (--config)")
    line = next(x for x in res.stdout.splitlines() if "extract:bad-mail failed" in x)
    assert "TAP_EXIT_NONZERO" in line and "; exit 3" in line
    m = re.search(r"tap stderr \(\d+ lines?\): (\S+)", line)
    assert m is not None, line
    assert Path(m.group(1)).is_file() and Path(m.group(1)).name == "tap.stderr.log"
    assert str(tmp_path / "ws") in m.group(1)


def test_a_tap_that_cannot_start_names_its_program_and_what_to_do(tmp_path: Path) -> None:
    """`TAP_NOT_FOUND: 0 records, 0 parts` said neither which program nor what to do."""
    missing = tmp_path / "taps" / "tap-nowhere"
    cfg = write_config(tmp_path, [{"name": "gone", "domain": "t", "source": "s", "account": "a",
                                   "kind": "singer", "command": [str(missing), "--verbose"], "retries": 0}])
    res = run_cli("--no-ui", "--config", str(cfg), "--stage", "extract", prog="lorch_tui.tui_main")
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(x for x in res.stdout.splitlines() if "extract:gone failed" in x)
    assert "TAP_NOT_FOUND" in line and f"the program '{missing}' could not be started" in line
    assert "cron's PATH" in line and "lorchestra validate" in line


def test_a_tap_stopped_after_bad_output_says_lorchestra_stopped_it() -> None:
    from lorch_tui.failinfo import exit_text

    assert exit_text("TAP_OUTPUT_INVALID", -15) == "stopped by lorchestra after the error (signal 15)"
    assert exit_text("TAP_EXIT_NONZERO", -9) == "killed by signal 9"
    assert exit_text("TAP_EXIT_NONZERO", 3) == "exit 3"


def test_a_canonize_only_run_counts_canonized_records(failing_cfg: Path) -> None:
    assert run_cli("run", "--config", str(failing_cfg), "--account", "good-mail").returncode == 0
    res = run_cli("run", "--config", str(failing_cfg), "--account", "good-mail", "--stage", "canonize", "--force")
    assert res.returncode == 0, res.stderr
    assert re.search(r"1/1 tasks ok, 0 failed, 0 cancelled, 7 records canonized in", res.stdout.splitlines()[-1])


def test_extract_takes_an_account_name(failing_cfg: Path) -> None:
    res = run_cli("extract", "shared-box", "--config", str(failing_cfg))
    assert res.returncode == 1  # bad-mail's tap fails, but it was the one that ran
    assert "extract:bad-mail failed" in res.stdout


def test_run_json_into_head_prints_no_broken_pipe(failing_cfg: Path) -> None:
    cmd = (f"{shlex.quote(sys.executable)} -m lorch_tui.cli run --json --config {shlex.quote(str(failing_cfg))} "
           f"--account good-mail | head -1")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, env=clean_env(), timeout=120)
    assert '"run_started"' in res.stdout
    assert "BrokenPipe" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr


def test_clean_dry_run_alone_gets_a_useful_hint(failing_cfg: Path) -> None:
    res = run_cli("clean", "--dry-run", "--config", str(failing_cfg))
    assert res.returncode == 2
    assert "clean --all --dry-run" in res.stderr and "add --dry-run" not in res.stderr


def test_query_with_an_unknown_kind_names_the_known_ones(failing_cfg: Path) -> None:
    assert run_cli("run", "--config", str(failing_cfg), "--account", "good-mail").returncode == 0
    res = run_cli("query", "--kind", "emial", "--config", str(failing_cfg))
    assert res.returncode == 2
    assert "did you mean 'email'?" in res.stderr and "kinds in the index: email" in res.stderr


def test_list_at_80_columns_keeps_names_whole(tmp_path: Path) -> None:
    long = "tap-quickbooks--a-really-long-practice-name-llc"
    cfg = write_config(tmp_path, [demo_extractor(long, "quickbooks"), demo_extractor("a", "gmail")])
    res = run_cli("list", "extractors", "--config", str(cfg), env=clean_env(COLUMNS="80"))
    assert res.returncode == 0, res.stderr
    assert long in res.stdout  # whole, on one line
    assert all(len(line) <= 80 for line in res.stdout.splitlines())
    assert "not shown at this width" in res.stdout


def test_status_at_80_columns_keeps_names_and_run_ids_whole(tmp_path: Path) -> None:
    """`status` cut extractor names and run ids with `…` at 80 columns: they are whole now,
    and the columns that do not fit are left out and named."""
    long = "tap-quickbooks--a-really-long-practice-name-llc"
    cfg = write_config(tmp_path, [demo_extractor(long, "quickbooks"), demo_extractor("a", "gmail")])
    assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0
    res = run_cli("status", "--history", "2", "--config", str(cfg), env=clean_env(COLUMNS="80"))
    assert res.returncode == 0, res.stderr
    assert "…" not in res.stdout and all(len(line) <= 80 for line in res.stdout.splitlines())
    (account_row,) = [ln for ln in res.stdout.splitlines() if long in ln]  # whole, on one line
    assert account_row.split()[:2] == [long, "fresh"]
    run_id = orjson.loads(run_cli("status", "--json", "--history", "1", "--config", str(cfg)).stdout)["history"][0]["run_id"]
    assert any(ln.split()[:1] == [run_id] for ln in res.stdout.splitlines())
    assert "(LATEST run, age, records not shown at this width" in res.stdout
    assert "history (last 1 run):" in res.stdout
    wide = run_cli("status", "--config", str(cfg), env=clean_env(COLUMNS="200")).stdout
    assert "not shown at this width" not in wide and "LATEST run" in wide


@pytest.mark.parametrize("width", [100, 80, 160, 50])
def test_the_run_summary_never_cuts_a_number_or_a_name(width: int) -> None:
    """At 100 columns the summary showed `3,…`, `0…` and headers `re…`: numbers and names are
    whole now, and the least useful columns are left out (and said so) when they do not fit."""
    import io

    from rich.console import Console

    from engine.events import RunFinished, TaskFinished
    from engine.run.runner import RunResult
    from lorch_tui.summary import print_summary

    names = ["extract:tap-quickbooks--a-really-long-practice-name-llc", "canonize:tap-gmail--acct1-personal"]
    result = RunResult()
    for n, task in enumerate(names):
        stage, ex = task.split(":")
        result.finished[task] = TaskFinished(task_id=task, stage=stage, extractor=ex, account=ex,
                                             status="failed" if n else "success",
                                             error_code="TAP_EXIT_NONZERO" if n else None,
                                             attempt=1, records=3_456_789 + n, parts=12, bytes=987_654_321,
                                             uncompressed_bytes=4_000_000_000, duration_s=1234.5, rejects=1_234)
    result.summary = RunFinished(run_id="r1", status="success", tasks=2, succeeded=2, failed=0, cancelled=0,
                                 records=3_456_789, duration_s=1300.0)
    out = io.StringIO()
    print_summary(Console(file=out, width=width, color_system=None), result, "logs/x.log")
    text = out.getvalue()
    for want in (*names, "3,456,789", "3,456,790", "1,234", "records", "rejected", "status", "TAP_EXIT_NONZERO",
                 "error"):
        assert want in text, (want, text)
    assert "…" not in text
    assert ("left out at this width" in text) == (width < 150), text


def test_a_successful_run_s_summary_fits_80_columns_with_long_names() -> None:
    """With 44-character extractor names the table was printed 98 columns wide (the terminal
    wrapped its rows): when nothing failed, the empty error column goes too, and is named."""
    import io

    from rich.console import Console

    from engine.events import RunFinished, TaskFinished
    from engine.run.runner import RunResult
    from lorch_tui.summary import print_summary

    long = "roster--harbor-north-secondary-practice-site"
    result = RunResult()
    for stage in ("extract", "canonize", "index"):
        task = f"{stage}:{long}"
        result.finished[task] = TaskFinished(task_id=task, stage=stage, extractor=long, account="a",
                                             status="success", attempt=1, records=123_456, parts=1,
                                             bytes=1_000, uncompressed_bytes=4_000, duration_s=1.5)
    result.summary = RunFinished(run_id="r1", status="success", tasks=3, succeeded=3, failed=0, cancelled=0,
                                 records=123_456, duration_s=3.0)
    out = io.StringIO()
    print_summary(Console(file=out, width=80, color_system=None), result, "logs/x.log")
    table = out.getvalue().split("(left out")[0]
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert f"index:{long}" in table and "123,456" in table and "error" not in table
    assert "(left out at this width: ratio, parts, bytes, duration, error)" in out.getvalue()


def test_a_failed_task_line_names_the_worker_s_file_or_says_what_the_code_means(tmp_path: Path) -> None:
    """Cron mail said only `canonize:x failed WRITE_FAILED: 0 records in 0.0s`: the worker's own
    stderr file (the errno and path) is named; with no file, the code's meaning is said."""
    from tests.helpers import tiny_tap

    tap = tiny_tap(tmp_path, 3)
    assert run_cli("run", "--config", str(tap.config), "--stage", "extract").returncode == 0
    canonical = tap.workspace / "canonical"
    if canonical.exists():
        import shutil
        shutil.rmtree(canonical)
    canonical.write_bytes(b"")
    canonical.chmod(0o600)
    res = run_cli("run", "--config", str(tap.config), "--stage", "canonize", "--skip-permissions")
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(x for x in res.stdout.splitlines() if "canonize:tiny failed" in x)
    assert f"diagnostics: {tap.workspace / 'diagnostics' / 'canonize' / 'tiny.stderr.log'}" in line, line
    canonical.unlink()
    (tap.account_dir / "LATEST.json").write_text("{not json")
    (tap.account_dir / "LATEST.json").chmod(0o600)
    res = run_cli("run", "--config", str(tap.config), "--stage", "canonize")
    line = next(x for x in res.stdout.splitlines() if "canonize:tiny failed" in x)
    assert "LATEST_INVALID" in line and "LATEST.json does not parse" in line, line
    assert exit_text("CANCELLED", -15) == "stopped by lorchestra: the run was cancelled (signal 15)"
    assert exit_text("TIMEOUT", -15) == "stopped by lorchestra at the extractor's timeout_s (signal 15)"
    assert exit_text("TIMEOUT", -15, "canonize") == "stopped by lorchestra at stages.canonize.timeout_s (signal 15)"
    assert exit_text("BATCH_FILE_MISSING", -15) == "stopped by lorchestra after the error (signal 15)"


def test_the_summary_never_points_to_a_log_that_was_not_written(tmp_path: Path) -> None:
    from tests.helpers import tiny_tap

    tap = tiny_tap(tmp_path, 2)
    assert run_cli("run", "--config", str(tap.config), "--stage", "extract").returncode == 0
    logs = tap.workspace / "logs"
    for old in logs.iterdir():
        old.unlink()
    logs.rmdir()
    logs.write_bytes(b"")
    logs.chmod(0o600)
    res = run_cli("run", "--config", str(tap.config), "--stage", "extract")
    last = res.stdout.splitlines()[-1]
    assert "log: not written (" in last and "see the warning above" in last, res.stdout + res.stderr


def test_a_worker_file_holding_only_its_attempt_line_is_not_named(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [{"name": "quiet", "domain": "d", "source": "s", "account": "a", "kind": "singer",
                                   "command": ["/bin/true"], "retries": 0}])
    res = run_cli("run", "--config", str(cfg), "--stage", "extract")
    line = next(x for x in res.stdout.splitlines() if "extract:quiet failed" in x)
    assert "TAP_OUTPUT_EMPTY" in line and "diagnostics:" not in line, line
