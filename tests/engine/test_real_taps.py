"""Real PyPI taps, unchanged, with lorchestra as their target (and Meltano around one).

Every tool is installed from PyPI into its own venv under
``${XDG_CACHE_HOME:-~/.cache}/lorchestra/test-taps/`` on first use and reused after that
(:mod:`tests.tapvenvs`); nothing goes into the project's environment. Selected with
``-m taps``; they run by default.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import clean_env, latest, log_events, manifest, run_cli, runs_of, verify_parts
from tests.realtaps import (
    FIXTURES,
    config,
    extract,
    extractor,
    singer_case,
    vault_lines,
    venv_or_skip,
    write_json,
)
from tests.tapvenvs import ToolVenv

pytestmark = [pytest.mark.taps, pytest.mark.timeout(900)]


@pytest.fixture(scope="session")
def tap_jsonl() -> ToolVenv:
    return venv_or_skip("tap-jsonl", "0.3.1")


@pytest.fixture(scope="session")
def tap_singer_jsonl() -> ToolVenv:
    return venv_or_skip("tap-singer-jsonl", "0.1.0")


@pytest.fixture(scope="session")
def tap_spreadsheets() -> ToolVenv:
    return venv_or_skip("tap-spreadsheets", "1.1.2")


@pytest.fixture(scope="session")
def target_jsonl() -> ToolVenv:
    return venv_or_skip("target-jsonl", "0.1.4")


def acct(tmp: Path, name: str) -> Path:
    return tmp / "ws" / "vault" / "test" / name / name


# --- tap-jsonl: a folder of JSONL files through extract and canonize ------------------------

USERS = [{"id": i, "name": f"client {i}", "email": f"Client{i}@Example.org"} for i in range(1, 8)]

PERSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["kind", "id", "display_name", "email", "source", "account"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "person"}, "id": {"type": "string"}, "display_name": {"type": "string"},
        "email": {"type": "string"}, "source": {"type": "string"}, "account": {"type": "string"},
    },
}
PERSON_TRANSFORM = '{"id": "user-" & $string(id), "display_name": $uppercase(name), "email": $lowercase(email)}\n'
PERSON_META = """id: people/jsonl_user_to_person_v1
version: 1
input: {source: localfiles, stream: users}
output: {kind: person, schema: person.v1}
description: A test transform for records of tap-jsonl.
"""


def write_registry(tmp: Path) -> tuple[Path, Path]:
    transforms, schemas = tmp / "transforms", tmp / "schemas"
    (transforms / "people").mkdir(parents=True)
    schemas.mkdir()
    (transforms / "people" / "jsonl_user_to_person_v1.jsonata").write_text(PERSON_TRANSFORM)
    (transforms / "people" / "jsonl_user_to_person_v1.meta.yaml").write_text(PERSON_META)
    write_json(schemas / "person.v1.json", PERSON_SCHEMA)
    return transforms, schemas


def test_tap_jsonl_through_discovery_extract_and_canonize(tmp_path: Path, tap_jsonl: ToolVenv) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for chunk, users in (("a", USERS[:4]), ("b", USERS[4:])):
        (data / f"{chunk}.jsonl").write_bytes(b"".join(orjson.dumps(u) + b"\n" for u in users))
    tap_cfg = write_json(tmp_path / "secrets" / "tap-jsonl.json",
                         {"path": f"{data}/*.jsonl", "stream_name": "users", "primary_keys": ["id"]})
    transforms, schemas = write_registry(tmp_path)
    ex = extractor("files", [tap_jsonl.exe("tap-jsonl")], source="localfiles", config=str(tap_cfg),
                   discover=True)
    cfg = config(tmp_path, [ex], stages={"canonize": {
        "transforms_dir": str(transforms), "schemas_dir": str(schemas),
        "mappings": [{"source": "localfiles", "stream": "users", "transform": "people/jsonl_user_to_person_v1"}],
    }})
    res = extract(cfg, "files")
    assert res.returncode == 0, res.stdout + res.stderr
    account = tmp_path / "ws" / "vault" / "test" / "localfiles" / "files"
    [run] = runs_of(account)
    m = manifest(run)
    assert m["status"] == "success" and m["records"] == 7 and verify_parts(run) == 7
    assert m["catalog"]["source"] == "discovered" and m["catalog"]["discovered_now"] is True
    assert latest(account)["run_id"] == m["run_id"]  # type: ignore[index]
    cached = tmp_path / "ws" / "catalogs" / "files.json"
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert [s["tap_stream_id"] for s in orjson.loads(cached.read_bytes())["streams"]] == ["users"]
    logs = b"".join(f.read_bytes() for f in (tmp_path / "ws" / "logs").glob("*.log"))
    assert b"Example.org" not in logs and b"client 1" not in logs, "events carry no record content"

    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=200)
    assert res.returncode == 0, res.stdout + res.stderr
    canonical = tmp_path / "ws" / "canonical" / "localfiles" / "files.jsonl"
    docs = [orjson.loads(line) for line in canonical.read_bytes().splitlines()]
    assert sorted(docs, key=lambda d: d["id"]) == sorted(
        ({"kind": "person", "id": f"user-{u['id']}", "display_name": str(u["name"]).upper(),
          "email": str(u["email"]).lower(), "source": "localfiles", "account": "files"} for u in USERS),
        key=lambda d: d["id"])

    again = extract(cfg, "files")  # the cached catalog is reused, not discovered again
    assert again.returncode == 0, again.stderr
    assert manifest(runs_of(account)[-1])["catalog"]["discovered_now"] is False



def test_a_real_sdk_tap_sending_batch_messages(tmp_path: Path, tap_jsonl: ToolVenv) -> None:
    """tap-jsonl (Singer SDK) with a `batch_config` writes gzip JSONL files and sends BATCH
    messages with their file:// URLs instead of RECORDs; the vault gets the same records."""
    data, batches = tmp_path / "data", tmp_path / "batches"
    data.mkdir()
    batches.mkdir()
    (data / "u.jsonl").write_bytes(b"".join(orjson.dumps(u) + b"\n" for u in USERS))
    tap_cfg = write_json(tmp_path / "tap.json", {
        "path": f"{data}/*.jsonl", "stream_name": "users", "primary_keys": ["id"],
        "batch_config": {"encoding": {"format": "jsonl", "compression": "gzip"},
                         "storage": {"root": f"file://{batches}", "prefix": "users-"}}})
    cfg = config(tmp_path, [extractor("batched", [tap_jsonl.exe("tap-jsonl")], config=str(tap_cfg))])
    res = extract(cfg, "batched")
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(acct(tmp_path, "batched"))
    m = manifest(run)
    assert m["streams"]["users"]["batches"] >= 1 and list(batches.glob("users-*.gz"))
    assert sorted(r["record"]["id"] for r in vault_lines(run)) == [u["id"] for u in USERS]
    assert verify_parts(run) == len(USERS) and m["state"]["bookmarks"]["users"]

