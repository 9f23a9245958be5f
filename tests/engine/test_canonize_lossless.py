"""Canonize keeps what it cannot compare, never rounds a number, and reads both vault formats.

A script tap replays ``run-N.singer`` on its N-th start, so each test writes its runs byte by
byte; the CLI runs extract and canonize as real subprocesses. A format 1 run (the line format
before the lossless vault) is written here the way the old writer wrote it, to prove older
workspaces keep working: canonize, ``verify --deep`` and the dashboard's run summary.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from engine.names import Namer
from engine.ops.inspect import run_info
from engine.ops.verify import verify
from engine.stages.chain import key_digest
from engine.store.workspace import Workspace
from tests.helpers import log_events, manifest, run_cli, runs_of

TAP = r'''
import pathlib, sys
folder = pathlib.Path(sys.argv[1])
counter = folder / "count"
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
sys.stdout.buffer.write((folder / f"run-{n}.singer").read_bytes())
'''


def schema(key: list[str]) -> bytes:
    return orjson.dumps({"type": "SCHEMA", "stream": "things", "key_properties": key,
                         "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}})


def rec(body: bytes) -> bytes:
    return b'{"type":"RECORD","stream":"things","record":' + body + b"}"


STATE = b'{"type":"STATE","value":{"bookmark":1}}'


def setup(tmp: Path, runs: list[list[bytes]], *, max_rejects: int = 0, incremental: bool = True) -> Path:
    folder = tmp / "tap"
    folder.mkdir()
    (folder / "tap.py").write_text(TAP)
    for n, messages in enumerate(runs, start=1):
        (folder / f"run-{n}.singer").write_bytes(b"".join(m + b"\n" for m in messages))
    tdir = tmp / "registry" / "transforms" / "test"
    tdir.mkdir(parents=True)
    (tdir / "thing_v1.jsonata").write_text(
        '{"source_id": $string(id), "email": email, "metric": metric, "amount": amount}\n')
    (tdir / "thing_v1.meta.yaml").write_text(yaml.safe_dump({
        "id": "test/thing_v1", "version": 1, "input": {"source": "things", "stream": "things"},
        "output": {"kind": "thing", "schema": "thing.v1"}, "description": "test", "samples": []}))
    sdir = tmp / "registry" / "schemas"
    sdir.mkdir()
    props: dict[str, Any] = {k: {"type": "string"} for k in ("kind", "source", "account", "source_id", "email")}
    props.update(metric={"type": "number"}, amount={"type": "number"})
    (sdir / "thing.v1.json").write_bytes(orjson.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "required": ["kind", "source", "account"], "properties": props, "additionalProperties": False}))
    cfg = {"workspace": str(tmp / "ws"),
           "extractors": [{"name": "things", "domain": "test", "source": "things", "account": "a",
                           "kind": "singer", "command": [sys.executable, str(folder / "tap.py"), str(folder)],
                           "incremental": incremental}],
           "stages": {"canonize": {"mappings": [{"source": "things", "stream": "things",
                                                  "transform": "test/thing_v1", "max_rejects": max_rejects}],
                                   "transforms_dir": str(tmp / "registry" / "transforms"),
                                   "schemas_dir": str(tmp / "registry" / "schemas")}}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(cfg: Path, *stages: str) -> None:
    args = [a for s in stages for a in ("--stage", s)]
    res = run_cli("run", *args, "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr


def canonical(tmp: Path) -> list[dict[str, Any]]:
    data = (tmp / "ws" / "canonical" / "things" / "a.jsonl").read_bytes()
    return [orjson.loads(line) for line in data.splitlines()]


def meta(tmp: Path) -> dict[str, Any]:
    return orjson.loads((tmp / "ws" / "canonical" / "things" / "a.meta.json").read_bytes())  # type: ignore[no-any-return]


def test_records_without_their_key_are_never_superseded(tmp_path: Path) -> None:
    """The issue's reproduction: {metric:40} in run 2 must not replace run 1's keyless records."""
    cfg = setup(tmp_path, [[schema(["id"]), rec(b'{"id":1}'), rec(b'{"metric":20}'), rec(b'{"metric":30}'), STATE],
                           [schema(["id"]), rec(b'{"metric":40}'), rec(b'{"id":null,"metric":50}'), STATE]])
    run(cfg, "extract", "canonize")
    run(cfg, "extract", "canonize")
    docs = canonical(tmp_path)
    assert [(d.get("source_id"), d.get("metric")) for d in docs] == [
        (None, 40), ("null", 50), ("1", None), (None, 20), (None, 30)]  # newest run first, in order
    m = meta(tmp_path)
    assert m["superseded"] == 0 and m["unkeyed"] == {"things": 4} and len(m["runs"]) == 2


def test_each_run_is_deduplicated_by_its_own_key(tmp_path: Path) -> None:
    cfg = setup(tmp_path, [
        [schema(["id"]), rec(b'{"id":1,"email":"a@x"}'), rec(b'{"id":2,"email":"b@x"}'), STATE],
        [schema(["email"]), rec(b'{"id":3,"email":"b@x"}'), STATE],
        [schema(["email"]), rec(b'{"id":4,"email":"b@x"}'), STATE]])
    for _ in range(3):
        run(cfg, "extract", "canonize")
    # run 3 replaces run 2's b@x (same key, email); run 1 was keyed by id, so it stays
    assert sorted(d["source_id"] for d in canonical(tmp_path)) == ["1", "2", "4"]
    assert meta(tmp_path)["superseded"] == 1
    [first, second, _] = runs_of(tmp_path / "ws" / "vault" / "test" / "things" / "a")
    assert manifest(second)["streams"]["things"]["schemas"][0]["key_properties"] == ["email"]
    assert manifest(first)["streams"]["things"]["schemas"][0]["sha256"] == \
        manifest(second)["streams"]["things"]["schemas"][0]["sha256"]


def test_activate_version_replaces_older_table_versions(tmp_path: Path) -> None:
    """RECORD v1, ACTIVATE 1, RECORD v2, ACTIVATE 2: only version 2 (and versionless records)
    reach the canonical file, also across an incremental chain."""
    v = b',"version":'
    cfg = setup(tmp_path, [
        [schema(["id"]), rec(b'{"id":1,"metric":1}')[:-1] + v + b"1}", rec(b'{"id":2,"metric":1}')[:-1] + v + b"1}",
         b'{"type":"ACTIVATE_VERSION","stream":"things","version":1}',
         rec(b'{"id":1,"metric":2}')[:-1] + v + b"2}", rec(b'{"id":9,"metric":0}'),
         b'{"type":"ACTIVATE_VERSION","stream":"things","version":2}', STATE],
        [schema(["id"]), rec(b'{"id":3,"metric":3}')[:-1] + v + b"3}",
         b'{"type":"ACTIVATE_VERSION","stream":"things","version":3}', STATE]])
    run(cfg, "extract", "canonize")
    assert sorted((d["source_id"], d["metric"]) for d in canonical(tmp_path)) == [("1", 2), ("9", 0)]
    assert meta(tmp_path)["deactivated"] == {"things": 2}
    run(cfg, "extract", "canonize")  # a newer table version: run 1's versioned records are gone
    assert sorted((d["source_id"], d["metric"]) for d in canonical(tmp_path)) == [("3", 3), ("9", 0)]
    assert meta(tmp_path)["deactivated"] == {"things": 3}


def test_deletion_markers_are_no_documents_and_supersede_their_key(tmp_path: Path) -> None:
    """Graph's `@removed` entry became an all-null document replacing the message; Dataverse's
    `$deletedEntity` row a SCHEMA_INVALID reject that failed the account (max_rejects 0). They
    are skipped; one with the stream's key removes the older runs' record (counted deleted),
    one whose key no older run sent (the Dataverse row here) removed nothing: counted
    unmatched, not warned (nothing stays)."""
    cfg = setup(tmp_path, [
        [schema(["id"]), rec(b'{"id":1,"metric":1}'), rec(b'{"id":2,"metric":2}'), rec(b'{"id":3,"metric":3}'),
         STATE],
        [schema(["id"]), rec(b'{"id":1,"@removed":{"reason":"deleted"}}'),
         rec(b'{"id":3,"_sdc_deleted_at":"2026-11-30T10:00:00Z"}'),
         rec(b'{"@odata.context":"https://x.crm.dynamics.com/api/data/v9.2/$metadata#contacts/$deletedEntity",'
             b'"id":"00000000-0000-0000-0000-000000000009","reason":"deleted"}'),
         rec(b'{"id":4,"metric":4,"_sdc_deleted_at":null}'), STATE]])
    run(cfg, "extract", "canonize")
    res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted((d["source_id"], d["metric"]) for d in canonical(tmp_path)) == [("2", 2), ("4", 4)]
    m = meta(tmp_path)
    assert m["deleted"] == {"things": 2} and m["rejects"] == 0  # ids 1 and 3
    assert m["deletions_unmatched"] == 1 and "DELETION_NOT_APPLIED" not in res.stdout, res.stdout  # nothing stays


def test_quickbooks_cdc_deletions_are_markers_and_a_status_column_is_not(tmp_path: Path) -> None:
    """QuickBooks' change data capture gives a deleted invoice as `{"domain": "QBO", "status":
    "Deleted", "Id": ...}` (a tap may drop `domain`: then nothing but the marker's fields): read
    as a record it replaced the invoice with an all-null one. A record of another source whose
    `status` column says Deleted stays a record."""
    cfg = setup(tmp_path, [
        [schema(["id"]), rec(b'{"id":1,"metric":1}'), rec(b'{"id":2,"metric":2}'), rec(b'{"id":3,"metric":3}'),
         STATE],
        [schema(["id"]), rec(b'{"domain":"QBO","status":"Deleted","id":1,"MetaData":{"LastUpdatedTime":"x"}}'),
         rec(b'{"status":"Deleted","id":2,"MetaData":{"LastUpdatedTime":"x"}}'),
         rec(b'{"id":3,"metric":33,"status":"Deleted"}'), STATE]])
    run(cfg, "extract", "canonize")
    run(cfg, "extract", "canonize")
    assert sorted((d["source_id"], d["metric"]) for d in canonical(tmp_path)) == [("3", 33)]
    assert meta(tmp_path)["deleted"] == {"things": 2}


def test_a_dataverse_marker_gives_id_not_the_key_and_a_late_marker_is_warned(tmp_path: Path) -> None:
    """Dataverse's `$deletedEntity` row carries `id`, the stream's key is another property:
    it superseded nothing. A marker after its own record in one run cannot take it back: the
    task says so (DELETION_NOT_APPLIED) instead of counting it deleted."""
    keyed_schema = orjson.dumps({"type": "SCHEMA", "stream": "things", "key_properties": ["cid"],
                                 "schema": {"type": "object", "properties": {"cid": {"type": "string"}}}})
    cfg = setup(tmp_path, [
        [keyed_schema, rec(b'{"cid":"a","id":1,"metric":1}'), rec(b'{"cid":"b","id":2,"metric":2}'), STATE],
        [keyed_schema, rec(b'{"@odata.context":"https://x/api/data/v9.2/$metadata#things/$deletedEntity",'
                           b'"id":"a","reason":"deleted"}'),
         rec(b'{"cid":"c","id":3,"metric":3}'), rec(b'{"cid":"c","@removed":{"reason":"deleted"}}'), STATE]])
    run(cfg, "extract", "canonize")
    res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted((d["source_id"], d["metric"]) for d in canonical(tmp_path)) == [("2", 2), ("3", 3)]
    assert "warning DELETION_NOT_APPLIED" in res.stdout and "(count 1)" in res.stdout, res.stdout
    assert meta(tmp_path)["deleted"] == {"things": 1}  # the Dataverse row, not the late one


def test_numbers_a_double_cannot_hold_are_rejected_never_rounded(tmp_path: Path) -> None:
    cfg = setup(tmp_path, [[schema(["id"]), rec(b'{"id":1,"amount":1.5,"metric":123456789012345}'),
                            rec(b'{"id":2,"amount":12345678901234567.891}'),
                            rec(b'{"id":3,"amount":1e999}'),
                            rec(b'{"id":12345678901234567890123}'),
                            rec(b'{"id":5,"metric":9007199254740993}'),
                            rec(b'{"id":6,"metric":' + b"7" * 5000 + b"}")]], max_rejects=10, incremental=False)
    run(cfg, "extract", "canonize")  # 5,000 digits (past int()'s 4,300) failed the account: PART_CORRUPT
    assert [(d["source_id"], d["amount"], d["metric"]) for d in canonical(tmp_path)] == [("1", 1.5, 123456789012345)]
    rejects = (tmp_path / "ws" / "canonical" / "things" / "a.rejects.jsonl").read_bytes().splitlines()
    assert [json.loads(r, parse_int=str)["code"] for r in rejects] == ["NUMBER_INEXACT"] * 5  # 1e999 is kept: not orjson
    for digits in (b"12345678901234567.891", b"1e999", b"12345678901234567890123", b"9007199254740993", b"7" * 5000):
        assert any(b'"record":{' in r and digits in r for r in rejects), digits[:30]
    assert meta(tmp_path)["rejects"] == 5


def test_the_default_limit_fails_on_an_inexact_number(tmp_path: Path) -> None:
    cfg = setup(tmp_path, [[schema(["id"]), rec(b'{"id":1,"amount":1e999}')]], incremental=False)
    run(cfg, "extract")
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 1
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished" and e["stage"] == "canonize"]
    assert finished[-1]["error_code"] == "REJECTS_EXCEEDED"
    # only the rejects were published: verify finds nothing wrong (no canonical output yet)
    assert (tmp_path / "ws" / "canonical" / "things" / "a.rejects.jsonl").exists()
    assert not (tmp_path / "ws" / "canonical" / "things" / "a.jsonl").exists()
    ok = run_cli("verify", "--config", str(cfg))
    assert ok.returncode == 0 and "CANONICAL_INVALID" not in ok.stdout, ok.stdout
    for path in (tmp_path / "ws" / "canonical" / "things").glob(".a.gen/*/a.rejects.jsonl"):
        path.unlink()  # a generation with nothing at all is damage, not a failed first canonize
    (tmp_path / "ws" / "canonical" / "things" / "a.rejects.jsonl").unlink()
    bad = run_cli("verify", "--config", str(cfg))
    assert bad.returncode == 1 and "CANONICAL_INVALID" in bad.stdout, bad.stdout


def write_format1_run(acct: Path, run_id: str, records: list[dict[str, Any]], state: Any) -> Path:
    """A run exactly as the writer before the lossless vault left it (manifest format 1)."""
    dt = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"
    folder = acct / f"dt={dt}" / f"run_id={run_id}"
    folder.mkdir(parents=True)
    raw = b"".join(b'{"stream":"things","record":' + orjson.dumps(r) + b"}\n" for r in records)
    data = gzip.compress(raw)
    (folder / "part-000.jsonl.gz").write_bytes(data)
    sch = {"type": "object", "properties": {"id": {"type": "integer"}}}
    m = {"format": 1, "status": "success", "extractor": "things", "kind": "singer", "domain": "test",
         "source": "things", "account": "a", "attempt": 1, "dt": dt, "run_id": run_id,
         "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z",
         "records": len(records), "bytes": len(data), "uncompressed_bytes": len(raw),
         "compression_ratio": round(len(raw) / len(data), 3),
         "streams": {"things": {"records": len(records), "schemas": [
             {"sha256": hashlib.sha256(orjson.dumps(sch, option=orjson.OPT_SORT_KEYS)).hexdigest(),
              "schema": sch, "key_properties": ["id"], "first_record": 0}]}},
         "parts": [{"file": "part-000.jsonl.gz", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                    "uncompressed_bytes": len(raw), "records": len(records), "streams": {"things": len(records)}}],
         "state": state, "state_messages": 1, "state_after_records": len(records), "error_code": None,
         "tap_exit_code": 0, "error_line": None, "stderr_lines": 0}
    (folder / "manifest.json").write_bytes(orjson.dumps(m))
    (acct / "LATEST.json").write_bytes(orjson.dumps({"dt": dt, "run_id": run_id,
                                                      "updated_at": "2026-01-01T00:00:01.000Z",
                                                      "records": len(records)}))
    ws = acct.parents[3]
    for path in [ws, *ws.rglob("*")]:  # as the workspace keeps them: dirs 0700, files 0600
        path.chmod(0o700 if path.is_dir() else 0o600)
    return folder


def test_format1_runs_stay_readable_alone_and_in_a_chain_with_format2(tmp_path: Path) -> None:
    cfg = setup(tmp_path, [[schema(["id"]), rec(b'{"id":2,"metric":22}'), rec(b'{"metric":7}'), STATE]])
    acct = tmp_path / "ws" / "vault" / "test" / "things" / "a"
    old = write_format1_run(acct, "20260101T000000Z", [{"id": 1, "metric": 1}, {"id": 2, "metric": 2}],
                            {"bookmark": 2})
    run(cfg, "canonize")
    assert sorted(d["source_id"] for d in canonical(tmp_path)) == ["1", "2"]
    namer = Namer(Workspace(tmp_path / "ws"), frozenset({"things"}))  # the dashboard's run summary
    info = run_info(old, namer)
    assert (info.status, info.records, info.parts, info.streams, info.has_state) == ("success", 2, 1, {"things": 2}, True)
    # an incremental format 2 run on top: the chain reads both formats, newest key wins
    run(cfg, "extract", "canonize")
    docs = {d.get("source_id"): d.get("metric") for d in canonical(tmp_path)}
    assert docs == {"1": 1, "2": 22, None: 7}
    m = meta(tmp_path)
    assert (m["superseded"], m["unkeyed"], len(m["runs"])) == (1, {"things": 1}, 2)
    new = runs_of(acct)[-1]
    assert manifest(new)["format"] == 2 and manifest(new)["incremental"]["from_run"] == "dt=2026-01-01/run_id=20260101T000000Z"
    assert run_info(new, namer).records == 2
    report = verify(Workspace(tmp_path / "ws"), all_runs=True, deep=True)
    assert report.problems == [] and report.runs == 2
    # deep verify reads each format its own way: a format 1 part with a wrong record count fails
    m1 = orjson.loads((old / "manifest.json").read_bytes())
    m1["parts"][0]["records"] = 3
    (old / "manifest.json").write_bytes(orjson.dumps(m1))
    assert [p.code for p in verify(Workspace(tmp_path / "ws"), all_runs=True, deep=True).problems] == ["PART_CORRUPT"]


def test_an_unknown_vault_format_is_refused(tmp_path: Path) -> None:
    cfg = setup(tmp_path, [])
    acct = tmp_path / "ws" / "vault" / "test" / "things" / "a"
    folder = write_format1_run(acct, "20260101T000000Z", [{"id": 1}], None)
    m = orjson.loads((folder / "manifest.json").read_bytes())
    m["format"] = 99
    (folder / "manifest.json").write_bytes(orjson.dumps(m))
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 1
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"]
    assert finished[-1]["error_code"] == "MANIFEST_INVALID"
    assert [p.code for p in verify(Workspace(tmp_path / "ws")).problems] == ["FORMAT_UNKNOWN"]


def test_markers_that_cannot_remove_their_record_are_warned_in_a_lone_run_and_without_a_key(
        tmp_path: Path) -> None:
    """A full run that sends a record and then its marker (an item created and deleted in one
    delta round) counted the marker deleted while the record stayed, without a warning; so did
    a marker on a stream without key properties. Both are DELETION_NOT_APPLIED; one for a key
    the run never sent removed nothing (a lone run has no older record) and is counted
    unmatched, not deleted, and not warned (nothing stays); a marker before a newer record of
    its key is undone by it (counted nowhere)."""
    keyless = orjson.dumps({"type": "SCHEMA", "stream": "things", "key_properties": [],
                            "schema": {"type": "object", "properties": {"id": {"type": "integer"}}}})
    cfg = setup(tmp_path, [[
        schema(["id"]), rec(b'{"id":1,"metric":1}'), rec(b'{"id":2,"metric":2}'),
        rec(b'{"id":2,"_sdc_deleted_at":"2026-01-01T00:00:00Z"}'),  # after its record: stays
        rec(b'{"id":3,"_sdc_deleted_at":"2026-01-01T00:00:00Z"}'), rec(b'{"id":3,"metric":3}'),  # re-created
        rec(b'{"id":9,"@removed":{"reason":"deleted"}}'),  # a key this run never sent
        keyless, rec(b'{"id":5,"metric":5}'), rec(b'{"id":5,"@removed":{"reason":"deleted"}}'),
        STATE]], incremental=False)
    res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted((d["source_id"], d["metric"]) for d in canonical(tmp_path)) == [
        ("1", 1), ("2", 2), ("3", 3), ("5", 5)]
    assert "warning DELETION_NOT_APPLIED" in res.stdout and "(count 2)" in res.stdout, res.stdout
    assert "(count 2): deletion markers that could not remove their record" in res.stdout  # its meaning
    assert meta(tmp_path)["deleted"] == {}  # ids 2 and 5 warned; id 3 re-created
    assert meta(tmp_path)["deletions_unmatched"] == 1  # id 9


def visit_schema() -> bytes:
    return orjson.dumps({"type": "SCHEMA", "stream": "things", "key_properties": ["clinic_id", "visit_no"],
                         "schema": {"type": "object", "properties": {"clinic_id": {"type": "string"}}}})


def visit(clinic: str, no: int) -> bytes:
    return rec(orjson.dumps({"clinic_id": clinic, "visit_no": no, "id": f"{clinic}-{no}", "metric": no}))


def gone(clinic: str, no: object) -> bytes:
    return rec(orjson.dumps({"clinic_id": clinic, "visit_no": no, "_sdc_deleted_at": "2026-03-02T08:00:00Z"}))


def test_a_marker_whose_key_is_the_number_written_as_a_string_removes_its_record(tmp_path: Path) -> None:
    """A reviewer's case: key [clinic_id, visit_no], a full run sends visit_no 1..4 as numbers,
    the incremental run's markers visit_no 2 and "3". Markers were matched by the raw JSON
    values only, so north/3 stayed in the canonical file, the index and the chart while the
    meta said deleted 2, without a warning. An integer and its decimal string are one key now;
    "04" is not 4 and a marker for a visit never sent removed nothing: neither is counted
    deleted; both are counted unmatched (not warned: a full sync resending soft-deleted rows
    would warn every night)."""
    cfg = setup(tmp_path, [
        [visit_schema(), visit("north", 1), visit("north", 2), visit("north", 3), visit("north", 4),
         visit("south", 3), STATE],
        [visit_schema(), gone("north", 2), gone("north", "3"), gone("north", "04"), gone("north", 9), STATE]])
    run(cfg, "extract", "canonize", "index")
    res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--stage", "index", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(d["source_id"] for d in canonical(tmp_path)) == ["north-1", "north-4", "south-3"]
    m = meta(tmp_path)
    assert m["deleted"] == {"things": 2} and len(m["runs"]) == 2, m  # north/2 and north/3
    assert m["deletions_unmatched"] == 2 and "DELETION_NOT_APPLIED" not in res.stdout, res.stdout  # "04", 9
    for sid, there in (("north-3", False), ("north-2", False), ("north-4", True), ("south-3", True)):
        q = run_cli("query", "--id", sid, "--json", "--config", str(cfg))
        found = q.returncode == 0 and q.stdout.strip() != "" and orjson.loads(q.stdout)["source_id"] == sid
        assert found is there, (sid, q.returncode, q.stdout, q.stderr)
    data, meta_bytes = (tmp_path / "ws" / "canonical" / "things" / "a.jsonl").read_bytes(), \
        (tmp_path / "ws" / "canonical" / "things" / "a.meta.json").read_bytes()
    again = run_cli("run", "--stage", "canonize", "--force", "--config", str(cfg))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "ws" / "canonical" / "things" / "a.jsonl").read_bytes() == data  # byte-identical
    assert orjson.loads((tmp_path / "ws" / "canonical" / "things" / "a.meta.json").read_bytes()) == \
        orjson.loads(meta_bytes)


def test_key_values_are_one_key_only_as_an_integer_and_its_decimal_string() -> None:
    def same(a: object, b: object) -> bool:
        return key_digest("s", ("k",), [a]) == key_digest("s", ("k",), [b])

    assert same(3, "3") and same(-3, "-3") and same(0, "0") and same(2**70, str(2**70))
    for a, b in ((3, "03"), (3, "+3"), (3, "3.0"), (3, 3.0), (3.0, "3"), (3.0, "3.0"), (True, 1), (True, "True"),
                 (True, "true"), (False, 0), (0, "-0"), (3, " 3"), ("a", "b"), (3, 4)):
        assert not same(a, b), (a, b)
    assert key_digest("s", ("a", "b"), ["north", 3]) == key_digest("s", ("a", "b"), ["north", "3"])
    assert key_digest("s", ("a", "b"), ["north", 3]) != key_digest("s", ("a", "b"), ["south", "3"])
    assert key_digest("s", ("a", "b"), ["3", 1]) != key_digest("s", ("a", "b"), ["31", ""])


def test_a_mapping_typo_never_empties_an_account_that_had_records(tmp_path: Path) -> None:
    """`stream: Form_Responses_2` for `_1`: every record unmapped, the canonical file emptied,
    and the client's PHQ-9 (item 9 positive) gone from the chart, with exit 0."""
    cfg = setup(tmp_path, [[schema(["id"]), rec(b'{"id":1,"metric":1}'), rec(b'{"id":2,"metric":2}'), STATE]],
                incremental=False)
    run(cfg, "extract", "canonize")
    before = canonical(tmp_path)
    assert len(before) == 2
    cfg.write_text(cfg.read_text().replace("stream: things", "stream: thingz"))
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg))
    assert res.returncode == 1 and "NOTHING_MAPPED" in res.stdout, res.stdout + res.stderr
    assert canonical(tmp_path) == before  # nothing replaced
    checked = run_cli("validate", "--skip-permissions", "--config", str(cfg))
    said = " ".join(checked.stdout.split())  # rich wraps long lines
    assert "no LATEST run of source things (nor the runs it builds on) holds stream 'thingz': a typo?" in said, said
    cfg.write_text(cfg.read_text().replace("stream: thingz", "stream: things"))
    assert run_cli("run", "--stage", "canonize", "--config", str(cfg)).returncode == 0


def test_a_mapped_stream_that_is_in_the_run_may_empty_the_account(tmp_path: Path) -> None:
    """NOTHING_MAPPED is a typo's signature only: a run that still holds the mapped stream (its
    SCHEMA with no rows, beside an unmapped stream's records) empties the account as the source
    says; refused, it kept records deleted at the source in every chart."""
    other = [b'{"type":"SCHEMA","stream":"others","key_properties":[],"schema":{"type":"object"}}',
             b'{"type":"RECORD","stream":"others","record":{"x":1}}']
    cfg = setup(tmp_path, [[schema(["id"]), rec(b'{"id":1,"metric":1}'), *other, STATE],
                           [schema(["id"]), *other, STATE]], incremental=False)
    run(cfg, "extract", "canonize")
    assert len(canonical(tmp_path)) == 1
    run(cfg, "extract", "canonize")
    assert canonical(tmp_path) == []
