"""Items whose answer is not known: a question not on the form, an unreadable or a blank item 9.

A binding worded otherwise than the form found no question for an item, and the item was
taken as left blank: the total was prorated and written as a normal score (item 9 "Nearly
every day" on the form, the chart said 0, minimal). An unreadable item 9 ("3 (Nearly every
day)") from a respondent linked to no one was a reject without a flag, counted nowhere as
critical. Now a question not on the form is ``QUESTION_MISSING`` (never prorated), an item 9
not known (not on the form, unreadable) is counted as critical like a positive one (the
chart's bold line, ``MEASURES_CRITICAL_UNLINKED``), and a blank item 9 says so
(``phq9_9_unanswered``, prorated, not critical). ``validate`` refuses a ``question_id``
binding on a linked sheet's form (its rows have no question ids).

End to end through the CLI (real extract, canonize, index and project subprocesses over a
small Singer file tap) with a registry of its own: the bundled measures and three bindings.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from engine.clients.model import client_id_for
from engine.demo_taps.forms import PHQ9
from engine.measures.registry import BUNDLED_MEASURES
from tests.helpers import FILE_TAP, clean_env, run_cli, singer_file

LABELS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
ALICE = client_id_for("dataverse", "main", "c-alice")
ITEM1_REWORDED = PHQ9[0] + ", or hobbies"
ITEM9_ON_FORM = "Thoughts that you would be better off dead, or of hurting yourself"
"""The form's item 9 (the binding's is the official wording, "... in some way")."""


def _api(form_id: str, rid: str, email: str, day: str, answers: list[Any],
         titles: list[str] | None = None) -> dict[str, Any]:
    """A Forms API response (with its form): ``answers`` are label indexes, texts or None."""
    titles = titles or list(PHQ9)
    qids = [f"q{n}" for n in range(1, 10)]
    form = {"formId": form_id, "info": {"title": form_id},
            "items": [{"title": t, "questionItem": {"question": {"questionId": q}}}
                      for t, q in zip(titles, qids, strict=True)]}
    given = {q: {"questionId": q, "textAnswers": {"answers": [{"value": LABELS[a] if isinstance(a, int) else a}]}}
             for q, a in zip(qids, answers, strict=True) if a is not None}
    when = f"{day}T10:00:00Z"
    return {"formId": form_id, "responseId": rid, "createTime": when, "lastSubmittedTime": when,
            "respondentEmail": email, "answers": given, "form": form}


def _binding(bid: str, form_id: str, titles: list[str]) -> dict[str, Any]:
    return {"id": bid, "forms": [{"form_id": form_id}], "measures": [
        {"measure": "phq9", "version": 1, "items": {f"phq9_{n}": {"title": t} for n, t in enumerate(titles, 1)}}]}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Alice (a client) and strangers answer three forms; (workspace, config)."""
    tmp = tmp_path_factory.mktemp("unknown-items")
    (tmp / "filetap.py").write_text(FILE_TAP)
    singer_file(tmp / "contacts.jsonl", "contacts", "contactid", [
        {"contactid": "c-alice", "firstname": "Alice", "lastname": "Able", "fullname": "Alice Able",
         "emailaddress1": "alice@x.example", "birthdate": "1980-01-01", "statecode": 0}])
    item9_form = [*PHQ9[:8], ITEM9_ON_FORM]
    singer_file(tmp / "forms.jsonl", "responses", "responseId", [
        # form A: the binding's item 1 is worded otherwise; item 1 "Nearly every day" (true total 3)
        _api("FormA", "a1", "alice@x.example", "2025-01-01", [3] + [0] * 8),
        # form B: the form's item 9 is worded otherwise than the binding's; item 9 "Nearly every day"
        _api("FormB", "b1", "alice@x.example", "2025-01-02", [0] * 8 + [3], item9_form),
        _api("FormB", "b2", "stranger@y.example", "2025-01-02", [0] * 8 + [3], item9_form),
        # form C (bound right): item 9 unreadable, unlinked and Alice's; item 9 blank
        _api("FormC", "c1", "other@y.example", "2025-01-03", [0] * 8 + ["3 (Nearly every day)"]),
        _api("FormC", "c2", "alice@x.example", "2025-01-04", [0] * 8 + ["Nearly every day."]),
        _api("FormC", "c3", "alice@x.example", "2025-01-05", [1] * 8 + [None]),
        # too many blanks, item 9 among them: not scored, flagged unanswered, not critical
        _api("FormC", "c4", "alice@x.example", "2025-01-06", [1] * 7 + [None, None]),
    ])
    measures = tmp / "measures"
    shutil.copytree(BUNDLED_MEASURES, measures, ignore=shutil.ignore_patterns("bindings"))
    (measures / "bindings").mkdir()
    for b in (_binding("form-a", "FormA", [ITEM1_REWORDED, *PHQ9[1:]]), _binding("form-b", "FormB", list(PHQ9)),
              _binding("form-c", "FormC", list(PHQ9))):
        (measures / "bindings" / f"{b['id']}.yaml").write_text(yaml.safe_dump(b, sort_keys=False))
    cfg = {
        "pipeline": {"name": "unknown-items", "version": "1"},
        "workspace": str(tmp / "ws"),
        "extractors": [
            {"name": n, "domain": "clinical", "source": s, "account": a, "kind": "singer",
             "command": [sys.executable, str(tmp / "filetap.py"), str(tmp / f)], "timeout_s": 120}
            for n, s, a, f in (("dv", "dataverse", "main", "contacts.jsonl"),
                               ("forms-api", "forms", "outcomes", "forms.jsonl"))],
        "stages": {"canonize": {"mappings": [
            {"source": "dataverse", "stream": "contacts", "transform": "clinical/dataverse_contact_to_contact_v1"},
            {"source": "forms", "stream": "responses", "transform": "forms/gforms_response_to_form_response_v1"}]},
            "index": {"vectors": False}},
        "clients": {"sources": ["dataverse"], "where": {"account": "main"}, "measures": str(measures)},
    }
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = run_cli("--config", str(path), "run", env=clean_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp / "ws", path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def _outcome(ws: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, str], str, list[Any]]:
    """(scored by response id, rejects by response id, clients_meta, Alice's measures.md, the
    project task's events)."""
    scored = {m["response_id"]: m for m in _jsonl(ws / "canonical/measures/scored.jsonl")}
    rejects = {r["response"].rsplit("/", 1)[1]: r for r in _jsonl(ws / "canonical/measures/scored.rejects.jsonl")}
    con = sqlite3.connect(ws / "vector-store/index.sqlite")
    try:
        folder = con.execute("SELECT folder FROM clients WHERE client_id = ?", (ALICE,)).fetchone()[0]
        meta = dict(con.execute("SELECT key, value FROM clients_meta"))
    finally:
        con.close()
    events = [orjson.loads(x) for p in sorted((ws / "logs").glob("pipeline-*.log")) for x in p.read_bytes().splitlines()]
    return scored, rejects, meta, (ws / "clients" / folder / "measures.md").read_text(), \
        [e for e in events if e.get("stage") == "project"]


