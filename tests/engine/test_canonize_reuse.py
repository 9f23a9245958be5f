"""The same records under a new run id: republished, not transformed again (engine/canon/reuse.py);
indexed by updating the rows' provenance, not by reading the file again (engine/index/load.py).

Real demo taps through the real CLI: a second extract of an unchanged source writes parts
byte for byte equal to the first run's; canonize then links the current output into a new
generation whose meta names the new run. A new output file (another inode) is what a
transform writes; anything but the run ids differing, or ``--force``, transforms again.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from engine.index.load import AccountLoader
from engine.store.workspace import Workspace
from tests.helpers import (
    account_dir,
    canonical_paths,
    demo_extractor,
    demo_mappings,
    latest,
    log_events,
    manifest,
    run_cli,
    write_config,
)


def config(tmp: Path, ex: dict[str, Any], max_rejects: int | None = None) -> Path:
    mappings = [{**m, **({"max_rejects": max_rejects} if max_rejects is not None else {})} for m in demo_mappings()]
    return write_config(tmp, [ex], stages={"canonize": {"mappings": mappings}})


def run(cfg: Path, *args: str) -> None:
    res = run_cli("run", "--config", str(cfg), *args)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def last_canonize(ws: Path) -> dict[str, Any]:
    return [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "canonize"][-1]


def parts(ws: Path, ex: dict[str, Any]) -> list[str]:
    run_ref = latest(account_dir(ws, ex))
    assert run_ref is not None
    m = manifest(account_dir(ws, ex) / f"dt={run_ref['dt']}" / f"run_id={run_ref['run_id']}")
    return [p["sha256"] for p in m["parts"]]


def canonized(tmp_path: Path) -> tuple[dict[str, Any], Path, Path, dict[str, Path]]:
    """A demo Gmail account extracted and canonized once: (extractor, config, workspace, canonical paths)."""
    ex = demo_extractor("mail", "gmail", records=60, seed=4)
    cfg = config(tmp_path, ex)
    run(cfg, "--stage", "extract", "--stage", "canonize")
    ws = tmp_path / "ws"
    return ex, cfg, ws, canonical_paths(ws, ex)


def test_the_same_records_under_a_new_run_are_republished_not_transformed(tmp_path: Path) -> None:
    ex, cfg, ws, paths = canonized(tmp_path)
    data, meta = paths["data"].read_bytes(), orjson.loads(paths["meta"].read_bytes())
    inode, first_parts, first_run = paths["data"].stat().st_ino, parts(ws, ex), latest(account_dir(ws, ex))
    run(cfg, "--stage", "extract")
    new_run = latest(account_dir(ws, ex))
    assert new_run != first_run and parts(ws, ex) == first_parts  # a new run, the same bytes
    run(cfg, "--stage", "canonize")
    event = last_canonize(ws)
    assert event["status"] == "success" and event["records"] == 60
    assert paths["data"].stat().st_ino == inode and paths["data"].read_bytes() == data
    after = orjson.loads(paths["meta"].read_bytes())
    assert after["inputs"]["run"]["run_id"] == new_run["run_id"] and after["runs"] == [new_run["run_id"]]
    assert after["output"] == meta["output"] and after["inputs"]["run"]["parts"] == first_parts
    assert set(after["part_stats"]) != set(meta["part_stats"])  # the new run's parts, checked
    run(cfg, "--stage", "canonize")
    assert last_canonize(ws)["status"] == "skipped"  # and now up to date
    res = run_cli("verify", "--all", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    run(cfg, "--stage", "index")  # the index reads the republished file like any other


def test_a_damaged_part_of_the_new_run_fails_instead_of_being_named(tmp_path: Path) -> None:
    ex, cfg, ws, paths = canonized(tmp_path)
    meta = paths["meta"].read_bytes()
    run(cfg, "--stage", "extract")
    new_run = latest(account_dir(ws, ex))
    assert new_run is not None
    part = account_dir(ws, ex) / f"dt={new_run['dt']}" / f"run_id={new_run['run_id']}" / "part-000.jsonl.gz"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the same size, other bytes
    part.write_bytes(bytes(data))
    res = run_cli("run", "--config", str(cfg), "--stage", "canonize")
    assert res.returncode == 1
    event = last_canonize(ws)
    assert event["status"] == "failed" and event["error_code"] == "CHECKSUM_MISMATCH"
    assert paths["meta"].read_bytes() == meta, "the output still names the run it was built from"


def test_other_records_other_settings_or_force_transform_again(tmp_path: Path) -> None:
    ex, cfg, ws, paths = canonized(tmp_path)
    run(cfg, "--stage", "extract")
    inode = paths["data"].stat().st_ino
    run(cfg, "--stage", "canonize", "--force")
    assert paths["data"].stat().st_ino != inode, "--force transforms"
    run(cfg, "--stage", "extract")
    inode = paths["data"].stat().st_ino
    stricter = config(tmp_path, ex, max_rejects=5)  # the same parts, another setting of the output
    run(stricter, "--stage", "canonize")
    assert paths["data"].stat().st_ino != inode
    other = demo_extractor("mail", "gmail", records=61, seed=4)
    run(config(tmp_path, other, max_rejects=5), "--stage", "extract")
    inode = paths["data"].stat().st_ino
    run(config(tmp_path, other, max_rejects=5), "--stage", "canonize")
    assert paths["data"].stat().st_ino != inode and len(paths["data"].read_bytes().splitlines()) == 61


def test_the_index_takes_the_same_file_under_new_provenance_without_reading_it(tmp_path: Path) -> None:
    ex = demo_extractor("mail", "gmail", records=40, seed=6)
    cfg = config(tmp_path, ex)
    run(cfg, "--stage", "extract", "--stage", "canonize", "--stage", "index")
    ws = tmp_path / "ws"
    db = ws / "vector-store" / "index.sqlite"
    docs_sql = "SELECT doc_id, entity_id, sha256, vault_run FROM documents WHERE account = 'mail' ORDER BY doc_id"
    acc_sql = "SELECT canonical_sha256, inputs_sha256, generation, vault_run FROM accounts WHERE account = 'mail'"
    with contextlib.closing(sqlite3.connect(db)) as con:
        docs, acc = con.execute(docs_sql).fetchall(), con.execute(acc_sql).fetchone()
        fts = con.execute("SELECT rowid, title FROM fts ORDER BY rowid").fetchall()
    run(cfg, "--stage", "extract", "--stage", "canonize")  # the same records, a new run
    result = AccountLoader(Workspace(ws), "gmail", "mail").run()
    assert result.status == "success" and result.documents == 40 and result.inserted == result.deleted == 0
    assert "read" not in result.seconds, "no line of the file was read"
    with contextlib.closing(sqlite3.connect(db)) as con:
        after_docs, after_acc = con.execute(docs_sql).fetchall(), con.execute(acc_sql).fetchone()
        assert con.execute("SELECT rowid, title FROM fts ORDER BY rowid").fetchall() == fts
    assert after_acc[0] == acc[0] and after_acc[1] != acc[1] and after_acc[2] == acc[2] + 1
    assert after_acc[3] != acc[3] and {d[3] for d in after_docs} == {after_acc[3]}  # the new run, every row
    assert [d[:3] for d in after_docs] == [d[:3] for d in docs]  # the same rows, not rewritten
    assert AccountLoader(Workspace(ws), "gmail", "mail").run().status == "skipped"
    run(cfg, "--stage", "extract", "--stage", "canonize", "--stage", "index")  # and through the worker
    assert [e for e in log_events(ws) if e["type"] == "task_finished"][-1]["status"] == "success"


def test_plain_names_of_two_generations_are_found_and_repaired(tmp_path: Path) -> None:
    """A canonize stopped between re-linking `{account}.jsonl` and `{account}.meta.json` left a
    pair whose sha256 disagree for readers of the plain names, and `verify` said nothing of it
    (status: canonical current). Now verify notes it (the generation the pipeline reads is
    whole: no failure) and status says outdated. Simulated by plain names that are not the
    generation's files."""
    from tests.helpers import run_cli, tiny_tap

    tap = tiny_tap(tmp_path, 3)
    assert run_cli("run", "--config", str(tap.config), "--stage", "extract", "--stage", "canonize").returncode == 0
    meta = tap.workspace / "canonical" / "tiny" / "tiny.meta.json"
    copy = meta.with_name("copy")
    copy.write_bytes(meta.read_bytes())
    copy.chmod(0o600)
    copy.replace(meta)  # same bytes, not the generation's file (a restore without hard links): fine
    assert run_cli("verify", "--config", str(tap.config)).returncode == 0
    assert "outdated" not in run_cli("status", "--config", str(tap.config)).stdout
    copy.write_bytes(meta.read_bytes().replace(b'"sha256": "', b'"sha256": "0', 1))
    copy.chmod(0o600)
    copy.replace(meta)  # the older generation's meta beside the new data: a torn pair
    res = run_cli("verify", "--config", str(tap.config))  # the engine's generation is whole: a note
    assert res.returncode == 0 and "note: 1 account(s) whose plain canonical names" in res.stdout, res.stdout
    assert "canonical/tiny/tiny.jsonl" in res.stdout
    assert "outdated" in run_cli("status", "--config", str(tap.config)).stdout
    assert run_cli("run", "--config", str(tap.config), "--stage", "canonize").returncode == 0
    res = run_cli("verify", "--config", str(tap.config))
    assert res.returncode == 0, res.stdout + res.stderr
    rejects = meta.with_name("tiny.rejects.jsonl")  # an older generation's rejects left beside new data
    rejects.write_text('{"stale": "reject"}\n')
    rejects.chmod(0o600)
    assert "plain canonical names" in run_cli("verify", "--config", str(tap.config)).stdout
    assert run_cli("run", "--config", str(tap.config), "--stage", "canonize").returncode == 0
    res = run_cli("verify", "--config", str(tap.config))
    assert not rejects.exists() and res.returncode == 0 and "plain canonical names" not in res.stdout
