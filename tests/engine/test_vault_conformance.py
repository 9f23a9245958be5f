"""The vault is lossless: Singer streams through the real extract worker, compared line by line.

Every case is a hand-written stream (bytes, not objects: the digits, escapes, key order and
whitespace are part of what is checked) replayed verbatim by a ``kind: singer`` tap into
``python -m engine.run.worker``, exactly as the engine runs it. For valid streams the vault's
lines, read back from the gzip parts, must equal the stream's lines (line ending made
``\\n``, blank lines dropped) one for one; for invalid ones the run fails with its code and
line, and LATEST and its STATE stay where a previous good run left them. References: the
Singer spec and the Singer SDK's reader (``singer_sdk/io_base.py``) and its target test
streams, whose subjects these streams cover with data of their own.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config import Extractor, Loader
from engine.ops.verify import verify
from engine.stages.spec import TaskSpec
from engine.store.workspace import Workspace
from tests.helpers import REPO, latest, manifest, runs_of, verify_parts

SCHEMA_USERS = (b'{"type":"SCHEMA","stream":"users","schema":{"type":"object","properties":'
                b'{"id":{"type":"integer"},"name":{"type":"string"}}},"key_properties":["id"]}')
SCHEMA_ORDERS = (b'{"type": "SCHEMA", "stream": "orders", "key_properties": ["order_id"], '
                 b'"schema": {"type": "object", "properties": {"order_id": {"type": "string"}, '
                 b'"amount": {"type": "number"}}}}')


REPLAY = "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), sys.stdout.buffer)"
"""The tap: replays a file byte for byte (ignoring the ``--state`` an incremental run adds)."""


def account(ws: Path) -> Path:
    return ws / "vault" / "test" / "conf" / "acct"


def run_worker(tmp: Path, ws: Path, stream: bytes, *, incremental: bool = False,
               target: Loader | None = None, name: str = "case") -> subprocess.CompletedProcess[bytes]:
    """The stream through the real extract worker, with a byte-for-byte replay as the tap."""
    src = tmp / f"{name}.singer"
    src.write_bytes(stream)
    ex = Extractor(name="conf", domain="test", source="conf", account="acct", kind="singer",
                   command=[sys.executable, "-c", REPLAY, str(src)], timeout_s=60, incremental=incremental)
    spec = TaskSpec(task_id="extract:conf", stage="extract", workspace=ws, extractor=ex, target=target)
    return subprocess.run([sys.executable, "-m", "engine.run.worker"], input=spec.model_dump_json().encode(),
                          capture_output=True, cwd=REPO, timeout=120)


def final_event(res: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    events = [orjson.loads(line) for line in res.stdout.splitlines() if line.strip()]
    finals = [e for e in events if e["type"] == "task_finished"]
    assert finals, res.stderr.decode()[-2000:]
    return finals[-1]  # type: ignore[no-any-return]


def vault_lines(run: Path) -> list[bytes]:
    """Every line of every part of a run, in order."""
    out: list[bytes] = []
    for part in manifest(run)["parts"]:
        out += gzip.decompress((run / part["file"]).read_bytes()).split(b"\n")[:-1]
    return out


def expected_lines(stream: bytes) -> list[bytes]:
    """The stream's messages as the vault must keep them: line ending dropped, blanks skipped."""
    return [line.removesuffix(b"\r") for line in stream.split(b"\n") if line.strip()]


def extract_ok(tmp: Path, stream: bytes, **kw: Any) -> Path:
    ws = tmp / "ws"
    res = run_worker(tmp, ws, stream, **kw)
    fin = final_event(res)
    assert (res.returncode, fin["status"]) == (0, "success"), fin
    run = runs_of(account(ws))[-1]
    assert latest(account(ws))["run_id"] == manifest(run)["run_id"]  # type: ignore[index]
    verify_parts(run)
    return run


def lines(*items: bytes) -> bytes:
    return b"".join(item + b"\n" for item in items)


# --- valid streams: the vault holds them exactly -------------------------------------------

