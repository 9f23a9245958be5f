"""The Google Forms demo taps as real subprocesses: Singer shape, determinism, one truth.

``forms`` (Forms API responses with the form's items) and ``formsheets`` (a form's linked
sheet) must give the same responses: same respondent, second and answer per question title.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from engine.demo_taps import forms
from engine.demo_taps.canary import CANARY_EMAIL

RECORDS = 40


def run(tmp: Path, tap: str, account: str, records: int = RECORDS) -> tuple[bytes, list[dict[str, Any]]]:
    cfg = tmp / f"{tap}-{account}.json"
    cfg.write_text(json.dumps({"account": account, "records": records, "seed": 7}))
    out = subprocess.run([sys.executable, "-m", "engine.demo_taps", tap, "--config", str(cfg)],
                         capture_output=True, check=True, timeout=60).stdout
    return out, [orjson.loads(x) for x in out.splitlines()]


def check_singer(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    schemas: dict[str, Any] = {}
    keys: set[tuple[str, str]] = set()
    records = []
    for m in messages:
        if m["type"] == "SCHEMA":
            schemas[m["stream"]] = (jsonschema_rs.Draft202012Validator(m["schema"]), m["key_properties"])
        elif m["type"] == "RECORD":
            validator, (key,) = schemas[m["stream"]]  # SCHEMA came first
            validator.validate(m["record"])
            assert (m["stream"], str(m["record"][key])) not in keys
            keys.add((m["stream"], str(m["record"][key])))
            records.append(m["record"])
    return records


def test_forms_api_shape(tmp_path: Path) -> None:
    out, messages = run(tmp_path, "forms", "outcomes")
    records = check_singer(messages)
    assert len(records) == RECORDS
    first = records[0]
    assert first["respondentEmail"] == CANARY_EMAIL  # client 0 is the canary, as in every tap
    assert {"formId", "responseId", "createTime", "lastSubmittedTime", "respondentEmail",
            "answers", "form"} <= set(first)
    items = {i["questionItem"]["question"]["questionId"]: i["title"] for i in first["form"]["items"]}
    assert set(first["answers"]) <= set(items)
    for qid, a in first["answers"].items():
        assert a["questionId"] == qid and isinstance(a["textAnswers"]["answers"][0]["value"], str)
    assert {r["formId"] for r in records} == {forms.INTAKE.form_id, forms.FOLLOW_UP.form_id}
    days = sorted(r["lastSubmittedTime"][:10] for r in records)
    assert days[-1][:7] > days[0][:7]  # several months
    assert run(tmp_path, "forms", "outcomes")[0] == out


def test_linked_sheets_hold_the_same_responses(tmp_path: Path) -> None:
    api = check_singer(run(tmp_path, "forms", "outcomes")[1])
    by_key = {}
    for r in api:
        titles = {i["questionItem"]["question"]["questionId"]: i["title"] for i in r["form"]["items"]}
        answers = {titles[q]: a["textAnswers"]["answers"][0]["value"] for q, a in r["answers"].items()}
        by_key[(r["respondentEmail"], r["lastSubmittedTime"][:19])] = (r["formId"], answers)
    seen = 0
    for account, form in (("first-visit", forms.INTAKE), ("follow-up", forms.FOLLOW_UP)):
        _out, messages = run(tmp_path, "formsheets", account)
        rows = check_singer(messages)
        assert [m for m in messages if m["type"] == "ACTIVATE_VERSION"]
        for row in rows:
            m, d, rest = row["Timestamp"].split("/")
            y, clock = rest.split(" ")
            h, mi, s = clock.split(":")
            stamp = f"{y}-{int(m):02d}-{int(d):02d}T{int(h):02d}:{mi}:{s}"
            form_id, answers = by_key[(row["Email Address"], stamp)]
            assert form_id == form.form_id
            cells = {k: v for k, v in row.items() if not k.startswith("__sdc") and v
                     and k not in ("Timestamp", "Email Address")}
            assert cells == answers
            seen += 1
    assert seen == RECORDS
