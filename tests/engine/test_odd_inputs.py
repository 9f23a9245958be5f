"""Odd inputs a hostile tester tries: names with a trailing newline, an empty --workspace,
--wait nan, a FIFO planted as LATEST.json, a damaged index or run history, a LATEST part
truncated behind an unchanged manifest. Each is refused or named for what it is, through
the real CLI, never hanging (every call has a timeout)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from engine.store.fsutil import is_safe_segment
from tests.helpers import (
    REPO,
    account_dir,
    clean_env,
    demo_extractor,
    log_events,
    manifest,
    run_cli,
    runs_of,
    write_config,
)

STAGES = {"canonize": {"mappings": [{"source": "gmail", "stream": "messages",
                                     "transform": "email/gmail_to_canonical_v1"}]}}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    ex = demo_extractor("mail", "gmail", records=5)
    cfg = write_config(tmp_path, [ex], stages=STAGES)
    res = run_cli("run", "--config", str(cfg), timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return cfg, ex


@pytest.mark.parametrize("name", ["acct1\n", "acct1\r", "\nacct1", "a/b", "..", "", "x" * 129, "é"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    assert not is_safe_segment(name)
    ex = demo_extractor("mail", "gmail", records=1)
    ex["account"] = name
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"workspace": str(tmp_path / "ws"), "extractors": [ex]}))
    res = run_cli("validate", "--config", str(cfg), "--skip-permissions", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "is not a safe name" in res.stdout + res.stderr
    assert not (tmp_path / "ws").exists()


def test_safe_names_still_pass() -> None:
    for name in ("acct1", "acct1-personal", "a.b_c", "x" * 128):
        assert is_safe_segment(name)


def test_an_empty_workspace_is_an_error_not_the_configs(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=1)])
    for args, env in ((["--workspace", ""], None), (["--workspace", "  "], None), ([], {"LORCH_WORKSPACE": ""})):
        e = {**os.environ, **(env or {})}
        e = {k: v for k, v in e.items() if not k.startswith("LORCH_") or k in (env or {})}
        res = run_cli("run", "--stage", "extract", "--config", str(cfg), *args, env=e, timeout=60)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "is empty" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "ws").exists(), "the config's workspace was not used"


def test_a_tilde_user_that_names_no_user_is_an_error_not_a_folder_beside_the_config(tmp_path: Path) -> None:
    """`workspace: ~nosuchuser/ws` stayed as written and became `<config folder>/~nosuchuser/ws`."""
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=1)], workspace="~nosuchuser-lorch/ws")
    res = run_cli("run", "--dry-run", "--config", str(cfg), timeout=60)
    assert res.returncode == 2 and "names no user of this machine" in res.stderr, res.stdout + res.stderr
    (tmp_path / "ok").mkdir()
    ok = write_config(tmp_path / "ok", [demo_extractor("mail", "gmail", records=1)])
    res = run_cli("status", "--config", str(ok), "--workspace", "~nosuchuser-lorch/ws", timeout=60)
    assert res.returncode == 2 and "names no user of this machine" in res.stderr, res.stdout + res.stderr
    assert not list(tmp_path.rglob("~nosuchuser-lorch*"))


def test_an_empty_config_is_an_error_not_the_demo(tmp_path: Path) -> None:
    for prog, args, env in (("lorch_tui.cli", ["status", "--config", ""], None),
                            ("lorch_tui.cli", ["run", "--config", "  ", "--demo"], None),
                            ("lorch_tui.cli", ["status"], {"LORCH_CONFIG": ""}),
                            ("lorch_tui.tui_main", ["--no-ui", "--config", ""], None)):
        e = {k: v for k, v in os.environ.items() if not k.startswith("LORCH_")}
        res = run_cli(*args, prog=prog, cwd=tmp_path, env={**e, **(env or {})}, timeout=60)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "is empty" in res.stderr and "Traceback" not in res.stderr
        assert "lorchestra-demo" not in res.stdout, "the bundled demo was not used"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e99", "soon"])
def test_wait_needs_finite_seconds(tmp_path: Path, value: str) -> None:
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=1)])
    for prog, args in (("lorch_tui.cli", ("run", "--wait", value)),
                       ("lorch_tui.cli", ("clean", "--all", "--yes", "--wait", value)),
                       ("lorch_tui.tui_main", ("--no-ui", "--wait", value))):
        res = run_cli(*args, "--config", str(cfg), prog=prog, timeout=30)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "number of seconds" in res.stderr
    assert not (tmp_path / "ws").exists()


def test_a_fifo_as_latest_blocks_nothing(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    cfg, ex = built
    ws = tmp_path / "ws"
    latest = account_dir(ws, ex) / "LATEST.json"  # type: ignore[arg-type]
    latest.unlink()
    os.mkfifo(latest, 0o600)
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 4, res.stdout + res.stderr
    assert "FIFO" in res.stderr and str(latest) in res.stderr
    res = run_cli("validate", "--config", str(cfg), timeout=60)
    assert res.returncode == 4 and "FIFO" in res.stdout
    res = run_cli("verify", "--config", str(cfg), timeout=60)  # read-only: no scan, but no hang either
    assert res.returncode == 1 and "LATEST_INVALID" in res.stdout
    res = run_cli("run", "--stage", "canonize", "--skip-permissions", "--force", "--config", str(cfg), timeout=60)
    assert res.returncode == 1
    final = [e for e in log_events(ws) if e["type"] == "task_finished"][-1]
    assert final["error_code"] == "LATEST_INVALID"


@pytest.mark.parametrize("text", [
    "garbage{", "{}", '{"dt": "2026-11-30", "run_id": 20261130}',
    '{"dt": "2026-11-30", "run_id": "20261130T010203Z", "updated_at": 7}',
    '{"dt": "../..", "run_id": "20261130T010203Z"}',
])
def test_a_damaged_latest_is_named_by_status_not_shown_as_never_extracted(
        built: tuple[Path, dict[str, object]], tmp_path: Path, text: str) -> None:
    cfg, ex = built
    latest = account_dir(tmp_path / "ws", ex) / "LATEST.json"  # type: ignore[arg-type]
    latest.write_text(text)
    res = run_cli("status", "--config", str(cfg), timeout=60)
    assert res.returncode == 1 and "LATEST_INVALID" in res.stdout and str(latest) in res.stdout, res.stdout
    res = run_cli("status", "--json", "--config", str(cfg), timeout=60)
    import orjson
    doc = orjson.loads(res.stdout)
    assert [p["code"] for p in doc["problems"]] == ["LATEST_INVALID"]


def test_a_latest_naming_a_missing_run_is_named_by_status(built: tuple[Path, dict[str, object]],
                                                          tmp_path: Path) -> None:
    """`status` exited 0 with nothing to say while `verify` said RUN_MISSING."""
    cfg, ex = built
    latest = account_dir(tmp_path / "ws", ex) / "LATEST.json"  # type: ignore[arg-type]
    latest.write_text('{"dt": "2026-01-01", "run_id": "20260101T010203Z", "updated_at": null, "records": 5}')
    res = run_cli("status", "--config", str(cfg), timeout=60)
    assert res.returncode == 1 and "RUN_MISSING" in res.stdout and "run_id=20260101T010203Z" in res.stdout, res.stdout


def test_a_damaged_index_is_named_with_how_to_rebuild(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    cfg, _ = built
    ws = tmp_path / "ws"
    db = ws / "vector-store" / "index.sqlite"
    for f in db.parent.glob("index.sqlite-*"):
        f.unlink()
    db.write_bytes(b"this is not a database, it was damaged by a hostile tester" * 40)
    res = run_cli("query", "--text", "hello", "--config", str(cfg), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "damaged" in res.stderr and "--stage index --force" in res.stderr and "missing" not in res.stderr
    res = run_cli("status", "--config", str(cfg), timeout=60)
    assert res.returncode == 1 and "INDEX_CORRUPT" in res.stdout and "corrupt" in res.stdout
    res = run_cli("verify", "--deep", "--config", str(cfg), timeout=60)  # it said "all verified"
    assert res.returncode == 1 and "INDEX_CORRUPT" in res.stdout and "all verified" not in res.stdout, res.stdout
    res = run_cli("run", "--stage", "index", "--force", "--config", str(cfg), timeout=60)
    assert res.returncode == 1
    final = [e for e in log_events(ws) if e["type"] == "task_finished"][-1]
    assert final["error_code"] == "INDEX_CORRUPT"


def test_a_garbage_index_is_index_corrupt_in_the_project_task_too(tmp_path: Path) -> None:
    """A garbage vector-store/index.sqlite: the index tasks failed INDEX_CORRUPT (with how to
    rebuild) and the project task, reading the same file, INDEX_DB_ERROR ("SQLite failed")."""
    ws = tmp_path / "ws"
    env = clean_env(LORCH_DEMO_RECORDS="10")
    res = run_cli("run", "--demo", "--workspace", str(ws), env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    db = ws / "vector-store" / "index.sqlite"
    for f in db.parent.glob("index.sqlite-*"):
        f.unlink()
    db.write_bytes(b"garbage, not a database" * 200)
    res = run_cli("run", "--demo", "--force", "--stage", "project", "--workspace", str(ws), env=env, timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    finished = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "project"]
    assert finished[-1]["error_code"] == "INDEX_CORRUPT", finished[-1]
    assert "INDEX_DB_ERROR" not in res.stdout + res.stderr
    assert "project:clients failed INDEX_CORRUPT" in res.stdout + res.stderr and "--stage index --force" in res.stdout + res.stderr


def test_a_locked_history_is_not_no_history(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    """A history another process held locked read as "last run: none recorded yet", exit 0
    (and `status --json` said `"last_run": null`): a script concluded nothing ever ran."""
    import sqlite3

    cfg, _ = built
    db = tmp_path / "ws" / "state" / "lorch.sqlite"
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        res = run_cli("status", "--config", str(cfg), timeout=60)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "STATE_DB_UNREADABLE" in res.stdout and "none recorded yet" not in res.stdout
        assert "try again" in res.stdout
    finally:
        holder.close()
    res = run_cli("status", "--config", str(cfg), timeout=60)
    assert res.returncode == 0 and "last run: " in res.stdout and "none recorded" not in res.stdout


def test_a_history_that_is_no_file_is_unreadable_not_none(built: tuple[Path, dict[str, object]],
                                                         tmp_path: Path) -> None:
    """A folder (or a FIFO) where state/lorch.sqlite belongs: `run` warned it could not write
    the history, and `status` said "last run: none recorded yet", exit 0."""
    cfg, _ = built
    db = tmp_path / "ws" / "state" / "lorch.sqlite"
    for f in db.parent.glob("lorch.sqlite*"):
        f.unlink()
    db.mkdir(mode=0o700)
    res = run_cli("run", "--stage", "extract", "--config", str(cfg), timeout=120)
    assert "cannot write the run history" in res.stderr, res.stdout + res.stderr
    for make, what in ((lambda: None, "a folder"), (lambda: (db.rmdir(), os.mkfifo(db, 0o600)), "a named pipe")):
        make()
        res = run_cli("status", "--config", str(cfg), timeout=60)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "STATE_DB_UNREADABLE" in res.stdout and "none recorded yet" not in res.stdout, res.stdout
        assert f"{what}, not a file" in res.stdout and "mv " in res.stdout
        res = run_cli("status", "--json", "--config", str(cfg), timeout=60)
        assert res.returncode == 1 and '"STATE_DB_UNREADABLE"' in res.stdout


def test_a_damaged_history_is_named_with_how_to_rebuild(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    cfg, _ = built
    db = tmp_path / "ws" / "state" / "lorch.sqlite"
    for f in db.parent.glob("lorch.sqlite-*"):
        f.unlink()
    db.write_bytes(os.urandom(8192))
    res = run_cli("status", "--config", str(cfg), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "STATE_DB_CORRUPT" in res.stdout and "none recorded yet" not in res.stdout
    assert "mv " in res.stdout and "logs/pipeline-" in res.stdout
    res = run_cli("status", "--json", "--config", str(cfg), timeout=60)
    assert '"STATE_DB_CORRUPT"' in res.stdout
    res = run_cli("run", "--stage", "extract", "--config", str(cfg), timeout=120)
    assert res.returncode == 0, "a damaged history never fails a run"
    assert "damaged" in res.stderr and "mv " in res.stderr
    db.rename(db.with_name("lorch.sqlite.damaged"))
    assert run_cli("run", "--stage", "extract", "--config", str(cfg), timeout=120).returncode == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_a_truncated_latest_part_is_not_skipped(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    cfg, ex = built
    ws = tmp_path / "ws"
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 0 and "skipped" in res.stdout, "unchanged: skipped"
    [run] = runs_of(account_dir(ws, ex))  # type: ignore[arg-type]
    part = run / manifest(run)["parts"][0]["file"]
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    final = [e for e in log_events(ws) if e["type"] == "task_finished"][-1]
    assert final["error_code"] == "CHECKSUM_MISMATCH"
    # same size, other bytes, other mtime: re-read and caught too
    part.write_bytes(bytes(len(data)))
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 1
    part.write_bytes(data)  # restored: the output is rebuilt and then skipped again
    assert run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60).returncode == 0
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 0 and "skipped" in res.stdout


def test_a_fifo_as_the_canonical_file_blocks_nothing(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    cfg, _ = built
    ws = tmp_path / "ws"
    data = ws / "canonical" / "gmail" / "mail.jsonl"
    data.unlink()
    os.mkfifo(data, 0o600)
    res = run_cli("verify", "--config", str(cfg), timeout=60)
    assert res.returncode == 1 and "CANONICAL_MISMATCH" in res.stdout
    # the index reads the current generation (engine.canon.publish), never the plain name, so
    # the FIFO neither blocks nor fails it; canonize re-links the plain name to a real file
    for stage, code in (("index", None), ("canonize", None)):
        res = run_cli("run", "--stage", stage, "--skip-permissions", "--force", "--config", str(cfg), timeout=60)
        final = [e for e in log_events(ws) if e["type"] == "task_finished"][-1]
        assert final.get("error_code") == code, (stage, final)
    assert data.is_file(), "canonize replaced the FIFO with a real file"


def test_clean_partials_removes_only_unfinished_runs(built: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    cfg, ex = built
    ws = tmp_path / "ws"
    acct = account_dir(ws, ex)  # type: ignore[arg-type]
    [run] = runs_of(acct)
    left = run.parent / ".run_id=20200101T000000Z.partial"  # what a SIGKILLed extract worker leaves
    left.mkdir(mode=0o700)
    (left / "part-000.jsonl.gz").write_bytes(b"\x1f\x8b" + bytes(100))
    (left / "part-000.jsonl.gz").chmod(0o600)
    res = run_cli("verify", "--all", "--config", str(cfg), timeout=60)
    assert "clean --partials" in res.stdout
    res = run_cli("clean", "--partials", "--dry-run", "--config", str(cfg), timeout=60)
    assert res.returncode == 0 and ".run_id=20200101T000000Z.partial" in res.stdout and left.is_dir()
    res = run_cli("clean", "--partials", "--yes", "--config", str(cfg), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not left.exists() and runs_of(acct) == [run] and (acct / "LATEST.json").is_file()
    assert run_cli("verify", "--all", "--config", str(cfg), timeout=60).returncode == 0


def test_a_client_name_too_long_is_a_usage_error_not_a_broken_index(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=1)])
    for args in (["query", "--client", "x" * 50_001], ["clients", "show", "y" * 50_001], ["clients", "show", " "]):
        res = run_cli(*args, "--config", str(cfg), timeout=60)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "could not be read" not in res.stderr and "Traceback" not in res.stderr
        assert "x" * 100 not in res.stderr and "y" * 100 not in res.stderr  # the value is not echoed


@pytest.mark.parametrize("value", ["99999999999999999999", "9223372036854775807", "-1"])
def test_a_count_too_large_or_negative_is_a_usage_error(tmp_path: Path, value: str) -> None:
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=1)])
    for args in (["query", "--limit", value], ["query", "--text", "x", "--limit", value],
                 ["status", "--history", value], ["clients", "show", "x", "--limit", value],
                 ["transform", "run", "email/gmail_to_canonical_v1", "--from-vault", "mail", "--limit", value]):
        res = run_cli(*args, "--config", str(cfg), timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stdout + res.stderr
        assert "internal error" not in res.stderr and "--" in res.stderr


def test_a_closed_standard_stream_is_no_traceback(tmp_path: Path) -> None:
    """`cmd >&-` or `<&-` (cron lines written in haste): Python sets the stream to None; the
    commands treat it as /dev/null instead of failing at the first isatty()."""
    import shlex
    import sys

    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=3)])
    base = f"{shlex.quote(sys.executable)} -m lorch_tui.cli"
    for cmd, want in ((f"{base} status --config {cfg} >&-", 0),
                      (f"{base} list extractors --config {cfg} >&-", 0),
                      (f"{base} clean --stage canonize --config {cfg} <&-", 0),
                      (f"{sys.executable} -m lorch_tui.tui_main --no-ui --config {cfg} >&-", 0)):
        res = subprocess.run(["bash", "-c", cmd], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env=clean_env())
        assert res.returncode == want and "Traceback" not in res.stderr, (cmd, res.stderr)
    assert (tmp_path / "ws" / "vault").is_dir(), "the headless run ran with its stdout closed"
    res = subprocess.run(["bash", "-c", f"{base} clean --stage canonize --config {cfg} <&-"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, env=clean_env())
    assert res.returncode == 2 and "refusing to delete without confirmation" in res.stdout + res.stderr


def test_config_files_that_cannot_be_read_are_named_with_why(tmp_path: Path) -> None:
    """A FIFO as the config blocked for ever; a folder, non-UTF-8 bytes or an alias that
    contains itself gave an exception's class name or "internal error (RecursionError)"."""
    fifo, folder, latin, loop, bomb = (tmp_path / n for n in ("fifo.yaml", "dir.yaml", "latin.yaml", "loop.yaml",
                                                              "bomb.yaml"))
    os.mkfifo(fifo)
    folder.mkdir()
    latin.write_bytes(b"workspace: /tmp/x\npipeline: {name: caf\xe9}\n")
    loop.write_text("workspace: ./ws\nextractors: &a [*a]\n")
    # seven lines of aliases of aliases: 10 million values, 2.2 GB and 14 s before any check
    levels = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    bomb.write_text("\n".join([*levels, "workspace: ./ws"]) + "\n")
    for path, says in ((fifo, "it is not a regular file"), (folder, "it is a folder"),
                       (latin, "it is not UTF-8 text (byte 38)"),
                       (loop, "loop.yaml:2: extractors[0]: a YAML alias refers to the value that holds it"),
                       (bomb, "bomb.yaml: the config expands to more than 200,000 values")):
        for args in (["list", "extractors"], ["validate", "--quick"]):
            res = run_cli(*args, "--config", str(path), timeout=30)
            assert res.returncode == 2, (path.name, res.stdout + res.stderr)
            assert says in res.stdout + res.stderr and "internal error" not in res.stderr, res.stdout + res.stderr