VALID: dict[str, bytes] = {
    "interleaved_streams": lines(
        SCHEMA_USERS, SCHEMA_ORDERS,
        b'{"type":"RECORD","stream":"users","record":{"id":1,"name":"Ann"}}',
        b'{"type":"RECORD","stream":"orders","record":{"order_id":"o-1","amount":10.50}}',
        b'{"type":"RECORD","stream":"users","record":{"id":2,"name":"Bob"}}',
        b'{"type":"STATE","value":{"bookmarks":{"users":2}}}',
        b'{"type":"RECORD","stream":"orders","record":{"order_id":"o-2","amount":1E+2}}'),
    "unicode_and_escapes": lines(
        SCHEMA_USERS,
        '{"type":"RECORD","stream":"users","record":{"id":1,"name":"Zoë 😀 中文"}}'.encode(),
        b'{"type":"RECORD","stream":"users","record":{"id":2,"name":"Zo\\u00eb \\ud83d\\ude00 \\"q\\" \\\\ \\/ \\t\\n\\u2028"}}',
        b'{"type":"RECORD","stream":"users","record":{"id":3,"name":"","nested":{"a":[1,[2,{"b":null}]],"e":{}}}}'),
    "huge_and_odd_numbers": lines(
        SCHEMA_USERS,
        b'{"type":"RECORD","stream":"users","record":{"id":12345678901234567890123,"amount":12345678901234567.891}}',
        b'{"type":"RECORD","stream":"users","record":{"id":2,"big":1e999,"tiny":1e-999,"neg":-0,"exp":1.5E+300,"d":0.10}}',
        b'{"type":"RECORD","stream":"users","record":{"id":3,"long":3.14159265358979323846264338327950288}}'),
    "huge_numbers_in_schema_and_state": lines(
        b'{"type":"SCHEMA","stream":"n","schema":{"type":"object","properties":{"x":{"type":"number",'
        b'"maximum":1e999,"multipleOf":0.00000000000000000001}}},"key_properties":[]}',
        b'{"type":"RECORD","stream":"n","record":{"x":-1e999}}',
        b'{"type":"STATE","value":{"cursor":1e999,"id":123456789012345678901234567890}}'),
    "metadata_key_order_whitespace": lines(
        SCHEMA_USERS,
        b'{"type":"RECORD","stream":"users","record":{"name":"Zed","id":9},"version":1,'
        b'"time_extracted":"2026-01-01T00:00:00.123456+00:00","x-extra":[1,2]}',
        b'  { "record" : { "id" : 1 } , "stream" : "users" , "type" : "RECORD" }  ',
        b'{"type":"RECORD","stream":"users","record":{"id":1,"name":"dup"}}',
        b'{"type":"RECORD","stream":"users","record":{"id":1,"name":"dup"}}'),
    "special_attribute_names": lines(
        b'{"type":"SCHEMA","stream":"weird-Stream.name","schema":{"type":"object","properties":'
        b'{"camelCase":{},"with space":{},"dot.ted":{},"$dollar":{},"\\u00fcml":{}}},"key_properties":[]}',
        b'{"type":"RECORD","stream":"weird-Stream.name","record":{"camelCase":1,"with space":2,'
        b'"dot.ted":3,"$dollar":4,"\\u00fcml":5,"":6}}'),
    "crlf_and_blank_lines": b"\r\n".join([SCHEMA_USERS, b'{"type":"RECORD","stream":"users","record":{"id":1}}',
                                          b"", b"   ", b'{"type":"STATE","value":{}}']) + b"\r\n",
    "no_final_newline": SCHEMA_USERS + b'\n{"type":"RECORD","stream":"users","record":{"id":1}}',
    "unknown_type_kept": lines(
        SCHEMA_USERS, b'{"type":"RECORD","stream":"users","record":{"id":1}}',
        b'{"type":"SURPRISE","payload":{"n":12345678901234567890}}',
        b'{"type":"RECORD","stream":"users","record":{"id":2}}'),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_stream_is_kept_message_by_message(tmp_path: Path, case: str) -> None:
    stream = VALID[case]
    run = extract_ok(tmp_path, stream)
    assert vault_lines(run) == expected_lines(stream)
    m = manifest(run)
    assert m["format"] == 2
    assert m["messages"] == len(expected_lines(stream))
    assert m["records"] == sum(b'"RECORD"' in line for line in expected_lines(stream))
    report = verify(Workspace(tmp_path / "ws"), all_runs=True, deep=True)
    assert report.problems == [] and report.parts == len(m["parts"])
    if case == "huge_numbers_in_schema_and_state":  # the manifest stays plain JSON; the text is exact
        assert m["state_text"] == '{"cursor":1e999,"id":123456789012345678901234567890}'
        assert b"1e999" in m["streams"]["n"]["schemas"][0]["schema_text"].encode()


def test_activate_version_keeps_its_place(tmp_path: Path) -> None:
    """The issue's reproduction: versions and activations replay in stream order."""
    stream = lines(
        SCHEMA_USERS,
        b'{"type":"RECORD","stream":"users","record":{"id":1},"version":1}',
        b'{"type":"ACTIVATE_VERSION","stream":"users","version":1}',
        b'{"type":"RECORD","stream":"users","record":{"id":1},"version":2}',
        b'{"type":"ACTIVATE_VERSION","stream":"users","version":2}')
    run = extract_ok(tmp_path, stream)
    got = vault_lines(run)
    assert got == expected_lines(stream)
    kinds = [(orjson.loads(line)["type"], orjson.loads(line).get("version")) for line in got[1:]]
    assert kinds == [("RECORD", 1), ("ACTIVATE_VERSION", 1), ("RECORD", 2), ("ACTIVATE_VERSION", 2)]
    assert manifest(run)["streams"]["users"]["activate_versions"] == [1, 2]


def test_schema_changes_and_key_changes_open_versions(tmp_path: Path) -> None:
    changed = SCHEMA_USERS.replace(b'"name":{"type":"string"}', b'"name":{"type":["string","null"]}')
    rekeyed = changed.replace(b'"key_properties":["id"]', b'"key_properties":["name"]')
    stream = lines(SCHEMA_USERS, b'{"type":"RECORD","stream":"users","record":{"id":1}}',
                   SCHEMA_USERS,  # repeated unchanged: kept as a line, no new version
                   b'{"type":"RECORD","stream":"users","record":{"id":2}}',
                   changed, b'{"type":"RECORD","stream":"users","record":{"id":3}}',
                   rekeyed, b'{"type":"RECORD","stream":"users","record":{"id":4,"name":"d"}}')
    run = extract_ok(tmp_path, stream)
    assert vault_lines(run) == expected_lines(stream)
    versions = manifest(run)["streams"]["users"]["schemas"]
    assert [(v["key_properties"], v["first_record"]) for v in versions] == [(["id"], 0), (["id"], 2), (["name"], 3)]
    assert versions[1]["sha256"] == versions[2]["sha256"], "same schema, new key: a version of its own"
    assert len(manifest(run)["parts"]) == 3, "each version change closes the part"


def test_multiple_states_and_exact_state_for_the_next_run(tmp_path: Path) -> None:
    """The last STATE wins; one a double cannot hold is passed back to the tap exactly."""
    exact = b'{"bookmarks":{"users":{"cursor":123456789012345678901234567890,"ts":0.1000000000000000055511151231257827}}}'
    stream = lines(SCHEMA_USERS, b'{"type":"STATE","value":{"bookmarks":{"users":0}}}',
                   b'{"type":"RECORD","stream":"users","record":{"id":1}}',
                   b'{"type":"STATE","value":' + exact + b"}",
                   b'{"type":"RECORD","stream":"users","record":{"id":2}}')
    run = extract_ok(tmp_path, stream)
    m = manifest(run)
    assert (m["state_messages"], m["state_after_records"]) == (2, 1)
    assert m["state_text"].encode() == exact
    # the next incremental run's tap receives exactly that text as --state
    script = tmp_path / "echo_state.py"
    script.write_text("import sys\nargs = sys.argv[1:]\n"
                      "open(args[0], 'wb').write(open(args[args.index('--state') + 1], 'rb').read())\n"
                      f"sys.stdout.write(open({str(tmp_path / 'case.singer')!r}).read())\n")
    ex = Extractor(name="conf", domain="test", source="conf", account="acct", kind="singer",
                   command=[sys.executable, str(script), str(tmp_path / "seen.json")], incremental=True)
    spec = TaskSpec(task_id="extract:conf", stage="extract", workspace=tmp_path / "ws", extractor=ex)
    res = subprocess.run([sys.executable, "-m", "engine.run.worker"], input=spec.model_dump_json().encode(),
                         capture_output=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert (tmp_path / "seen.json").read_bytes() == exact


def test_batch_records_keep_their_bytes(tmp_path: Path) -> None:
    batch = tmp_path / "b1.jsonl"
    batch.write_bytes(b'{"id":1,"n":12345678901234567890123}\r\n\n{"name":"x","id":2}\n')
    msg = b'{"type":"BATCH","stream":"users","encoding":{"format":"jsonl","compression":"none"},' \
          b'"manifest":["file://' + str(batch).encode() + b'"]}'
    run = extract_ok(tmp_path, lines(SCHEMA_USERS, msg))
    assert vault_lines(run) == [SCHEMA_USERS, msg,
                                b'{"type":"RECORD","stream":"users","record":{"id":1,"n":12345678901234567890123}}',
                                b'{"type":"RECORD","stream":"users","record":{"name":"x","id":2}}']
    assert manifest(run)["records"] == 2


def test_batch_records_cut_mid_emoji_are_repaired_as_record_lines_are(tmp_path: Path) -> None:
    """A lone surrogate escape in a BATCH file failed the run BATCH_INVALID, where the same
    record on a RECORD line is kept with U+FFFD (TAP_TEXT_REPAIRED)."""
    batch = tmp_path / "b1.jsonl"
    batch.write_bytes(b'{"id":1,"a":"cut \\ud83d"}\n{"id":2,"a":"ok \\ud83d\\ude00"}\n')
    msg = b'{"type":"BATCH","stream":"users","encoding":{"format":"jsonl","compression":"none"},' \
          b'"manifest":["file://' + str(batch).encode() + b'"]}'
    run = extract_ok(tmp_path, lines(SCHEMA_USERS, msg))
    assert vault_lines(run)[2:] == [b'{"type":"RECORD","stream":"users","record":{"id":1,"a":"cut \\ufffd"}}',
                                    b'{"type":"RECORD","stream":"users","record":{"id":2,"a":"ok \\ud83d\\ude00"}}']


@pytest.mark.parametrize("depth", [600, 1500])
def test_a_batch_record_nested_past_the_limit_fails_the_run_not_the_worker(tmp_path: Path, depth: int) -> None:
    """BATCH records skipped the 512-level limit a RECORD line has (600 went into the vault,
    which its readers trust to be within it; 1500 crashed the worker with RecursionError)."""
    batch = tmp_path / "b1.jsonl"
    batch.write_bytes(b'{"id":1}\n{"id":2,"a":' + b"[" * depth + b"]" * depth + b"}\n")
    msg = b'{"type":"BATCH","stream":"users","encoding":{"format":"jsonl","compression":"none"},' \
          b'"manifest":["file://' + str(batch).encode() + b'"]}'
    res = run_worker(tmp_path, tmp_path / "ws", lines(SCHEMA_USERS, msg))
    fin = final_event(res)
    assert (res.returncode, fin["status"], fin["error_code"]) == (1, "failed", "BATCH_INVALID"), res.stderr


# --- invalid messages: the run fails, LATEST and its STATE stay -----------------------------

INVALID: list[tuple[str, bytes, str]] = [
    ("not_json", b'{"type":"RECORD",', "TAP_OUTPUT_INVALID"),
    ("invalid_utf8", b'{"type":"RECORD","stream":"users","record":{"id":1,"name":"\xff"}}', "TAP_OUTPUT_INVALID"),
    ("nan", b'{"type":"RECORD","stream":"users","record":{"id":1,"score":NaN}}', "TAP_OUTPUT_INVALID"),
    ("log_line", b"INFO Starting sync of users", "TAP_OUTPUT_INVALID"),
    ("array", b'[{"type":"RECORD"}]', "TAP_MESSAGE_INVALID"),
    ("string", b'"RECORD"', "TAP_MESSAGE_INVALID"),
    ("number", b"42", "TAP_MESSAGE_INVALID"),
    ("null", b"null", "TAP_MESSAGE_INVALID"),
    ("no_type", b'{"stream":"users","record":{"id":1}}', "TAP_MESSAGE_INVALID"),
    ("type_not_string", b'{"type":1,"stream":"users","record":{"id":1}}', "TAP_MESSAGE_INVALID"),
    ("record_without_record", b'{"type":"RECORD","stream":"users"}', "TAP_MESSAGE_INVALID"),
    ("record_null", b'{"type":"RECORD","stream":"users","record":null}', "TAP_MESSAGE_INVALID"),
    ("record_array", b'{"type":"RECORD","stream":"users","record":[1]}', "TAP_MESSAGE_INVALID"),
    ("record_without_stream", b'{"type":"RECORD","record":{"id":1}}', "TAP_MESSAGE_INVALID"),
    ("record_version_not_integer", b'{"type":"RECORD","stream":"users","record":{"id":1},"version":"1"}',
     "TAP_MESSAGE_INVALID"),
    ("record_stream_not_string", b'{"type":"RECORD","stream":7,"record":{"id":1}}', "TAP_MESSAGE_INVALID"),
    ("schema_without_schema", b'{"type":"SCHEMA","stream":"users","key_properties":[]}', "TAP_MESSAGE_INVALID"),
    ("schema_not_object", b'{"type":"SCHEMA","stream":"users","schema":"object","key_properties":[]}',
     "TAP_MESSAGE_INVALID"),
    ("key_properties_string", b'{"type":"SCHEMA","stream":"users","schema":{},"key_properties":"id"}',
     "TAP_MESSAGE_INVALID"),
    ("key_properties_numbers", b'{"type":"SCHEMA","stream":"users","schema":{},"key_properties":[1]}',
     "TAP_MESSAGE_INVALID"),
    ("schema_without_stream", b'{"type":"SCHEMA","schema":{},"key_properties":[]}', "TAP_MESSAGE_INVALID"),
    ("state_without_value", b'{"type":"STATE"}', "TAP_MESSAGE_INVALID"),
    ("activate_without_version", b'{"type":"ACTIVATE_VERSION","stream":"users"}', "TAP_MESSAGE_INVALID"),
    ("activate_version_string", b'{"type":"ACTIVATE_VERSION","stream":"users","version":"1"}',
     "TAP_MESSAGE_INVALID"),
    ("batch_without_stream", b'{"type":"BATCH","encoding":{"format":"jsonl"},"manifest":[]}',
     "TAP_MESSAGE_INVALID"),
    ("record_before_schema", b'{"type":"RECORD","stream":"orders","record":{"order_id":"x"}}', "SCHEMA_MISSING"),
]


@pytest.fixture(scope="module")
def good_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose LATEST run holds a STATE."""
    tmp = tmp_path_factory.mktemp("good")
    extract_ok(tmp, lines(SCHEMA_USERS, b'{"type":"RECORD","stream":"users","record":{"id":1}}',
                          b'{"type":"STATE","value":{"bookmarks":{"users":1}}}'))
    return tmp / "ws"


@pytest.mark.parametrize(("case", "bad", "code"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_message_fails_the_run(tmp_path: Path, good_workspace: Path, case: str, bad: bytes,
                                       code: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(good_workspace, ws)
    before = latest(account(ws))
    stream = lines(SCHEMA_USERS, b'{"type":"RECORD","stream":"users","record":{"id":2}}', bad,
                   b'{"type":"STATE","value":{"bookmarks":{"users":99}}}')
    res = run_worker(tmp_path, ws, stream, incremental=True)
    fin = final_event(res)
    assert (res.returncode, fin["status"], fin["error_code"], fin["line"]) == (1, "failed", code, 3)
    assert latest(account(ws)) == before, "LATEST does not move"
    failed = runs_of(account(ws))[-1]
    m = manifest(failed)
    assert (m["status"], m["error_code"], m["error_line"]) == ("failed", code, 3)
    assert m["state"] is None, "the failed run never took a STATE after the bad line"
    good = [r for r in runs_of(account(ws)) if manifest(r)["status"] == "success"]
    assert [manifest(r)["state"] for r in good] == [{"bookmarks": {"users": 1}}]
    assert b"\xff" not in res.stdout and b"users" not in res.stdout, "no tap content in events"
    if code == "SCHEMA_MISSING":
        return
    # the line and why it was refused are kept in the failed run's folder (0600), named by the event
    kept = failed / "bad-line.txt"
    assert fin["detail_path"] == str(kept) and oct(kept.stat().st_mode & 0o777) == "0o600"
    text = kept.read_bytes()
    assert text.startswith(b"line 3 of the tap's output: ") and bad in text
    why = text.split(b"\n", 1)[0]
    assert (b"NaN" in why) == (case == "nan") and (b"UTF-8" in why) == (case == "invalid_utf8")


def test_target_pipe_applies_the_same_checks(tmp_path: Path) -> None:
    sink = tmp_path / "sink.py"
    sink.write_text("import sys\nfor _ in sys.stdin.buffer: pass\n")
    loader = Loader(name="sink", command=[sys.executable, str(sink)])
    res = run_worker(tmp_path, tmp_path / "ws", lines(SCHEMA_USERS, b'{"type":"STATE"}'), target=loader)
    fin = final_event(res)
    assert (fin["status"], fin["error_code"], fin["line"]) == ("failed", "TAP_MESSAGE_INVALID", 2)
    ok = run_worker(tmp_path, tmp_path / "ws", VALID["huge_and_odd_numbers"], target=loader, name="ok")
    assert final_event(ok)["status"] == "success" and final_event(ok)["records"] == 3
