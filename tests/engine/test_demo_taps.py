"""The bundled demo taps, run as real subprocesses exactly as the engine runs them.

They are the engine's test double for every real Singer tap, so these tests pin the
contract the engine relies on: valid Singer framing, exact record counts, byte-identical
reruns, resumable state, canary PHI in records and stderr, and each injected fault.
"""

from __future__ import annotations

import base64
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.demo_taps.canary import CANARIES, CANARY_NAME

TAPS = ("gmail", "msgraph", "dataverse", "sheets", "quickbooks")
STREAMS = {
    "gmail": ["messages"],
    "msgraph": ["messages"],
    "dataverse": ["contacts", "cr123_sessions"],
    "sheets": ["Clients", "Session_Log"],
    "quickbooks": ["customers", "invoices", "payments"],
}
ROOT = Path(__file__).resolve().parents[2]


# -- helpers -------------------------------------------------------------------------------


def tap_argv(tap: str, config: Path | None, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "engine.demo_taps", tap]
    if config is not None:
        argv += ["--config", str(config)]
    return argv + list(extra)


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(config))
    return path


def run_tap(
    tmp_path: Path, tap: str, config: dict[str, Any], *extra: str, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    path = write_config(tmp_path, config, f"{tap}-{len(list(tmp_path.iterdir()))}.json")
    return subprocess.run(
        tap_argv(tap, path, *extra), capture_output=True, timeout=timeout, cwd=ROOT, check=False
    )


def parse(stdout: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def records(messages: list[dict[str, Any]], stream: str | None = None) -> list[dict[str, Any]]:
    return [
        m["record"] for m in messages
        if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
    ]


def assert_valid_singer(messages: list[dict[str, Any]], total: int) -> None:
    """SCHEMA before each stream's first RECORD, exact count, STATE at the end."""
    schemas: dict[str, dict[str, Any]] = {}
    for message in messages:
        kind = message["type"]
        if kind == "SCHEMA":
            schemas[message["stream"]] = message
            assert message["schema"]["type"] == "object"
            assert message["key_properties"]
        elif kind == "RECORD":
            schema = schemas.get(message["stream"])
            assert schema is not None, f"RECORD before SCHEMA in {message['stream']}"
            for key in schema["key_properties"]:
                assert message["record"].get(key) not in (None, ""), key
            assert message["time_extracted"].endswith("Z")
        else:
            assert kind in {"STATE", "ACTIVATE_VERSION"}, kind
    assert sum(1 for m in messages if m["type"] == "RECORD") == total
    assert messages[-1]["type"] == "STATE"


def final_offsets(messages: list[dict[str, Any]]) -> dict[str, int]:
    bookmarks = messages[-1]["value"]["bookmarks"]
    return {stream: mark["offset"] for stream, mark in bookmarks.items()}


def gmail_header(message: dict[str, Any], name: str) -> str | None:
    for header in message["payload"]["headers"]:
        if header["name"].lower() == name.lower():
            value: str = header["value"]
            return value
    return None


def walk_parts(part: dict[str, Any]) -> list[dict[str, Any]]:
    found = [part]
    for child in part.get("parts", []):
        found += walk_parts(child)
    return found


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def read_lines_until(
    proc: subprocess.Popen[bytes], wanted: int, deadline_s: float
) -> list[bytes]:
    """Read stdout lines until ``wanted`` RECORD lines arrived (or EOF / the deadline)."""
    assert proc.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=pump, daemon=True).start()
    got: list[bytes] = []
    deadline = time.monotonic() + deadline_s
    while sum(1 for line in got if line.startswith(b'{"type":"RECORD"')) < wanted:
        line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if not line:
            break
        got.append(line)
    return got


# -- the Singer contract -------------------------------------------------------------------


@pytest.mark.parametrize("tap", TAPS)
def test_tap_emits_valid_singer_with_canaries(tmp_path: Path, tap: str) -> None:
    done = run_tap(tmp_path, tap, {"account": "acct1-personal", "records": 250, "seed": 3})
    assert done.returncode == 0, done.stderr
    messages = parse(done.stdout)
    assert_valid_singer(messages, 250)
    offsets = final_offsets(messages)
    assert list(offsets) == STREAMS[tap]
    assert sum(offsets.values()) == 250
    assert [m["stream"] for m in messages if m["type"] == "SCHEMA"] == STREAMS[tap]
    first_five = b"\n".join(done.stdout.splitlines()[:8])
    stderr = done.stderr.decode()
    for canary in CANARIES:
        assert canary.encode() in first_five, (tap, canary)
        assert canary in stderr, (tap, canary)
    assert "INFO Starting sync of stream" in stderr
    assert "METRIC: " in stderr


@pytest.mark.parametrize("tap", TAPS)
def test_tiny_runs_still_carry_every_canary_and_stream(tmp_path: Path, tap: str) -> None:
    done = run_tap(tmp_path, tap, {"account": "other", "records": 5, "seed": 9})
    assert done.returncode == 0, done.stderr
    messages = parse(done.stdout)
    assert_valid_singer(messages, 5)
    assert all(n >= 1 for n in final_offsets(messages).values())
    for canary in CANARIES:
        assert canary.encode() in done.stdout, (tap, canary)


@pytest.mark.parametrize(
    ("tap", "split"),
    [
        ("quickbooks", {"customers": 30, "invoices": 50, "payments": 20}),
        ("dataverse", {"contacts": 40, "cr123_sessions": 60}),
        ("sheets", {"Clients": 40, "Session_Log": 60}),
    ],
)
def test_records_split_in_fixed_proportions(
    tmp_path: Path, tap: str, split: dict[str, int]
) -> None:
    done = run_tap(tmp_path, tap, {"records": 100})
    assert done.returncode == 0, done.stderr
    assert Counter(m["stream"] for m in parse(done.stdout) if m["type"] == "RECORD") == split


def test_defaults_without_config_and_periodic_state(tmp_path: Path) -> None:
    done = subprocess.run(tap_argv("gmail", None), capture_output=True, cwd=ROOT, check=False)
    assert done.returncode == 0
    assert_valid_singer(parse(done.stdout), 100)

    done = run_tap(tmp_path, "gmail", {"records": 2500})
    states = [m["value"] for m in parse(done.stdout) if m["type"] == "STATE"]
    assert [s["bookmarks"]["messages"]["offset"] for s in states] == [1000, 2000, 2500]


@pytest.mark.parametrize("tap", TAPS)
def test_same_config_is_byte_identical_and_account_or_seed_changes_it(
    tmp_path: Path, tap: str
) -> None:
    config = {"account": "acct1", "records": 60, "seed": 5}
    first = run_tap(tmp_path, tap, config).stdout
    assert first == run_tap(tmp_path, tap, config).stdout
    assert first != run_tap(tmp_path, tap, {**config, "account": "acct2"}).stdout
    assert first != run_tap(tmp_path, tap, {**config, "seed": 6}).stdout


@pytest.mark.parametrize("tap", TAPS)
def test_discover_prints_a_catalog(tmp_path: Path, tap: str) -> None:
    done = run_tap(tmp_path, tap, {}, "--discover")
    assert done.returncode == 0, done.stderr
    catalog = orjson.loads(done.stdout)
    entries = catalog["streams"]
    assert [e["stream"] for e in entries] == STREAMS[tap]
    for entry in entries:
        assert entry["tap_stream_id"] == entry["stream"]
        assert entry["schema"]["type"] == "object"
        assert entry["key_properties"]
        assert entry["metadata"] == []


@pytest.mark.parametrize("tap", ["gmail", "dataverse", "quickbooks"])
def test_state_resumes_where_the_bookmarks_point(tmp_path: Path, tap: str) -> None:
    config = {"account": "a", "records": 2400, "seed": 2}
    full = parse(run_tap(tmp_path, tap, config).stdout)
    middle = [m for m in full if m["type"] == "STATE"][1]
    state = tmp_path / "state.json"
    state.write_bytes(orjson.dumps(middle["value"]))
    resumed = parse(run_tap(tmp_path, tap, config, "--state", str(state)).stdout)

    offsets = {s: b["offset"] for s, b in middle["value"]["bookmarks"].items()}
    seen: Counter[str] = Counter()
    expected = []
    for message in full:
        if message["type"] == "RECORD":
            index = seen[message["stream"]]
            seen[message["stream"]] += 1
            if index >= offsets.get(message["stream"], 0):
                expected.append(message)
    assert [m for m in resumed if m["type"] == "RECORD"] == expected
    assert resumed[-1] == full[-1]


def test_catalog_is_accepted_and_help_works(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_bytes(run_tap(tmp_path, "sheets", {}, "--discover").stdout)
    assert run_tap(tmp_path, "sheets", {"records": 3}, "--catalog", str(catalog)).returncode == 0
    helped = subprocess.run(tap_argv("gmail", None, "--help"), capture_output=True, cwd=ROOT)
    assert helped.returncode == 0
    assert b"--discover" in helped.stdout


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"acount": "typo"}, 2),
        ({"faults": {"fail_afterr": 1}}, 2),
        ({"records": "many"}, 2),
        ({"records": -1}, 2),
        ({"faults": {"record_before_schema": 1}}, 2),
        ([1, 2], 1),
    ],
)
def test_bad_config_exits_nonzero_with_a_message(
    tmp_path: Path, config: Any, code: int
) -> None:
    done = run_tap(tmp_path, "gmail", config)
    assert done.returncode == code
    assert done.stdout == b""
    assert b"CRITICAL" in done.stderr
    assert b"Traceback" not in done.stderr


