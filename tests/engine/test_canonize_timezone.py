"""A linked Google Sheet shows its spreadsheet's local time: the mapping's ``timezone``.

The real demo form-sheet tap through the real CLI: the same vault run canonized without a
time zone (the sheet's ``Timestamp`` is taken as UTC) and with ``timezone:
America/New_York`` (``$timezone`` in the bundled transform): every submission moves by the
zone's offset at that date, and changing the zone canonizes again instead of skipping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from tests.helpers import demo_mappings, log_events, run_cli, write_config

SHEET = {"name": "follow-up", "domain": "clinical", "source": "sheets", "account": "follow-up",
         "kind": "demo", "demo": {"tap": "formsheets", "records": 12, "seed": 7}}


def config(tmp: Path, zone: str | None) -> Path:
    maps = [dict(m, **({"timezone": zone} if zone and m["stream"] == "Form_Responses_1" else {}))
            for m in demo_mappings()]
    return write_config(tmp, [SHEET], stages={"canonize": {"mappings": maps}})


def submitted(ws: Path) -> dict[str, str]:
    lines = (ws / "canonical" / "sheets" / "follow-up.jsonl").read_bytes().splitlines()
    return {d["source_id"]: d["submitted_at"] for d in map(orjson.loads, lines)}


def last_canonize(ws: Path) -> dict[str, Any]:
    return [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "canonize"][-1]


def test_the_mapping_s_time_zone_reads_the_sheet_s_local_times(tmp_path: Path) -> None:
    res = run_cli("run", "--stage", "extract", "--stage", "canonize", "--config", str(config(tmp_path, None)))
    assert res.returncode == 0, res.stdout + res.stderr
    ws = tmp_path / "ws"
    as_utc = submitted(ws)
    assert as_utc
    res = run_cli("run", "--stage", "canonize", "--config", str(config(tmp_path, "America/New_York")))
    assert res.returncode == 0, res.stdout + res.stderr
    assert last_canonize(ws)["status"] == "success", "a new zone is a new output, never skipped"
    zoned = submitted(ws)
    assert zoned.keys() == as_utc.keys()
    new_york = ZoneInfo("America/New_York")
    for sid, wall in as_utc.items():  # the same wall time, read in New York
        local = datetime.fromisoformat(wall.replace("Z", "")).replace(tzinfo=new_york)
        assert zoned[sid] == local.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"), sid
        shift = datetime.fromisoformat(zoned[sid][:-1]) - datetime.fromisoformat(wall[:-1])
        assert shift in (timedelta(hours=4), timedelta(hours=5))
    res = run_cli("run", "--stage", "canonize", "--config", str(config(tmp_path, "America/New_York")))
    assert res.returncode == 0 and last_canonize(ws)["status"] == "skipped"


def test_an_unknown_time_zone_is_a_config_error(tmp_path: Path) -> None:
    res = run_cli("validate", "--config", str(config(tmp_path, "America/Gotham")))
    assert res.returncode == 2 and "not a known IANA time zone" in res.stdout + res.stderr
    assert "Traceback" not in res.stderr


def test_the_tap_s_date_time_cell_is_the_sheet_s_wall_time_too() -> None:
    """tap-google-sheets writes a DATE_TIME cell as ``2024-03-04T09:30:00.000000Z``: the
    sheet's wall time with a Z it does not mean. With the mapping's zone it is read there, as
    the formatted ``3/4/2024 9:30:00`` is, so the sheet copy matches the Forms API original."""
    from engine.canon.compiled import CompiledTransform
    from engine.canon.registry import Registry

    reg = Registry.load(None, None)
    compiled = CompiledTransform(reg, reg.get("forms/sheets_form_response_to_form_response_v1"))
    compiled.bindings = {"timezone": "America/New_York"}
    row = {"__sdc_spreadsheet_id": "s", "__sdc_sheet_id": 1, "__sdc_row": 2, "Email Address": "a@b.org",
           "Over the last 2 weeks, how often have you been bothered by little interest?": "Several days"}
    envelope = {"source": "sheets", "account": "x"}
    for stamp in ("2024-03-04T09:30:00.000000Z", "2024-03-04T09:30:00Z", "3/4/2024 9:30:00"):
        out = compiled.apply({**row, "Timestamp": stamp}, envelope)
        assert out["submitted_at"] == "2024-03-04T14:30:00Z", stamp
    compiled.bindings = {}
    assert compiled.apply({**row, "Timestamp": "2024-03-04T09:30:00.000000Z"}, envelope)["submitted_at"] == \
        "2024-03-04T09:30:00Z", "no zone: UTC, as before"
