"""The canonize stage through real worker subprocesses: LATEST only, checksums, determinism,
rejects, skip-when-unchanged, and every demo source with zero rejects."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import (
    account_dir,
    canonical_paths,
    clean_env,
    demo_extractor,
    demo_mappings,
    latest,
    log_events,
    manifest,
    run_cli,
    runs_of,
    write_config,
)

TAPS = ("gmail", "msgraph", "dataverse", "sheets", "quickbooks")


def config(tmp: Path, extractors: list[dict[str, Any]], mappings: list[dict[str, Any]] | None = None,
           **canon: Any) -> Path:
    return write_config(tmp, extractors, stages={"canonize": {"mappings": mappings or demo_mappings(), **canon}})


def run(cfg: Path, *args: str) -> Any:
    return run_cli("run", "--config", str(cfg), *args)


def finished(ws: Path, stage: str = "canonize") -> list[dict[str, Any]]:
    return [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == stage]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_demo_source_canonizes_with_zero_rejects(tmp_path: Path) -> None:
    exs = [demo_extractor(f"{t}-a", t, records=80, seed=3) for t in TAPS]
    cfg = config(tmp_path, exs)
    res = run(cfg)
    assert res.returncode == 0, res.stdout + res.stderr
    ws = tmp_path / "ws"
    for ex in exs:
        paths = canonical_paths(ws, ex)
        lines = paths["data"].read_bytes().splitlines()
        assert len(lines) == 80, ex["name"]
        docs = [orjson.loads(line) for line in lines]
        assert all(d["source"] == ex["source"] and d["account"] == ex["account"] and d["kind"] for d in docs)
        assert not paths["rejects"].exists()
        meta = orjson.loads(paths["meta"].read_bytes())
        assert meta["output"]["sha256"] == sha(paths["data"])
        assert meta["inputs"]["run"]["run_id"] == latest(account_dir(ws, ex))["run_id"]  # type: ignore[index]
        assert meta["output"]["records"] == 80 and meta["rejects"] == 0
    assert {e["status"] for e in finished(ws)} == {"success"}
    # the bytes of each task are its published canonical file's (status and history show them)
    sizes = {canonical_paths(ws, ex)["data"].stat().st_size for ex in exs}
    assert {e["bytes"] for e in finished(ws)} == sizes and all(s > 0 for s in sizes)
    assert all(e["uncompressed_bytes"] == e["bytes"] for e in finished(ws))


def test_deterministic_skipped_when_unchanged_and_forced_rebuild(tmp_path: Path) -> None:
    ex = demo_extractor("mail", "gmail", records=60)
    cfg = config(tmp_path, [ex])
    assert run(cfg).returncode == 0
    ws = tmp_path / "ws"
    paths = canonical_paths(ws, ex)
    first = paths["data"].read_bytes()
    assert run(cfg, "--stage", "canonize").returncode == 0
    assert finished(ws)[-1]["status"] == "skipped" and finished(ws)[-1]["bytes"] == 0  # nothing written
    paths["data"].unlink()
    assert run(cfg, "--stage", "canonize").returncode == 0
    assert finished(ws)[-1]["status"] == "success"
    assert paths["data"].read_bytes() == first, "same LATEST + transforms must give identical bytes"
    before = paths["data"].stat().st_mtime_ns
    assert run(cfg, "--stage", "canonize", "--force").returncode == 0
    assert finished(ws)[-1]["status"] == "success"
    assert paths["data"].read_bytes() == first and paths["data"].stat().st_mtime_ns != before


def test_reads_only_the_latest_run(tmp_path: Path) -> None:
    ex = demo_extractor("qb", "quickbooks", records=30, seed=1)
    cfg = config(tmp_path, [ex])
    assert run(cfg, "--stage", "extract").returncode == 0
    newer = demo_extractor("qb", "quickbooks", records=12, seed=2)
    cfg = config(tmp_path, [newer])
    assert run(cfg, "--stage", "extract").returncode == 0
    failing = demo_extractor("qb", "quickbooks", records=50, seed=3, faults={"fail_after": 40})
    cfg = config(tmp_path, [failing])
    assert run(cfg, "--stage", "extract").returncode == 1
    ws = tmp_path / "ws"
    assert len(runs_of(account_dir(ws, ex))) == 3
    assert run(cfg, "--stage", "canonize").returncode == 0
    data = canonical_paths(ws, ex)["data"].read_bytes().splitlines()
    assert len(data) == 12, "only the LATEST (second, successful) run is canonized"


def test_a_tampered_part_fails_that_account_only(tmp_path: Path) -> None:
    good = demo_extractor("good", "dataverse", records=20)
    bad = demo_extractor("bad", "dataverse", records=20, seed=9)
    cfg = config(tmp_path, [good, bad])
    assert run(cfg, "--stage", "extract").returncode == 0
    ws = tmp_path / "ws"
    [run_dir] = runs_of(account_dir(ws, bad))
    part = run_dir / manifest(run_dir)["parts"][0]["file"]
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    part.write_bytes(bytes(raw))
    res = run(cfg, "--stage", "canonize")
    assert res.returncode == 1
    by_name = {e["extractor"]: e for e in finished(ws)}
    assert by_name["bad"]["status"] == "failed" and by_name["bad"]["error_code"] == "CHECKSUM_MISMATCH"
    assert by_name["good"]["status"] == "success"
    assert not canonical_paths(ws, bad)["data"].exists()


@pytest.mark.parametrize(("max_rejects", "code"), [(0, 1), (1000, 0)])
def test_schema_violations_are_quarantined_with_counts_only(tmp_path: Path, max_rejects: int, code: int) -> None:
    registry = tmp_path / "registry"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config" / "transforms", registry / "transforms")
    schemas = shutil.copytree(Path(__file__).resolve().parents[2] / "config" / "schemas", registry / "schemas")
    schema = orjson.loads((schemas / "contact.v1.json").read_bytes())
    schema["properties"]["birth_date"] = {"type": "null", "description": "forced to fail"}
    (schemas / "contact.v1.json").write_bytes(orjson.dumps(schema))
    ex = demo_extractor("dv", "dataverse", records=30)
    maps = [{**m, "max_rejects": max_rejects} for m in demo_mappings()]
    cfg = config(tmp_path, [ex], maps, transforms_dir=str(registry / "transforms"),
                 schemas_dir=str(registry / "schemas"))
    res = run(cfg)
    assert res.returncode == code, res.stdout
    ws = tmp_path / "ws"
    event = finished(ws)[-1]
    assert event["rejects"] > 0
    rejects = [orjson.loads(line) for line in canonical_paths(ws, ex)["rejects"].read_bytes().splitlines()]
    assert len(rejects) == event["rejects"]
    assert {r["code"] for r in rejects} == {"SCHEMA_INVALID"} and all(r["record"] for r in rejects)
    # each names its run (an incremental chain's runs all have a part-000) and its transform
    assert {r["run"] for r in rejects} == {latest(account_dir(ws, ex))["run_id"]}  # type: ignore[index]
    assert {(r["stream"], r["transform"]) for r in rejects} == {("contacts", "clinical/dataverse_contact_to_contact_v1")}
    assert (canonical_paths(ws, ex)["rejects"].stat().st_mode & 0o777) == 0o600
    log_text = b"".join(p.read_bytes() for p in (ws / "logs").glob("*.log"))
    assert b"birth_date" not in log_text, "reasons stay in the rejects file"
    if code == 1:
        assert event["error_code"] == "REJECTS_EXCEEDED"
        assert not canonical_paths(ws, ex)["data"].exists()
    else:  # let through, but never silently: the run's lines, its summary and status say so
        assert event["status"] == "success"
        n = event["rejects"]
        path = canonical_paths(ws, ex)["rejects"]  # the file itself, not a pattern
        assert f"{n:,} rejected (not indexed, in no chart; the reasons: {path})" in res.stdout, res.stdout
        assert f"{n:,} rejected by canonize (not indexed)" in res.stdout.splitlines()[-1]
        status = run_cli("status", "--config", str(cfg), env=clean_env(COLUMNS="250"))
        assert f"({n:,} rejected)" in status.stdout, status.stdout


def test_unmapped_streams_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    ex = demo_extractor("qb", "quickbooks", records=30)
    only_customers = [m for m in demo_mappings() if m["stream"] == "customers"]
    cfg = config(tmp_path, [ex], only_customers)
    assert run(cfg).returncode == 0
    ws = tmp_path / "ws"
    event = finished(ws)[-1]
    assert event["unmapped"] > 0 and event["records"] + event["unmapped"] == 30
    warnings = [e for e in log_events(ws) if e["type"] == "task_warning" and e["code"] == "UNMAPPED_STREAM"]
    assert warnings and warnings[-1]["count"] == event["unmapped"]
    meta = orjson.loads(canonical_paths(ws, ex)["meta"].read_bytes())
    assert set(meta["unmapped"]) == {"invoices", "payments"}


def test_a_part_with_a_truncated_gzip_is_refused(tmp_path: Path) -> None:
    ex = demo_extractor("sh", "sheets", records=40)
    cfg = config(tmp_path, [ex])
    assert run(cfg, "--stage", "extract").returncode == 0
    ws = tmp_path / "ws"
    [run_dir] = runs_of(account_dir(ws, ex))
    m = manifest(run_dir)
    part = run_dir / m["parts"][0]["file"]
    cut = part.read_bytes()[: m["parts"][0]["bytes"] // 2]
    part.write_bytes(cut)
    # the manifest is updated to match, so only the gzip stream itself is broken
    m["parts"][0]["sha256"], m["parts"][0]["bytes"] = hashlib.sha256(cut).hexdigest(), len(cut)
    (run_dir / "manifest.json").write_bytes(orjson.dumps(m))
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(cut)
    assert run(cfg, "--stage", "canonize").returncode == 1
    assert finished(ws)[-1]["error_code"] == "PART_CORRUPT"