def test_a_question_not_on_the_form_is_not_scored_and_an_unknown_item_9_is_critical(built: tuple[Path, Path]) -> None:
    ws, _cfg = built
    scored, rejects, meta, chart, events = _outcome(ws)
    # F1: never prorated; the item named; item 9 not on the form is critical (it may be positive)
    assert "a1" not in scored and "b1" not in scored and "b2" not in scored
    assert (rejects["a1"]["reason"], rejects["a1"]["item"], rejects["a1"].get("flags")) == (
        "QUESTION_MISSING", "phq9_1", None)
    for rid in ("b1", "b2"):
        assert (rejects[rid]["reason"], rejects[rid]["item"], rejects[rid]["flags"]) == (
            "QUESTION_MISSING", "phq9_9", ["phq9_9_question_missing"])
    # F3: an unreadable item 9 is flagged, on the line that names it too
    for rid in ("c1", "c2"):
        assert (rejects[rid]["reason"], rejects[rid]["item"], rejects[rid]["flags"]) == (
            "UNKNOWN_ANSWER", "phq9_9", ["phq9_9_unreadable"])
    # F5: a blank item 9 is prorated (the question is there) and says so, not critical
    assert scored["c3"]["value"] == 9 and scored["c3"]["flags"] == ["phq9_9_unanswered", "prorated"]
    assert scored["c3"]["client_id"] == ALICE
    # counts: b2 and c1 are linked to no one, their item 9 not known: warned as critical
    assert meta["measures_not_scored"] == "6" and meta["measures_critical_unlinked"] == "2"
    warned = {e["code"]: e["count"] for e in events if e.get("code", "").startswith("MEASURES_")}
    assert warned == {"MEASURES_NOT_SCORED": 6, "MEASURES_CRITICAL_UNLINKED": 2}
    assert (rejects["c4"]["reason"], rejects["c4"]["flags"]) == ("TOO_MANY_MISSING", ["phq9_9_unanswered"])
    # Alice's chart: the three not-scored rows, the bold line counting b1 and c2, c3's flags
    assert "**A critical item was answered, or its answer is not known, in 2 response(s)" in chart
    assert "| 2025-01-01 | phq9 | a question of the binding is not on the form (QUESTION_MISSING) | phq9_1 | - |" in chart
    assert "| 2025-01-02 | phq9 | a question of the binding is not on the form (QUESTION_MISSING) | phq9_9 | " \
           "phq9_9_question_missing |" in chart
    assert "(UNKNOWN_ANSWER) | phq9_9 | phq9_9_unreadable |" in chart
    assert "| 2025-01-05 | 9 | mild | - | - | phq9_9_unanswered, prorated |" in chart


