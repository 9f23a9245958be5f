"""``extract X --target LOADER`` checks the tap's lines as a vault run of ``extract X`` does.

The same tap output, run once into the vault and once piped into a real target process (both
through the real CLI), must end the same way: the same status, error code and line, the same
warnings, the same ``bad-line.txt`` (in the vault run's folder, or the target run's diagnostics
folder), and the target gets the lines the vault keeps (a lone surrogate escape repaired).
The reviewer found the pipe refused a line the vault repairs and let a RECORD before any
SCHEMA and an empty tap through as a success.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import log_events, manifest, run_cli, runs_of, write_config

REPLAY = "import shutil, sys\nshutil.copyfileobj(open(sys.argv[1], 'rb'), sys.stdout.buffer)\n"
CATCHER = "import shutil, sys\nshutil.copyfileobj(sys.stdin.buffer, open(sys.argv[1], 'wb'))\n"
SCHEMA = b'{"type": "SCHEMA", "stream": "people", "schema": {"type": "object"}, "key_properties": ["id"]}\n'
STATE = b'{"type": "STATE", "value": {"at": 1}}\n'
UNKNOWN = b'{"type": "METRIC", "value": 3}\n'

CASES: dict[str, tuple[bytes, str, str | None, int | None]] = {
    # tap output, status, error code, line
    "lone-surrogate": (SCHEMA + b'{"type": "RECORD", "stream": "people", "record": {"id": 1, "t": "cut \\ud83d"}}\n'
                       + b'{"type": "RECORD", "stream": "people", "record": {"id": 2, "t": "ok \\ud83d\\ude00"}}\n',
                       "success", None, None),
    "record-before-schema": (STATE + b'{"type": "RECORD", "stream": "people", "record": {"id": 1}}\n' + SCHEMA,
                             "failed", "SCHEMA_MISSING", 2),
    "batch-before-schema": (b'{"type": "BATCH", "stream": "people", "manifest": [],'
                            b' "encoding": {"format": "jsonl", "compression": "none"}}\n', "failed", "SCHEMA_MISSING", 1),
    "empty": (b"", "failed", "TAP_OUTPUT_EMPTY", None),
    "only-unknown-messages": (UNKNOWN + UNKNOWN, "failed", "TAP_OUTPUT_EMPTY", None),
    "nan": (SCHEMA + b'{"type": "RECORD", "stream": "people", "record": {"id": 1, "x": NaN}}\n',
            "failed", "TAP_OUTPUT_INVALID", 2),
    "not-a-message": (SCHEMA + b'{"type": "RECORD", "stream": "people"}\n', "failed", "TAP_MESSAGE_INVALID", 2),
    "unknown-messages-kept": (SCHEMA + UNKNOWN + b'{"type": "RECORD", "stream": "people", "record": {"id": 1}}\n'
                              + UNKNOWN + UNKNOWN, "success", None, None),
}


def _setup(tmp_path: Path, output: bytes) -> tuple[Path, Path]:
    """A replaying tap of ``output`` and a target that copies its stdin to a file."""
    (tmp_path / "tap.singer").write_bytes(output)
    (tmp_path / "replay.py").write_text(REPLAY)
    (tmp_path / "catcher.py").write_text(CATCHER)
    received = tmp_path / "received.singer"
    cfg = write_config(tmp_path, [{"name": "t", "domain": "ops", "source": "w", "account": "a", "kind": "singer",
                                   "retries": 0,
                                   "command": [sys.executable, str(tmp_path / "replay.py"),
                                               str(tmp_path / "tap.singer")]}],
                       loaders=[{"name": "catcher",
                                 "command": [sys.executable, str(tmp_path / "catcher.py"), str(received)]}])
    return cfg, received


def _events(ws: Path, since: int) -> tuple[dict[str, Any], list[tuple[str, int | None, int | None]]]:
    """The last run's final event and its warnings (code, count, line)."""
    events = log_events(ws)[since:]
    final = [e for e in events if e["type"] == "task_finished"][-1]
    warnings = [(e["code"], e.get("count"), e.get("line")) for e in events if e["type"] == "task_warning"]
    return final, warnings


@pytest.mark.parametrize("case", list(CASES))
def test_target_mode_ends_as_the_vault_run_does(tmp_path: Path, case: str) -> None:
    output, status, code, line = CASES[case]
    cfg, received = _setup(tmp_path, output)
    ws = tmp_path / "ws"

    vault = run_cli("extract", "t", "--config", str(cfg))
    assert vault.returncode == (0 if status == "success" else 1), vault.stdout + vault.stderr
    v_final, v_warnings = _events(ws, 0)
    [run] = runs_of(ws / "vault" / "ops" / "w" / "a")
    seen = len(log_events(ws))

    piped = run_cli("extract", "t", "--target", "catcher", "--config", str(cfg))
    assert piped.returncode == vault.returncode, piped.stdout + piped.stderr
    t_final, t_warnings = _events(ws, seen)

    assert (v_final["status"], v_final.get("error_code"), v_final.get("line")) == (status, code, line)
    assert (t_final["status"], t_final.get("error_code"), t_final.get("line")) == (status, code, line)
    assert t_final["target"] == "catcher" and "Traceback" not in piped.stdout + piped.stderr
    assert t_warnings == v_warnings, "the same warnings (TAP_TEXT_REPAIRED, UNKNOWN_MESSAGE)"
    folder = Path(t_final["detail_path"])
    summary = orjson.loads((folder / "summary.json").read_bytes())
    assert (summary["status"], summary["error_code"], summary["line"]) == (status, code, line)

    if code in ("TAP_OUTPUT_INVALID", "TAP_MESSAGE_INVALID"):
        kept = Path(v_final["detail_path"])
        assert kept == run / "bad-line.txt"
        assert (folder / "bad-line.txt").read_bytes() == kept.read_bytes(), "the same explanation"
        assert (folder / "bad-line.txt").stat().st_mode & 0o777 == 0o600
        assert summary["bad_line"] == "bad-line.txt"
    else:
        assert not (folder / "bad-line.txt").exists() and summary["bad_line"] is None
    if status == "success":
        # the target got every line the vault keeps, a repaired line as the vault keeps it
        m = manifest(run)
        kept_lines = b"".join(gzip.decompress((run / p["file"]).read_bytes()) for p in m["parts"])
        assert received.read_bytes().splitlines() == kept_lines.splitlines()
        assert summary["repaired_lines"] == m.get("repaired_lines", 0)


def test_a_repaired_line_reaches_the_target_as_valid_json(tmp_path: Path) -> None:
    cfg, received = _setup(tmp_path, CASES["lone-surrogate"][0])
    res = run_cli("extract", "t", "--target", "catcher", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "TAP_TEXT_REPAIRED (count 1)" in res.stdout
    lines = received.read_bytes().splitlines()
    assert [orjson.loads(x).get("record") for x in lines[1:]] == [{"id": 1, "t": "cut \ufffd"},
                                                                  {"id": 2, "t": "ok \U0001F600"}]
    assert lines[2] == b'{"type": "RECORD", "stream": "people", "record": {"id": 2, "t": "ok \\ud83d\\ude00"}}', \
        "a line without a lone surrogate reaches the target byte for byte"