# --- tap-singer-jsonl: hand-written Singer files replayed verbatim --------------------------


def replay(tmp: Path, tap: ToolVenv, case: str, **settings: Any) -> tuple[Path, Any]:
    """Extract the hand-written case through tap-singer-jsonl; return (config, result)."""
    folder, _ = singer_case(tmp, case)
    tap_cfg = write_json(tmp / "tsj.json", {"source": "local", "local": {"folders": [str(folder)]},
                                            "add_record_metadata": False})
    cfg = config(tmp, [extractor(case, [tap.exe("tap-singer-jsonl")], config=str(tap_cfg), **settings)])
    return cfg, extract(cfg, case)


def test_schema_repeated_and_changed_mid_stream(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, "schema_change")
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(acct(tmp_path, "schema_change"))
    m = manifest(run)
    versions = m["streams"]["patients"]["schemas"]
    assert [v["first_record"] for v in versions] == [0, 3], "a repeated identical SCHEMA is no new version"
    assert "dob" in versions[1]["schema"]["properties"] and "dob" not in versions[0]["schema"]["properties"]
    assert [p["records"] for p in m["parts"]] == [3, 2], "a changed schema closes the part"
    assert verify_parts(run) == 5


def test_record_before_schema_fails_the_run(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, "record_before_schema")
    assert res.returncode == 1
    [run] = runs_of(acct(tmp_path, "record_before_schema"))
    assert manifest(run)["error_code"] == "SCHEMA_MISSING" and manifest(run)["error_line"] == 1
    assert latest(acct(tmp_path, "record_before_schema")) is None
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert finished["error_code"] == "SCHEMA_MISSING" and finished["line"] == 1


