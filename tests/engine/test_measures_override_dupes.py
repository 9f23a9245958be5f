"""Copies of one questionnaire submission, an override on one copy, and whose chart gets the score.

The same Google Forms submission arrives as the Forms API's response and as rows of its linked
sheet (here two sheet accounts, so three copies). Each copy is linked to a client by the
respondent's e-mail; an override (``link:``) can move one copy to another client or to no
one. The copies must still be recognised as one submission: scored once, for the client the
override names, never in two charts; overrides that name different clients score it for no
one and report every copy (``COPIES_DISAGREE``).

End to end through the CLI (real extract, canonize, index and project subprocesses over a
small Singer file tap): one module-scoped workspace is built once, then every scenario
writes the overrides file and re-runs the project stage (an overrides change re-projects).
Below, the step's settling of disputed copies without the client layer, and the ``prorated``
flag of a measure that does not prorate (item 2 of the review), through the real scoring code.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from engine.clients.model import Projection, client_id_for
from engine.demo_taps.forms import GAD7, PHQ9
from engine.measures.registry import BUNDLED_MEASURES, Registry, load
from engine.measures.score import COPIES_DISAGREE, PARTIAL_SUM, PRORATED, score_response, total
from engine.measures.spill import Spill
from engine.measures.step import _finish, _Scoring
from tests.helpers import FILE_TAP, clean_env, file_extractor, forms_config, run_cli, singer_file

PHQ = list(PHQ9)
GAD = list(GAD7)
TITLES = PHQ + GAD
LABELS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
FORM_ID = "1FAIpQLSdemoIntake"  # the bundled binding demo-intake names these two forms
SHEET = ("1IntakeDemoLinkedResponses000000000000000000", 1650287441)

ALICE = client_id_for("dataverse", "main", "c-alice")
BOB = client_id_for("dataverse", "main", "c-bob")
API = "forms:outcomes:form_response:r01"
"""The overridden submission: the Forms API's copy and its rows in two sheet accounts."""
SHEET_ROW = f"{SHEET[0]}/{SHEET[1]}/2"
FS = f"sheets:fs:form_response:{SHEET_ROW}"
FS2 = f"sheets:fs2:form_response:{SHEET_ROW}"
DAY = "2025-01-01"
"""When r01 was submitted (r02, another of Alice's, on 2025-01-02, is never overridden)."""

def _api(rid: str, email: str, when: str, values: list[int]) -> dict[str, Any]:
    qids = [f"q{n:02d}" for n in range(1, len(TITLES) + 1)]
    form = {"formId": FORM_ID, "info": {"title": "Intake"},
            "items": [{"title": t, "questionItem": {"question": {"questionId": q}}}
                      for t, q in zip(TITLES, qids, strict=True)]}
    answers = {q: {"questionId": q, "textAnswers": {"answers": [{"value": LABELS[v]}]}}
               for q, v in zip(qids, values, strict=True)}
    return {"formId": FORM_ID, "responseId": rid, "createTime": when, "lastSubmittedTime": when,
            "respondentEmail": email, "answers": answers, "form": form}