def _with_binding(built: tuple[Path, Path], tmp_path: Path, binding: dict[str, Any]) -> tuple[Path, Path]:
    """A copy of the config whose registry also has ``binding``: (config, registry folder)."""
    _ws, cfg = built
    data = yaml.safe_load(cfg.read_text())
    measures = tmp_path / "measures"
    shutil.copytree(data["clients"]["measures"], measures)
    (measures / "bindings" / f"{binding['id']}.yaml").write_text(yaml.safe_dump(binding, sort_keys=False))
    data["clients"]["measures"] = str(measures)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, measures


def test_a_question_id_binding_on_a_linked_sheet_is_refused(built: tuple[Path, Path], tmp_path: Path) -> None:
    """The docs' K10 example bound an item by question_id and selected the linked sheet too: the
    sheet copy could never find it. validate fails, and so does the registry's load (the
    project task refuses to run: MEASURES_INVALID); by title it is fine."""
    from engine.measures.registry import load

    sheet = {"form_id": "1SheetSpreadsheet/0"}
    items: dict[str, Any] = {f"phq9_{n}": {"title": t} for n, t in enumerate(PHQ9, 1)}
    bad = {"id": "distress", "forms": [{"form_title": "Monthly check"}, sheet],
           "measures": [{"measure": "phq9", "version": 1, "items": {**items, "phq9_2": {"question_id": "5a1b2c3d"}}}]}
    cfg, measures = _with_binding(built, tmp_path, bad)
    reg = load(measures)
    assert [b.id for b in reg.bindings] == ["form-a", "form-b", "form-c"]
    assert len(reg.problems) == 1 and "phq9: phq9_2 bound by question_id" in reg.problems[0]
    assert "'1SheetSpreadsheet/0'" in reg.problems[0] and "bind these items by title" in reg.problems[0]
    res = run_cli("--config", str(cfg), "validate", env=clean_env(), timeout=120)
    assert res.returncode != 0 and "phq9_2 bound by question_id" in res.stdout + res.stderr
    (measures / "bindings" / "distress.yaml").write_text(yaml.safe_dump({**bad, "measures": [
        {"measure": "phq9", "version": 1, "items": items}]}))
    assert load(measures).problems == []
    # the API form alone may be bound by question id
    (measures / "bindings" / "distress.yaml").write_text(yaml.safe_dump({**bad, "forms": bad["forms"][:1]}))
    assert load(measures).problems == []


def test_clients_show_measures_says_a_critical_response_was_not_scored(built: tuple[Path, Path]) -> None:
    """A reviewer's finding: `clients show X --measures` listed the scores only; that one of the
    client's responses with a critical item answered (or not known) could not be scored was in
    the chart alone. It says what the chart says (copies of one submission settled there)."""
    ws, cfg = built
    text = run_cli("--config", str(cfg), "clients", "show", ALICE, "--measures", env=clean_env())
    assert text.returncode == 0, text.stderr
    assert "2 response(s) of this client could not be scored and carry a critical flag" in text.stdout, text.stdout
    assert "phq9_9_question_missing, phq9_9_unreadable" in text.stdout
    shown = run_cli("--config", str(cfg), "clients", "show", ALICE, "--measures", "--json", env=clean_env())
    critical = orjson.loads(shown.stdout)["critical_not_scored"]
    # as the chart counts them (b1 and c2; c4's blank item 9 is no critical flag)
    assert critical["responses"] == 2 and critical["flags"] == ["phq9_9_question_missing", "phq9_9_unreadable"]
    assert critical["chart"].endswith("measures.md")