def test_state_is_kept_in_order_and_persisted_with_the_records(tmp_path: Path,
                                                               tap_singer_jsonl: ToolVenv) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, "state_order")
    assert res.returncode == 0, res.stderr
    [run] = runs_of(acct(tmp_path, "state_order"))
    m = manifest(run)
    assert m["state"] == {"bookmarks": {"visits": {"updated_at": "2026-01-04T00:00:00Z"}}}
    assert m["state_messages"] == 3
    assert m["state_after_records"] == 3, "the final STATE came after 3 of the 4 records"
    assert m["records"] == 4 and verify_parts(run) == 4


def test_activate_version_is_recorded_per_stream(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, "activate_version")
    assert res.returncode == 0, res.stderr
    [run] = runs_of(acct(tmp_path, "activate_version"))
    streams = manifest(run)["streams"]
    assert streams["invoices"]["activate_versions"] == [1767225600000, 1767225600000]
    assert streams["payments"]["activate_versions"] == [1767225601000]
    assert streams["invoices"]["records"] == 2 and streams["payments"]["records"] == 1


def test_batch_messages_with_local_gzip_and_plain_files(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, "batch")
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(acct(tmp_path, "batch"))
    m = manifest(run)
    assert [r["record"]["id"] for r in vault_lines(run)] == ["m0", "m1", "m2", "m3", "m4", "m5", "m9"]
    assert m["streams"]["messages"]["batches"] == 2 and m["records"] == 7
    assert m["state"] == {"bookmarks": {"messages": {"batches": 2}}} and m["state_after_records"] == 7
    assert (tmp_path / "batches" / "messages-1.jsonl.gz").exists(), "the tap's batch files are left alone"


@pytest.mark.parametrize(("case", "code", "line"), [("batch_missing", "BATCH_FILE_MISSING", 3),
                                                     ("batch_remote", "BATCH_NOT_LOCAL", 2)])
def test_a_missing_or_remote_batch_file_fails_the_run(tmp_path: Path, tap_singer_jsonl: ToolVenv,
                                                      case: str, code: str, line: int) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, case)
    assert res.returncode == 1
    [run] = runs_of(acct(tmp_path, case))
    m = manifest(run)
    assert (m["status"], m["error_code"], m["error_line"]) == ("failed", code, line)
    assert m["error_detail"]["batch_file"] == (1 if case == "batch_missing" else 0)
    assert latest(acct(tmp_path, case)) is None
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert finished["error_code"] == code and "s3://" not in orjson.dumps(finished).decode()