def _row(n: int, stamp: str, email: str, values: list[int]) -> dict[str, Any]:
    row: dict[str, Any] = {"__sdc_spreadsheet_id": SHEET[0], "__sdc_sheet_id": SHEET[1], "__sdc_row": n,
                           "Timestamp": stamp, "Email Address": email}
    row.update({t: LABELS[v] for t, v in zip(TITLES, values, strict=True)})
    return row


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A workspace with Alice's two submissions, each as three copies; (workspace, config,
    overrides file)."""
    tmp = tmp_path_factory.mktemp("override-dupes")
    (tmp / "filetap.py").write_text(FILE_TAP)
    singer_file(tmp / "contacts.jsonl", "contacts", "contactid", [
        {"contactid": f"c-{first.lower()}", "firstname": first, "lastname": last,
         "fullname": f"{first} {last}", "emailaddress1": f"{first.lower()}@x.example",
         "birthdate": dob, "statecode": 0}
        for first, last, dob in (("Alice", "Able", "1980-01-01"), ("Bob", "Baker", "1981-02-02"))])
    r01, r02 = [1] * 16, [2] * 16
    singer_file(tmp / "forms.jsonl", "responses", "responseId", [
        _api("r01", "alice@x.example", f"{DAY}T10:00:00Z", r01),
        _api("r02", "alice@x.example", "2025-01-02T10:00:00Z", r02)])
    singer_file(tmp / "sheet.jsonl", "Form_Responses_1", "__sdc_row", [
        _row(2, "1/1/2025 10:00:00", "alice@x.example", r01),
        _row(3, "1/2/2025 10:00:00", "alice@x.example", r02)])
    overrides = tmp / "overrides.yaml"
    overrides.write_text("version: 1\n")
    path = forms_config(tmp, "override-dupes", [
        file_extractor(tmp, "dv", "dataverse", "main", tmp / "contacts.jsonl"),
        file_extractor(tmp, "forms-api", "forms", "outcomes", tmp / "forms.jsonl"),
        file_extractor(tmp, "fsheet", "sheets", "fs", tmp / "sheet.jsonl"),
        file_extractor(tmp, "fsheet2", "sheets", "fs2", tmp / "sheet.jsonl")],
        {"sources": ["dataverse"], "where": {"account": "main"}, "overrides": str(overrides)})
    ws = tmp / "ws"
    res = run_cli("--config", str(path), "run", env=clean_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return ws, path, overrides


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


class Outcome:
    """What one project run published about the submissions."""

    def __init__(self, ws: Path) -> None:
        folder = ws / "canonical/measures"
        self.scored = _jsonl(folder / "scored.jsonl")
        self.rejects = _jsonl(folder / "scored.rejects.jsonl")
        self.dups = _jsonl(folder / "scored.duplicates.jsonl")
        con = sqlite3.connect(ws / "vector-store/index.sqlite")
        try:
            folders = dict(con.execute("SELECT client_id, folder FROM clients"))
            self.links = sorted(con.execute(
                "SELECT client_id, entity_id FROM client_links WHERE kind = 'measurement'"))
            self.meta = dict(con.execute("SELECT key, value FROM clients_meta"))
        finally:
            con.close()
        self.charts = {cid: (ws / "clients" / f / "measures.md").read_text() for cid, f in folders.items()}
        events = [orjson.loads(x) for p in sorted((ws / "logs").glob("pipeline-*.log"))
                  for x in p.read_bytes().splitlines()]
        last = [e for e in events if e.get("stage") == "project"]
        start = max(i for i, e in enumerate(last) if e.get("type") == "task_started")
        self.events = last[start:]

    def of_day(self, day: str = DAY) -> list[dict[str, Any]]:
        """The measurements of one day's submission."""
        return [m for m in self.scored if m["effective_at"].startswith(day)]

    def charted(self, day: str = DAY) -> set[str]:
        """The clients whose measures.md shows a score of that day."""
        return {cid for cid, text in self.charts.items() if f"| {day} |" in text}

    def check_counts(self) -> None:
        """Every count agrees with its file, whatever was settled."""
        assert self.meta["measures_scored"] == str(len(self.scored))
        assert self.meta["measures_not_scored"] == str(len(self.rejects))
        assert self.meta["measures_duplicates"] == str(len(self.dups))
        finished = [e for e in self.events if e.get("type") == "task_finished"]
        assert finished and finished[-1]["rejects"] == len(self.rejects)
        assert finished[-1]["duplicates"] == len(self.dups)
        warned = [e["count"] for e in self.events if e.get("code") == "MEASURES_NOT_SCORED"]
        assert warned == ([len(self.rejects)] if self.rejects else [])
        assert self.links == sorted((m["client_id"], m["source_id"]) for m in self.scored if "client_id" in m)
        # r02 is never overridden: scored once, for Alice, its sheet copies duplicates.
        assert {m["client_id"] for m in self.of_day("2025-01-02")} == {ALICE}
        assert len(self.of_day("2025-01-02")) == 2 and self.charted("2025-01-02") == {ALICE}


def sha256_of(ws: Path, document: str) -> str:
    """The document's content sha256 in the index: a link may name it (docs/clients.md
    section 3); half the links here do, half hold for the content they were first applied to."""
    source, account, kind, entity = document.split(":", 3)
    con = sqlite3.connect(f"file:{ws / 'vector-store' / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT sha256 FROM documents WHERE source = ? AND account = ? AND kind = ? "
                           "AND entity_id = ?", (source, account, kind, entity)).fetchone()[0]
    finally:
        con.close()


