"""A parent fills in her son's intake questionnaire from her own address: his scores stay out of her chart.

The reviewer's case (severity 1): client Ann Reed (ann@home.example) and her son Ben Reed (no
address on file). Ben's intake is submitted from ann@home.example with "Your full name" = "Ben
Reed" and every PHQ-9 item "Nearly every day". Linked by the e-mail alone, Ann's chart got the
response and a PHQ-9 of 27 with item 9 positive. The bundled forms transforms now put the
answer to the form's name question into ``respondent.name`` (docs/measures.md, step 3), so the
response names another client than its address leads to: ``disagree``, in no chart, reported
by ``clients unlinked``, and its positive item 9 warned (``MEASURES_CRITICAL_UNLINKED``).
Ann's own intake, from the same address and signed with her name, is still hers.

End to end: a tiny Singer file tap, the bundled transforms and bindings (the demo intake
form's ids, so the bundled binding ``demo-intake`` scores them), the real CLI. Both shapes of
a submission are fed: the Forms API's response and its linked sheet's row.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.demo_taps.forms import GAD7, NAME_TITLE, PHQ9
from tests.helpers import FILE_TAP, clean_env, file_extractor, forms_config, run_cli, singer_file

TITLES = [NAME_TITLE, *PHQ9, *GAD7]
FORM_ID = "1FAIpQLSdemoIntake"
SHEET = ("1IntakeDemoLinkedResponses000000000000000000", 1650287441)
FAMILY = "ann@home.example"
BEN_DAY, ANN_DAY = "2025-03-03", "2025-03-10"

def _answers(name: str, label: str) -> list[str]:
    return [name] + [label] * (len(TITLES) - 1)


def _api(rid: str, when: str, answers: list[str]) -> dict[str, Any]:
    qids = [f"q{n:02d}" for n in range(len(TITLES))]
    form = {"formId": FORM_ID, "info": {"title": "Intake questionnaire"},
            "items": [{"title": t, "questionItem": {"question": {"questionId": q}}}
                      for t, q in zip(TITLES, qids, strict=True)]}
    return {"formId": FORM_ID, "responseId": rid, "createTime": when, "lastSubmittedTime": when,
            "respondentEmail": FAMILY, "form": form,
            "answers": {q: {"questionId": q, "textAnswers": {"answers": [{"value": a}]}}
                        for q, a in zip(qids, answers, strict=True)}}


def _row(n: int, stamp: str, answers: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"__sdc_spreadsheet_id": SHEET[0], "__sdc_sheet_id": SHEET[1], "__sdc_row": n,
                           "Timestamp": stamp, "Email Address": FAMILY}
    row.update(zip(TITLES, answers, strict=True))
    return row


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """(workspace, config, the project task's events) after one full run."""
    tmp = tmp_path_factory.mktemp("child-name")
    (tmp / "filetap.py").write_text(FILE_TAP)
    singer_file(tmp / "contacts.jsonl", "contacts", "contactid", [
        {"contactid": "c-ann", "firstname": "Ann", "lastname": "Reed", "fullname": "Ann Reed",
         "emailaddress1": FAMILY, "birthdate": "1980-04-04", "statecode": 0},
        {"contactid": "c-ben", "firstname": "Ben", "lastname": "Reed", "fullname": "Ben Reed",
         "birthdate": "2012-05-05", "statecode": 0}])
    ben = _answers("Ben Reed", "Nearly every day")  # PHQ-9 27, item 9 positive
    ann = _answers("  Ann Reed ", "Several days")
    singer_file(tmp / "forms.jsonl", "responses", "responseId", [
        _api("r-ben", f"{BEN_DAY}T16:00:00Z", ben), _api("r-ann", f"{ANN_DAY}T16:00:00Z", ann)])
    singer_file(tmp / "sheet.jsonl", "Form_Responses_1", "__sdc_row", [
        _row(2, "3/3/2025 16:00:00", ben), _row(3, "3/10/2025 16:00:00", ann)])
    path = forms_config(tmp, "child-name", [
        file_extractor(tmp, "dv", "dataverse", "main", tmp / "contacts.jsonl"),
        file_extractor(tmp, "forms-api", "forms", "outcomes", tmp / "forms.jsonl"),
        file_extractor(tmp, "fsheet", "sheets", "fs", tmp / "sheet.jsonl")],
        {"sources": ["dataverse"], "where": {"account": "main"}})
    res = run_cli("--config", str(path), "run", "--json", env=clean_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    events = [e for e in map(orjson.loads, res.stdout.splitlines()) if e.get("stage") == "project"]
    return tmp / "ws", path, events


def _query(ws: Path, sql: str, *args: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(ws / "vector-store" / "index.sqlite")) as con:
        return con.execute(sql, args).fetchall()


def test_the_respondent_name_is_the_answer_to_the_name_question(
        run: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    canonical = [orjson.loads(x) for p in ("forms/outcomes.jsonl", "sheets/fs.jsonl")
                 for x in (run[0] / "canonical" / p).read_bytes().splitlines()]
    assert sorted((r["source_id"], r["respondent"]) for r in canonical) == sorted([
        ("r-ben", {"email": FAMILY, "name": "Ben Reed"}), ("r-ann", {"email": FAMILY, "name": "Ann Reed"}),
        (f"{SHEET[0]}/{SHEET[1]}/2", {"email": FAMILY, "name": "Ben Reed"}),
        (f"{SHEET[0]}/{SHEET[1]}/3", {"email": FAMILY, "name": "Ann Reed"})])


def test_the_childs_questionnaire_is_in_no_chart(run: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    ws, cfg, events = run
    res = run_cli("--config", str(cfg), "clients", "unlinked", "--kind", "form_response", "--json",
                  env=clean_env())
    assert res.returncode == 0, res.stdout + res.stderr
    unlinked = {u["entity_id"]: u for u in map(orjson.loads, res.stdout.splitlines())}
    ben_docs = {"r-ben", f"{SHEET[0]}/{SHEET[1]}/2"}
    assert set(unlinked) == ben_docs, unlinked
    assert {u["reason"] for u in unlinked.values()} == {"disagree"}
    assert all(FAMILY in u["detail"] for u in unlinked.values())
    # Ann's own intake, from the same address and signed with her name, is hers.
    links = dict(_query(ws, "SELECT l.entity_id, c.name FROM client_links l JOIN clients c USING (client_id) "
                            "WHERE l.kind = 'form_response'"))
    assert links == {"r-ann": "Ann Reed", f"{SHEET[0]}/{SHEET[1]}/3": "Ann Reed"}

    scored = [orjson.loads(x) for x in (ws / "canonical/measures/scored.jsonl").read_bytes().splitlines()]
    bens = [m for m in scored if m["effective_at"].startswith(BEN_DAY)]
    assert {m["measure"] for m in bens} == {"phq9", "gad7"} and not any("client_id" in m for m in bens)
    phq = next(m for m in bens if m["measure"] == "phq9")
    assert phq["value"] == 27 and "phq9_9_positive" in phq["flags"]
    measurement_links = _query(ws, "SELECT c.name, l.entity_id FROM client_links l JOIN clients c USING (client_id) "
                                   "WHERE l.kind = 'measurement'")
    assert measurement_links and {name for name, _ in measurement_links} == {"Ann Reed"}
    assert not {e for _, e in measurement_links} & {m["source_id"] for m in bens}

    charts = {p.parent.name: p.read_text() for p in (ws / "clients").glob("*/measures.md")}
    ann_chart = next(text for folder, text in charts.items() if folder.startswith("Reed, Ann"))
    assert f"| {ANN_DAY} |" in ann_chart and BEN_DAY not in ann_chart
    assert not any(BEN_DAY in text for text in charts.values())

    warned = [e for e in events if e.get("type") == "task_warning"]
    assert [e["count"] for e in warned if e["code"] == "MEASURES_CRITICAL_UNLINKED"] == [1]