def test_unknown_message_types_are_counted_and_skipped(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    _, res = replay(tmp_path, tap_singer_jsonl, "unknown_type")
    assert res.returncode == 0, res.stderr
    warnings = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_warning"]
    assert [(w["code"], w["count"], w["line"]) for w in warnings] == [
        ("UNKNOWN_MESSAGE", 1, 3), ("UNKNOWN_MESSAGE", 2, 5)]
    [run] = runs_of(acct(tmp_path, "unknown_type"))
    assert verify_parts(run) == 3


def test_a_sixteen_megabyte_line(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    folder = tmp_path / "in-huge"
    folder.mkdir()
    body = "x" * (16 << 20)
    lines = [{"type": "SCHEMA", "stream": "mail", "schema": {"type": "object"}, "key_properties": []},
             {"type": "RECORD", "stream": "mail", "record": {"id": 1, "body": body}},
             {"type": "RECORD", "stream": "mail", "record": {"id": 2, "body": "short"}}]
    (folder / "huge.singer").write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    tap_cfg = write_json(tmp_path / "tsj.json", {"source": "local", "local": {"folders": [str(folder)]},
                                                 "add_record_metadata": False})
    cfg = config(tmp_path, [extractor("huge", [tap_singer_jsonl.exe("tap-singer-jsonl")], config=str(tap_cfg))])
    res = extract(cfg, "huge")
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs_of(acct(tmp_path, "huge"))
    assert verify_parts(run) == 2 and manifest(run)["uncompressed_bytes"] > 16 << 20


def test_tap_singer_jsonl_rejects_a_non_json_line_itself(tmp_path: Path, tap_singer_jsonl: ToolVenv) -> None:
    """tap-singer-jsonl parses every line (in discovery, before any output) and exits 1 on
    one that is not JSON, so the line never reaches lorchestra: the run fails as
    TAP_EXIT_NONZERO. The same file replayed byte for byte by a plain script tap reaches
    lorchestra's own check (TAP_OUTPUT_INVALID with the line number) in the next test."""
    _, res = replay(tmp_path, tap_singer_jsonl, "not_json")
    assert res.returncode == 1
    [run] = runs_of(acct(tmp_path, "not_json"))
    assert (manifest(run)["error_code"], manifest(run)["tap_exit_code"]) == ("TAP_EXIT_NONZERO", 1)
    assert manifest(run)["stderr_lines"] > 0 and latest(acct(tmp_path, "not_json")) is None


REPLAY = "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), sys.stdout.buffer)"


@pytest.mark.parametrize(("payload", "line"), [
    ((FIXTURES / "not_json.singer").read_bytes(), 3),
    ((FIXTURES / "unknown_type.singer").read_bytes().replace(b'{"id": 2}', b'{"id": "\xff\xfe"}'), 4),
], ids=["not-json", "invalid-utf8"])
def test_script_tap_output_that_is_not_singer_json(tmp_path: Path, payload: bytes, line: int) -> None:
    """Cases tap-singer-jsonl cannot pass through (it decodes and parses every line itself):
    a tiny python script tap replays the hand-written bytes verbatim instead."""
    src = tmp_path / "case.singer"
    src.write_bytes(payload)
    cfg = config(tmp_path, [extractor("raw", [sys.executable, "-c", REPLAY, str(src)])])
    res = extract(cfg, "raw")
    assert res.returncode == 1
    [run] = runs_of(acct(tmp_path, "raw"))
    assert (manifest(run)["error_code"], manifest(run)["error_line"]) == ("TAP_OUTPUT_INVALID", line)
    events = (tmp_path / "ws" / "logs").glob("*.log")
    assert not any(b"leaked onto stdout" in f.read_bytes() for f in events), "no tap output in events"


# --- incremental: tap-spreadsheets honours the STATE of the last successful run ------------


def test_incremental_passes_the_last_successful_state(tmp_path: Path, tap_spreadsheets: ToolVenv) -> None:
    data = tmp_path / "sheets"
    data.mkdir()
    first = data / "a.csv"
    first.write_text("id,name\n1,Ada\n2,Ben\n3,Cy\n")
    old = time.time() - 3600
    os.utime(first, (old, old))
    tap_cfg = write_json(tmp_path / "sheets.json", {"files": [
        {"path": f"{data}/*.csv", "format": "csv", "table_name": "users", "primary_keys": ["id"]}]})
    cfg = config(tmp_path, [extractor("sheet", [tap_spreadsheets.exe("tap-spreadsheets")],
                                      config=str(tap_cfg), incremental=True)])
    assert extract(cfg, "sheet").returncode == 0
    account = acct(tmp_path, "sheet")
    [run1] = runs_of(account)
    m1 = manifest(run1)
    assert m1["records"] == 3 and m1["incremental"] == {"from_run": None, "state_passed": False}
    assert m1["state"]["bookmarks"]["users"]["replication_key_value"]

    (data / "b.csv").write_text("id,name\n4,Di\n")
    res = extract(cfg, "sheet")
    assert res.returncode == 0, res.stdout + res.stderr
    run1_again, run2 = runs_of(account)
    m2 = manifest(run2)
    rel1 = f"dt={m1['dt']}/run_id={m1['run_id']}"
    assert m2["incremental"] == {"from_run": rel1, "state_passed": True}
    assert m2["records"] == 1 < m1["records"], "the second run resumes from the first run's STATE"
    assert [r["record"]["id"] for r in vault_lines(run2)] == ["4"]
    assert m2["state"] != m1["state"]
    assert not list(run2.glob("tap-state*")), "the STATE file passed to the tap is removed"
    assert latest(account)["run_id"] == m2["run_id"]  # type: ignore[index]


# --- --target: a real Singer target instead of the vault ------------------------------------


def test_extract_into_a_real_target_leaves_the_vault_alone(tmp_path: Path, tap_jsonl: ToolVenv,
                                                           target_jsonl: ToolVenv) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "u.jsonl").write_bytes(b"".join(orjson.dumps(u) + b"\n" for u in USERS))
    tap_cfg = write_json(tmp_path / "tap.json", {"path": f"{data}/*.jsonl", "stream_name": "users",
                                                 "primary_keys": ["id"]})
    out = tmp_path / "target-out"
    good = write_json(tmp_path / "target.json", {"destination_path": str(out), "do_timestamp_file": False})
    loaders = [{"name": "jsonl-files", "command": [target_jsonl.exe("target-jsonl")], "config": str(good)},
               {"name": "broken", "command": [target_jsonl.exe("target-jsonl")],
                "config": str(tmp_path / "missing.json")}]
    cfg = config(tmp_path, [extractor("files", [tap_jsonl.exe("tap-jsonl")], config=str(tap_cfg))],
                 loaders=loaders)
    listed = orjson.loads(run_cli("list", "loaders", "--json", "--config", str(cfg)).stdout)
    assert [row["name"] for row in listed] == ["jsonl-files", "broken"]

    res = extract(cfg, "files", "--target", "jsonl-files")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "vault and LATEST not touched" in res.stdout
    written = [orjson.loads(line) for line in (out / "users.jsonl").read_bytes().splitlines()]
    assert sorted(r["id"] for r in written) == [u["id"] for u in USERS]
    assert not acct(tmp_path, "files").exists() or not runs_of(acct(tmp_path, "files"))
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert finished["target"] == "jsonl-files" and finished["records"] == 7 and not finished["latest_moved"]
    summary = orjson.loads((Path(finished["detail_path"]) / "summary.json").read_bytes())
    assert summary["status"] == "success" and summary["vault"] == "untouched"

    bad = extract(cfg, "files", "--target", "broken")
    assert bad.returncode == 1
    finished = [e for e in log_events(tmp_path / "ws") if e["type"] == "task_finished"][-1]
    assert finished["error_code"] == "TARGET_EXIT_NONZERO"
    assert not (tmp_path / "ws" / "vault" / "test" / "files").exists()


# --- Meltano: a throwaway project with a custom extractor plugin (no Hub) -------------------

PLUGIN_YML = """name: tap-jsonl
namespace: tap_jsonl
pip_url: tap-jsonl==0.3.1
executable: tap-jsonl
capabilities: [catalog, discover, state, about]
settings:
- name: path
- name: stream_name
- name: primary_keys
  kind: array
"""


@pytest.fixture(scope="session")
def meltano() -> ToolVenv:
    return venv_or_skip("meltano", "4.4.1")


def meltano_cli(exe: str, cwd: Path, *args: str) -> None:
    env = clean_env(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false")
    res = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, f"meltano {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


@pytest.mark.timeout(900)
def test_meltano_project_with_a_custom_plugin_into_the_vault(tmp_path: Path, meltano: ToolVenv) -> None:
    exe = meltano.exe("meltano")
    meltano_cli(exe, tmp_path, "init", "ingest", "--no_usage_stats")
    project = tmp_path / "ingest"
    (project / "plugin.yml").write_text(PLUGIN_YML)
    meltano_cli(exe, project, "add", "--plugin-type", "extractor", "--from-ref", "plugin.yml", "tap-jsonl")
    meltano_cli(exe, project, "install")
    data = tmp_path / "data"
    data.mkdir()
    (data / "u.jsonl").write_bytes(b"".join(orjson.dumps(u) + b"\n" for u in USERS))
    meltano_cli(exe, project, "config", "set", "tap-jsonl", "path", f"{data}/*.jsonl")
    meltano_cli(exe, project, "config", "set", "tap-jsonl", "primary_keys", '["id"]')
    (project / ".env").write_text("TAP_JSONL_STREAM_NAME=users\n")  # the project's own environment

    ex = {"name": "tap-jsonl--clinic", "domain": "test", "source": "jsonl", "account": "clinic",
          "kind": "meltano", "incremental": True, "timeout_s": 600,
          "meltano": {"project": str(project), "plugin": "tap-jsonl", "executable": exe}}
    cfg = config(tmp_path, [ex])
    account = tmp_path / "ws" / "vault" / "test" / "jsonl" / "clinic"
    for attempt in (1, 2):
        res = run_cli("extract", "tap-jsonl--clinic", "--config", str(cfg), timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        run = runs_of(account)[-1]
        m = manifest(run)
        assert (m["status"], m["kind"], m["records"]) == ("success", "meltano", len(USERS))
        assert verify_parts(run) == len(USERS)
        assert m["streams"]["users"]["schemas"][0]["key_properties"] == ["id"]
        assert m["state"]["bookmarks"]["users"], "the tap's final STATE is in the manifest"
        assert m["incremental"]["state_passed"] is (attempt == 2), "meltano invoke forwards --state"
        assert latest(account)["run_id"] == m["run_id"]  # type: ignore[index]
        assert (run / "tap.stderr.log").stat().st_size > 0, "meltano's and the tap's logs stay in the run"
    ids = sorted(r["record"]["id"] for r in vault_lines(runs_of(account)[-1]))
    assert ids == [u["id"] for u in USERS]