def project(built: tuple[Path, Path, Path], links: list[tuple[str, str | None]],
            **env: str) -> Outcome:
    """Write the overrides' ``link:`` entries, re-run the project stage, read what it wrote."""
    ws, cfg, overrides = built
    overrides.write_text(yaml.safe_dump({"version": 1, "link": [
        {"document": d, "client": c, **({"sha256": sha256_of(ws, d)} if n % 2 else {})}
        for n, (d, c) in enumerate(links)]}))
    res = run_cli("--config", str(cfg), "run", "--stage", "project", env=clean_env(**env), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    out = Outcome(ws)
    out.check_counts()
    return out


def copies_of(out: Outcome, measure: str) -> set[str]:
    """The duplicate copies of r01's measurement of ``measure``."""
    return {d["response"] for d in out.dups if d["duplicate_of"] == f"forms/outcomes/r01/{measure}.v1"}


SHEET_COPIES = {f"sheets/fs/{SHEET_ROW}", f"sheets/fs2/{SHEET_ROW}"}


def test_without_overrides_the_copies_are_scored_once_for_the_respondent(
        built: tuple[Path, Path, Path]) -> None:
    out = project(built, [])
    assert [(m["measure"], m.get("client_id"), m["response_id"]) for m in out.of_day()] == [
        ("gad7", ALICE, "r01"), ("phq9", ALICE, "r01")]
    assert out.charted() == {ALICE}
    assert copies_of(out, "phq9") == copies_of(out, "gad7") == SHEET_COPIES
    assert out.rejects == []


@pytest.mark.parametrize(("links", "env"), [
    pytest.param([(API, BOB)], {}, id="override-on-the-api-copy"),
    pytest.param([(FS, BOB)], {}, id="override-on-a-sheet-copy"),
    pytest.param([(FS2, BOB)], {"LORCH_PRESCORE_MIN": "1"}, id="override-on-a-sheet-copy-prescored"),
    pytest.param([(API, BOB), (FS, BOB), (FS2, BOB)], {}, id="every-copy-to-the-same-client"),
])
def test_an_override_on_one_copy_moves_the_one_score(
        built: tuple[Path, Path, Path], links: list[tuple[str, str | None]], env: dict[str, str]) -> None:
    out = project(built, links, **env)
    got = out.of_day()
    assert [(m["measure"], m.get("client_id"), m["response_id"]) for m in got] == [
        ("gad7", BOB, "r01"), ("phq9", BOB, "r01")]
    assert out.charted() == {BOB}, "the score is in Bob's chart only, not left in Alice's"
    assert copies_of(out, "phq9") == copies_of(out, "gad7") == SHEET_COPIES
    assert out.rejects == []


@pytest.mark.parametrize("document", [API, FS])
def test_an_override_to_no_one_leaves_the_score_in_no_chart(
        built: tuple[Path, Path, Path], document: str) -> None:
    out = project(built, [(document, None)])
    got = out.of_day()
    assert [(m["measure"], m.get("client_id")) for m in got] == [("gad7", None), ("phq9", None)]
    assert out.charted() == set()
    assert copies_of(out, "phq9") == SHEET_COPIES and out.rejects == []


@pytest.mark.parametrize("links", [
    pytest.param([(API, BOB), (FS, ALICE)], id="to-two-clients"),
    pytest.param([(FS, BOB), (FS2, None)], id="to-a-client-and-to-no-one"),
])
def test_overrides_that_disagree_score_it_for_no_one_and_report_every_copy(
        built: tuple[Path, Path, Path], links: list[tuple[str, str | None]]) -> None:
    out = project(built, links)
    assert out.of_day() == []
    assert out.charted() == set()
    assert not [d for d in out.dups if d["duplicate_of"].startswith("forms/outcomes/r01/")]
    assert sorted((r["response"], r["measure"], r["reason"]) for r in out.rejects) == sorted(
        (ref, measure, COPIES_DISAGREE) for ref in {"forms/outcomes/r01", *SHEET_COPIES}
        for measure in ("gad7", "phq9"))
    assert {r["binding"] for r in out.rejects} == {"demo-intake"}


# -- the step's settling of disputed copies, without the client layer ---------------------------


def _measurement(ref: str, measure: str) -> dict[str, Any]:
    return {"kind": "measurement", "source_id": f"{ref}/{measure}.v1", "measure": measure,
            "measure_version": 1, "effective_at": "2025-01-01T10:00:00Z", "items": {f"{measure}_1": 1},
            "value": 1, "binding": "b", "response_id": ref.rsplit("/", 1)[1]}


def _step(tmp_path: Path, copies: list[tuple[str, str, str | None]], overridden: set[str]) -> Spill:
    """Take ``copies`` (ref, e-mail, client) through the real step into a spill and settle them."""
    path = tmp_path / "scratch.sqlite"
    sqlite3.connect(path).close()
    spill = Spill(path)
    run = _Scoring(lambda s, a, e: None, Registry(BUNDLED_MEASURES), spill, lambda n: None)
    for ref, email, client in copies:
        source, account, entity = ref.split("/", 2)
        run.take((source, account, entity, ""), email, [_measurement(ref, "phq9")], client)
    scored = _finish(spill, len(copies), run, lambda ref: ref in overridden)
    assert (scored.scored, scored.rejects, scored.duplicates) == (
        spill.counts["scored"], spill.counts["rejects"], spill.counts["dups"])
    assert scored.reasons[COPIES_DISAGREE] == scored.rejects
    return spill


def _lines(spill: Spill, what: str) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in spill.lines(what)]