def test_missing_or_broken_files_exit_1(tmp_path: Path) -> None:
    missing = subprocess.run(
        tap_argv("gmail", tmp_path / "nope.json"), capture_output=True, cwd=ROOT
    )
    assert missing.returncode == 1
    assert b"cannot read config" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert subprocess.run(tap_argv("gmail", broken), capture_output=True).returncode == 1
    assert run_tap(tmp_path, "gmail", {}, "--state", str(broken)).returncode == 1
    assert subprocess.run(tap_argv("nosuchtap", None), capture_output=True).returncode == 2


# -- faults --------------------------------------------------------------------------------


def test_fail_after_flushes_then_exits_with_the_code(tmp_path: Path) -> None:
    faults = {"fail_after": 30, "exit_code": 3}
    done = run_tap(tmp_path, "dataverse", {"records": 50, "faults": faults})
    assert done.returncode == 3
    messages = parse(done.stdout)
    assert len(records(messages)) == 30
    assert messages[-1]["type"] == "RECORD"
    assert CANARY_NAME.encode() in done.stderr


def test_malformed_line_then_continues(tmp_path: Path) -> None:
    done = run_tap(tmp_path, "gmail", {"records": 20, "faults": {"malformed_at": 7}})
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    bad = [n for n, line in enumerate(lines) if not _is_json(line)]
    assert len(bad) == 1
    assert sum(1 for line in lines[: bad[0]] if b'"type":"RECORD"' in line) == 7
    assert len(records(parse(b"\n".join(lines[: bad[0]] + lines[bad[0] + 1 :])))) == 20


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def test_hang_after_keeps_the_process_alive_until_killed(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"records": 50, "faults": {"hang_after": 12}})
    proc = subprocess.Popen(
        tap_argv("msgraph", config), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        got = read_lines_until(proc, 12, deadline_s=20)
        assert sum(1 for line in got if line.startswith(b'{"type":"RECORD"')) == 12
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_stderr_flood_writes_the_requested_bytes(tmp_path: Path) -> None:
    flood = 100 * 1024 * 1024
    config = write_config(tmp_path, {"records": 10, "faults": {"stderr_flood_bytes": flood}})
    err_path = tmp_path / "stderr.log"
    with err_path.open("wb") as err:
        done = subprocess.run(
            tap_argv("sheets", config), stdout=subprocess.PIPE, stderr=err, cwd=ROOT
        )
    assert done.returncode == 0
    assert len(records(parse(done.stdout))) == 10
    size = err_path.stat().st_size
    assert flood <= size < flood + 4096
    with err_path.open("rb") as fh:
        assert CANARY_NAME.encode() in fh.read(65536)


def test_record_before_schema(tmp_path: Path) -> None:
    faults = {"record_before_schema": True}
    done = run_tap(tmp_path, "quickbooks", {"records": 10, "faults": faults})
    messages = parse(done.stdout)
    assert [m["type"] for m in messages[:2]] == ["RECORD", "SCHEMA"]
    assert len(records(messages)) == 10


def test_huge_record_carries_the_requested_bytes(tmp_path: Path) -> None:
    huge = 16 * 1024 * 1024
    faults = {"huge_record_at": 3, "huge_record_bytes": huge}
    done = run_tap(tmp_path, "gmail", {"records": 8, "faults": faults})
    assert done.returncode == 0
    recs = records(parse(done.stdout))
    assert len(recs) == 8
    assert [len(r["snippet"]) for r in recs].index(huge) == 3


def test_unknown_message_type(tmp_path: Path) -> None:
    done = run_tap(tmp_path, "sheets", {"records": 10, "faults": {"unknown_message_at": 4}})
    messages = parse(done.stdout)
    kinds = [m["type"] for m in messages]
    assert kinds.count("SURPRISE") == 1
    assert kinds[: kinds.index("SURPRISE")].count("RECORD") == 4
    assert len(records(messages)) == 10


def test_invalid_utf8_record_line(tmp_path: Path) -> None:
    done = run_tap(tmp_path, "dataverse", {"records": 10, "faults": {"invalid_utf8_at": 6}})
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    bad = []
    for n, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(n)
    assert len(bad) == 1
    assert lines[bad[0]].startswith(b'{"type":"RECORD"')
    assert sum(1 for line in lines[: bad[0]] if line.startswith(b'{"type":"RECORD"')) == 6
    assert sum(1 for line in lines if line.startswith(b'{"type":"RECORD"')) == 10


def test_close_stdout_after_then_exit_0(tmp_path: Path) -> None:
    done = run_tap(tmp_path, "gmail", {"records": 40, "faults": {"close_stdout_after": 15}})
    assert done.returncode == 0
    messages = parse(done.stdout)
    assert len(records(messages)) == 15
    assert b"Traceback" not in done.stderr


def test_faults_at_zero_and_at_the_end(tmp_path: Path) -> None:
    assert run_tap(tmp_path, "gmail", {"records": 5, "faults": {"fail_after": 0}}).stdout.count(
        b'"RECORD"'
    ) == 0
    done = run_tap(tmp_path, "quickbooks", {"records": 5, "faults": {"fail_after": 5}})
    assert done.returncode == 1
    assert len(records(parse(done.stdout))) == 5


# -- record shapes -------------------------------------------------------------------------


def test_gmail_shapes(tmp_path: Path) -> None:
    done = run_tap(tmp_path, "gmail", {"account": "acct1-personal", "records": 400, "seed": 1})
    messages = records(parse(done.stdout))
    mimes: Counter[str] = Counter()
    names: Counter[str] = Counter()
    charsets: Counter[str] = Counter()
    for message in messages:
        assert isinstance(message["historyId"], str)
        assert message["internalDate"].isdigit()
        names.update(h["name"] for h in message["payload"]["headers"])
        for part in walk_parts(message["payload"]):
            mimes[part["mimeType"]] += 1
            body = part["body"]
            if "attachmentId" in body:
                assert "data" not in body and part["filename"]
            if "data" in body:
                assert "=" not in body["data"]
                content_type = next(
                    h["value"] for h in part["headers"] if h["name"] == "Content-Type"
                )
                charset = content_type.split("charset=")[1].strip('"')
                charsets[charset.lower()] += 1
                text = b64url_decode(body["data"]).decode(charset)
                assert len(b64url_decode(body["data"])) == body["size"]
                if part["mimeType"] == "text/plain" and message is messages[0]:
                    assert CANARY_NAME in text
    assert {"text/plain", "text/html", "multipart/alternative", "multipart/mixed",
            "multipart/related", "application/pdf", "image/png"} <= set(mimes)
    assert {"Message-ID", "Message-Id", "Subject", "subject"} <= set(names)
    assert names["CC"] and names["Cc"]
    assert charsets["iso-8859-1"] and charsets["utf-8"]
    assert any(gmail_header(m, "message-id") is None for m in messages)
    assert any(gmail_header(m, "date") is None for m in messages)
    subjects = [gmail_header(m, "subject") or "" for m in messages]
    assert any(s.lower().startswith("=?utf-8?") for s in subjects)
    senders = [gmail_header(m, "from") or "" for m in messages]
    assert any(s.startswith('"') and '",' not in s and "," in s.split("<")[0] for s in senders)
    dates = " ".join(gmail_header(m, "date") or "" for m in messages)
    assert "-0500" in dates and " EST" in dates and "+0000 (UTC)" in dates


def _message_ids(messages: list[dict[str, Any]]) -> set[str]:
    return {mid for m in messages if (mid := gmail_header(m, "message-id"))}


def test_cross_account_duplicates_share_message_ids(tmp_path: Path) -> None:
    a = records(parse(run_tap(tmp_path, "gmail", {"account": "a", "records": 200}).stdout))
    b = records(parse(run_tap(tmp_path, "gmail", {"account": "b", "records": 200}).stdout))
    graph = records(parse(run_tap(tmp_path, "msgraph", {"account": "x", "records": 200}).stdout))
    shared = _message_ids(a) & _message_ids(b)
    assert len(shared) >= 15
    assert not {m["id"] for m in a} & {m["id"] for m in b}
    assert len(shared & {m["internetMessageId"] for m in graph}) >= 15


def test_references_point_at_emitted_records(tmp_path: Path) -> None:
    dv = parse(run_tap(tmp_path, "dataverse", {"records": 500}).stdout)
    contact_ids = {c["contactid"] for c in records(dv, "contacts")}
    sessions = records(dv, "cr123_sessions")
    assert {s["_cr123_client_value"] for s in sessions} <= contact_ids
    assert all(s["_cr123_client_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
               for s in sessions)
    qbo = parse(run_tap(tmp_path, "quickbooks", {"records": 500}).stdout)
    customer_ids = {c["Id"] for c in records(qbo, "customers")}
    invoices = {i["Id"]: i for i in records(qbo, "invoices")}
    assert {i["CustomerRef"]["value"] for i in invoices.values()} <= customer_ids
    for payment in records(qbo, "payments"):
        (linked,) = payment["Line"][0]["LinkedTxn"]
        assert linked["TxnType"] == "Invoice"
        assert invoices[linked["TxnId"]]["Balance"] == 0
        assert invoices[linked["TxnId"]]["TotalAmt"] == payment["TotalAmt"]


def test_sheets_rows_are_ragged_and_versioned(tmp_path: Path) -> None:
    messages = parse(run_tap(tmp_path, "sheets", {"records": 300}).stdout)
    clients = records(messages, "Clients")
    assert [r["__sdc_row"] for r in clients] == list(range(2, len(clients) + 2))
    assert any("Notes" not in r for r in clients) and any("Notes" in r for r in clients)
    activations = [m for m in messages if m["type"] == "ACTIVATE_VERSION"]
    assert [a["stream"] for a in activations] == ["Clients", "Session_Log"]
    record_messages = [m for m in messages if m["type"] == "RECORD"]
    assert {m["version"] for m in record_messages} == {activations[0]["version"]}


def test_demo_taps_do_not_import_textual() -> None:
    code = (
        "import sys, engine.demo_taps.cli; "
        "assert not any(m.startswith(('textual', 'lorch_tui')) for m in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
