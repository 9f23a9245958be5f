"""Incremental extracts and canonize: the canonical file is built from the whole chain of
runs back to the last full one, newest version of each record winning (by key_properties)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import yaml

from tests.helpers import log_events, run_cli

TAP = r'''
import json, sys
args = sys.argv[1:]
state = None
if "--state" in args:
    state = json.load(open(args[args.index("--state") + 1]))
print(json.dumps({"type": "SCHEMA", "stream": "things", "key_properties": ["id"],
                  "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}}))
if state is None:
    rows = [{"id": i, "name": f"v1-{i}"} for i in range(1, 6)]
    final = {"bookmark": 5}
else:
    rows = [{"id": 3, "name": "v2-3"}, {"id": 6, "name": "v2-6"}]
    final = {"bookmark": 6, "after": state["bookmark"]}
for r in rows:
    print(json.dumps({"type": "RECORD", "stream": "things", "record": r}))
print(json.dumps({"type": "STATE", "value": final}))
'''


def setup(tmp: Path) -> Path:
    (tmp / "tap.py").write_text(TAP)
    tdir = tmp / "registry" / "transforms" / "test"
    tdir.mkdir(parents=True)
    (tdir / "thing_v1.jsonata").write_text('{"source_id": $string(id), "name": name}\n')
    (tdir / "thing_v1.meta.yaml").write_text(yaml.safe_dump({
        "id": "test/thing_v1", "version": 1, "input": {"source": "things", "stream": "things"},
        "output": {"kind": "thing", "schema": "thing.v1"}, "description": "test", "samples": []}))
    sdir = tmp / "registry" / "schemas"
    sdir.mkdir()
    (sdir / "thing.v1.json").write_bytes(orjson.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "required": ["kind", "source", "account", "source_id"],
        "properties": {k: {"type": "string"} for k in ("kind", "source", "account", "source_id", "name")},
        "additionalProperties": False}))
    cfg = {"workspace": str(tmp / "ws"),
           "extractors": [{"name": "things", "domain": "test", "source": "things", "account": "a",
                           "kind": "singer", "command": [sys.executable, str(tmp / "tap.py")],
                           "incremental": True}],
           "stages": {"canonize": {"mappings": [{"source": "things", "stream": "things",
                                                  "transform": "test/thing_v1"}],
                                   "transforms_dir": str(tmp / "registry" / "transforms"),
                                   "schemas_dir": str(tmp / "registry" / "schemas")}}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def canonical(tmp: Path) -> dict[str, str]:
    lines = (tmp / "ws" / "canonical" / "things" / "a.jsonl").read_bytes().splitlines()
    docs = [orjson.loads(line) for line in lines]
    assert len(docs) == len({d["source_id"] for d in docs}), "one document per key"
    return {d["source_id"]: d["name"] for d in docs}


def test_incremental_runs_build_on_the_chain(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    assert run_cli("run", "--stage", "extract", "--stage", "canonize", "--config", str(cfg)).returncode == 0
    assert canonical(tmp_path) == {str(i): f"v1-{i}" for i in range(1, 6)}
    res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    # the second run held only the delta, yet canonical is complete, newest version winning
    assert canonical(tmp_path) == {"1": "v1-1", "2": "v1-2", "3": "v2-3", "4": "v1-4", "5": "v1-5", "6": "v2-6"}
    meta = orjson.loads((tmp_path / "ws" / "canonical" / "things" / "a.meta.json").read_bytes())
    assert meta["superseded"] == 1 and len(meta["runs"]) == 2
    assert "incremental_chain" in meta["inputs"]
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished" and e["stage"] == "extract"]
    assert [e["records"] for e in finished] == [5, 2]


def test_a_broken_chain_refuses_instead_of_shrinking(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    for _ in range(2):
        assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0
    runs = sorted((tmp_path / "ws" / "vault" / "test" / "things" / "a").glob("dt=*/run_id=*"))
    (runs[0] / "manifest.json").unlink()  # the full run the delta builds on is damaged
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 1
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished" and e["stage"] == "canonize"]
    assert finished[-1]["error_code"] == "INCREMENTAL_CHAIN_BROKEN"


def test_verify_checks_the_runs_an_incremental_latest_builds_on(tmp_path: Path) -> None:
    """LATEST alone is not what canonize reads for an incremental account: `verify` checks
    the chain's runs too, and names a broken chain before canonize fails on it."""
    cfg = setup(tmp_path)
    for _ in range(2):
        assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0
    assert run_cli("verify", "--deep", "--config", str(cfg)).returncode == 0
    runs = sorted((tmp_path / "ws" / "vault" / "test" / "things" / "a").glob("dt=*/run_id=*"))
    part = next(runs[0].glob("part-*.jsonl.gz"))
    part.chmod(0o600)
    part.write_bytes(part.read_bytes()[:-4] + b"\0\0\0\0")  # the full run's part is damaged
    res = run_cli("verify", "--deep", "--json", "--config", str(cfg))
    assert res.returncode == 1 and "CHECKSUM_MISMATCH" in res.stdout, res.stdout + res.stderr
    (runs[0] / "manifest.json").unlink()  # now the run is gone from the chain
    res = run_cli("verify", "--json", "--config", str(cfg))
    assert res.returncode == 1 and "CHAIN_BROKEN" in res.stdout, res.stdout + res.stderr
    res = run_cli("verify", "--all", "--json", "--config", str(cfg))
    assert res.returncode == 1 and "CHAIN_BROKEN" in res.stdout, res.stdout + res.stderr


def test_an_unkeyed_stream_s_newest_version_wins_by_document_id(tmp_path: Path) -> None:
    """A stream that declares no key_properties (or changed them) cannot be compared by key:
    the canonical document's own id tells the versions apart, so the record updated in the
    later incremental run is the one kept (the index would keep the oldest otherwise)."""
    cfg = setup(tmp_path)
    tap = (tmp_path / "tap.py").read_text().replace('"key_properties": ["id"]', '"key_properties": []')
    (tmp_path / "tap.py").write_text(tap)
    for _ in range(2):
        res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--stage", "index", "--config", str(cfg))
        assert res.returncode == 0, res.stdout + res.stderr
    assert canonical(tmp_path) == {"1": "v1-1", "2": "v1-2", "3": "v2-3", "4": "v1-4", "5": "v1-5", "6": "v2-6"}
    res = run_cli("query", "--id", "3", "--json", "--config", str(cfg))
    assert res.returncode == 0 and orjson.loads(res.stdout)["name"] == "v2-3", res.stdout + res.stderr