def test_copies_that_disagree_without_an_override_are_scored_for_no_one(tmp_path: Path) -> None:
    spill = _step(tmp_path, [("forms/a/r1", "p@x", "c1"), ("sheets/s/r1", "p@x", "c2")], set())
    assert _lines(spill, "scored") == [] and _lines(spill, "dups") == []
    assert [(r["response"], r["reason"]) for r in _lines(spill, "rejects")] == [
        ("forms/a/r1", COPIES_DISAGREE), ("sheets/s/r1", COPIES_DISAGREE)]
    spill.close()


def test_the_overridden_copy_decides_and_the_score_is_given_to_its_client(tmp_path: Path) -> None:
    spill = _step(tmp_path, [("forms/a/r1", "p@x", "c1"), ("sheets/s/r1", "p@x", "c2"),
                             ("sheets/t/r1", "p@x", "c1")], {"sheets/s/r1"})
    (m,) = _lines(spill, "scored")
    assert m["client_id"] == "c2" and m["source_id"] == "forms/a/r1/phq9.v1"
    assert list(spill.links()) == [("c2", "forms/a/r1/phq9.v1", "r1")]
    assert spill.of_client("c1") == [] and spill.of_client("c2") == [m]
    assert [d["response"] for d in _lines(spill, "dups")] == ["sheets/s/r1", "sheets/t/r1"]
    assert _lines(spill, "rejects") == []
    spill.close()


def test_two_responses_of_one_account_are_never_copies_of_each_other(tmp_path: Path) -> None:
    """Two children answer with the family's one address, the same answers, the same second,
    on one form: two submissions (one account holds one copy of a submission at most), each
    scored for its own child, an override on one moving nothing of the other's."""
    kids = [("forms/a/kid1", "family@x", "c1"), ("forms/a/kid2", "family@x", "c2")]
    for overridden in (set(), {"forms/a/kid2"}):
        folder = tmp_path / f"run{len(overridden)}"
        folder.mkdir()
        spill = _step(folder, kids, overridden)
        assert {(m["source_id"], m["client_id"]) for m in _lines(spill, "scored")} == {
            ("forms/a/kid1/phq9.v1", "c1"), ("forms/a/kid2/phq9.v1", "c2")}
        assert _lines(spill, "dups") == [] and _lines(spill, "rejects") == []
        spill.close()


def test_copies_without_an_email_keep_the_old_identity(tmp_path: Path) -> None:
    """Without an e-mail nothing says two copies are one submission but their client: the
    same client (by two overrides) is one score; no client at all, two (as before)."""
    spill = _step(tmp_path, [("forms/a/r1", "", "c1"), ("sheets/s/r1", "", "c1"),
                             ("forms/a/r2", "", None), ("sheets/s/r2", "", None)], set())
    assert [m["source_id"] for m in _lines(spill, "scored")] == [
        "forms/a/r1/phq9.v1", "forms/a/r2/phq9.v1", "sheets/s/r2/phq9.v1"]
    assert [d["response"] for d in _lines(spill, "dups")] == ["sheets/s/r1"]
    spill.close()


def test_the_overrides_of_an_in_memory_projection_are_read_too(tmp_path: Path) -> None:
    from engine.clients.model import DocRef, Link, Unlinked
    from engine.measures.copies import Overridden

    p = Projection(clients={}, links=[
        Link("c1", DocRef("forms", "a", "form_response", "r1"), "override", None, "overrides file"),
        Link("c1", DocRef("sheets", "s", "form_response", "x/1/2"), "email", None, "p@x")],
        unlinked=[Unlinked(DocRef("sheets", "t", "form_response", "x/1/2"), "override", "")],
        conflicts=[], docs={})
    path = tmp_path / "scratch.sqlite"
    sqlite3.connect(path).close()
    spill = Spill(path)
    overridden = Overridden(p, spill)
    assert overridden("forms/a/r1") and overridden("sheets/t/x/1/2")
    assert not overridden("sheets/s/x/1/2")
    spill.close()


# -- item 2: prorate false -----------------------------------------------------------------------


def _registry(tmp_path: Path, prorate: bool) -> Registry:
    folder = tmp_path / "measures"
    shutil.copytree(BUNDLED_MEASURES, folder, ignore=shutil.ignore_patterns("bindings"))
    phq9 = yaml.safe_load((folder / "phq9.v1.yaml").read_text())
    assert phq9["scoring"]["max_missing"] == 1
    phq9["scoring"]["prorate"] = prorate
    (folder / "phq9.v1.yaml").write_text(yaml.safe_dump(phq9, sort_keys=False))
    (folder / "bindings").mkdir()
    (folder / "bindings/t.yaml").write_text(yaml.safe_dump({"id": "t", "forms": [{"form_id": "F"}], "measures": [
        {"measure": "phq9", "items": {f"phq9_{n}": {"title": t} for n, t in enumerate(PHQ, 1)}}]}))
    reg = load(folder)
    assert not reg.problems, reg.problems
    return reg


def _phq9(reg: Registry, values: list[int | None]) -> dict[str, Any]:
    answers = [{"question_id": None, "question": t, "value": LABELS[v] if v is not None else None,
                "values": [LABELS[v]] if v is not None else []} for t, v in zip(PHQ, values, strict=True)]
    doc = {"kind": "form_response", "source": "forms", "account": "a", "source_id": "r1", "response_id": "r1",
           "form": {"id": "F", "title": "T"}, "submitted_at": "2026-03-04T10:00:00Z", "created_at": None,
           "respondent": {"email": "x@example.org", "name": None}, "answers": answers}
    (m,) = score_response(doc, reg)
    assert isinstance(m, dict)
    return m


def test_a_measure_that_does_not_prorate_is_not_flagged_prorated(tmp_path: Path) -> None:
    reg = _registry(tmp_path, prorate=False)
    m = _phq9(reg, [3, 3, 3, 3, 0, 0, 0, 0, None])  # 8 answered, summing 12
    assert m["value"] == 12, "the plain sum of the answered items (prorated would be 14)"
    assert PRORATED not in m["flags"] and m["flags"] == ["phq9_9_unanswered", PARTIAL_SUM]  # item 9 blank
    assert m["band"] == "moderate"
    complete = _phq9(reg, [3, 3, 3, 3, 0, 0, 0, 0, 0])
    assert complete["value"] == 12 and complete["flags"] == []


def test_a_prorating_measure_keeps_its_flag(tmp_path: Path) -> None:
    reg = _registry(tmp_path, prorate=True)
    m = _phq9(reg, [3, 3, 3, 3, 0, 0, 0, 0, None])
    assert m["value"] == 14 and m["flags"] == ["phq9_9_unanswered", PRORATED]
    measure = reg.measures[("phq9", 1)]
    assert total(measure, m["items"]) == 14
