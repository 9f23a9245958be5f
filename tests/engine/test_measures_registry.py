"""The measure registry's checks, a new measure added as YAML only, and `lorchestra validate`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from engine.measures.chart import render
from engine.measures.registry import BUNDLED_MEASURES, load
from engine.measures.score import score_response
from tests.helpers import clean_env, demo_extractor, run_cli, write_config

K6 = {
    "id": "k6", "version": 1, "name": "Kessler Psychological Distress Scale (6 items)",
    "code": {"system": "urn:test", "code": "K6-TOTAL", "display": "K6 total"},
    "items": [{"id": f"k6_{n}", "text": f"item {n}"} for n in range(1, 7)],
    "options": [{"value": v, "label": lab} for v, lab in enumerate(
        ["None of the time", "A little of the time", "Some of the time", "Most of the time",
         "All of the time"])],
    "scoring": {"max_missing": 0},
    "bands": [{"name": "low", "min": 0, "max": 12}, {"name": "high", "min": 13, "max": 24}],
}


def folder(tmp_path: Path) -> Path:
    out = tmp_path / "measures"
    shutil.copytree(BUNDLED_MEASURES, out)
    return out


def write(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_new_measure_is_yaml_only(tmp_path: Path) -> None:
    f = folder(tmp_path)
    write(f / "k6.v1.yaml", K6)
    write(f / "bindings" / "k6-form.yaml", {
        "id": "k6-form", "forms": [{"form_title": "Distress"}],
        "measures": [{"measure": "k6", "items": {f"k6_{n}": {"title": f"Q{n}"} for n in range(1, 7)}}]})
    reg = load(f)
    assert reg.problems == [] and ("k6", 1) in reg.measures
    answers = [{"question_id": None, "question": f"Q{n}", "value": v, "values": [v]}
               for n, v in enumerate(["Most of the time"] * 5 + ["All of the time"], 1)]
    doc = {"source": "s", "account": "a", "source_id": "x", "form": {"id": None, "title": "Distress"},
           "submitted_at": "2026-01-02T03:04:05Z", "answers": answers}
    (m,) = score_response(doc, reg)
    assert isinstance(m, dict) and (m["measure"], m["value"], m["band"], m["code"]) == ("k6", 19, "high", "K6-TOTAL")
    # the chart names the measure's own code system, never a LOINC it is not
    text = render("Ann", [{**m, "effective_at": "2026-01-02T03:04:05Z"}], reg)
    assert "## Kessler Psychological Distress Scale (6 items) (k6 v1, urn:test K6-TOTAL)" in text
    assert "LOINC" not in text


def test_broken_definitions_are_reported_not_loaded(tmp_path: Path) -> None:
    f = folder(tmp_path)
    gap = {**K6, "bands": [{"name": "low", "min": 0, "max": 11}, {"name": "high", "min": 13, "max": 24}]}
    write(f / "k6.v1.yaml", gap)
    twice = {**K6, "id": "kx", "options": K6["options"][:4] + [
        {"value": 4, "label": "All of the time", "aliases": ["none of the time"]}]}
    twice["items"] = [{"id": f"kx_{n}", "text": "t"} for n in range(1, 7)]
    write(f / "kx.v1.yaml", twice)
    misnamed = {**K6, "id": "ky", "items": [{"id": f"ky_{n + 1}", "text": "t"} for n in range(1, 7)]}
    write(f / "ky.v1.yaml", misnamed)
    write(f / "wrongname.yaml", {**K6, "id": "kz", "items": [{"id": f"kz_{n}", "text": "t"} for n in range(1, 7)]})
    (f / "bad.v1.yaml").write_text("id: [unclosed\n")
    write(f / "bindings" / "broken.yaml", {
        "id": "broken", "forms": [{"form_id": "F"}],
        "measures": [{"measure": "phq9", "items": {"phq9_1": {"title": "A"}, "phq9_2": {"title": "A"},
                                                  "phq9_10": {"title": "B"}}},
                     {"measure": "nope", "items": {}}]})
    write(f / "bindings" / "both.yaml", {"id": "both", "forms": [{"form_id": "F"}], "measures": [
        {"measure": "gad7", "items": {"gad7_1": {"title": "A", "question_id": "q"}}}]})
    reg = load(f)
    text = "\n".join(reg.problems)
    assert ("k6", 1) not in reg.measures and "bands must cover 0-24" in text
    assert not [w for w in ("Value error", "Input should", "Extra inputs", "Field required") if w in text], text
    assert "names two options" in text
    assert "must be named ky_1" in text
    assert "must be named kz.v1.yaml" in text
    assert "bad.v1.yaml: cannot read" in text
    assert "phq9_2 and phq9_1 are bound to the same question" in text
    assert "'phq9_10' is not an item" in text and "item 'phq9_9' is not bound" in text
    assert "measure nope v1 is not in the registry" in text
    assert "give exactly one of question_id and title" in text
    assert {b.id for b in reg.bindings} == {"demo-intake", "demo-follow-up"}


def test_validate_checks_measures_and_bindings(tmp_path: Path) -> None:
    f = folder(tmp_path)
    cfg = write_config(tmp_path, [demo_extractor("dv", tap="dataverse")],
                       clients={"sources": ["dataverse"], "measures": str(f)})
    env = clean_env()
    ok = run_cli("validate", "--config", str(cfg), "--skip-permissions", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "phq9 v1: 9 items, total 0-27, 5 bands, code 44261-6" in ok.stdout
    assert "binding demo-intake" in ok.stdout
    write(f / "bindings" / "bad.yaml", {"id": "bad", "forms": [{"form_id": "F"}],
                                        "measures": [{"measure": "gad7", "version": 2, "items": {}}]})
    bad = run_cli("validate", "--config", str(cfg), "--skip-permissions", env=env)
    assert bad.returncode == 2
    assert "measure gad7 v2 is not in the registry" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_a_measures_folder_that_is_missing_or_empty_is_a_problem(tmp_path: Path) -> None:
    """A typo in clients.measures loads nothing: that is a problem (the project task then
    fails MEASURES_INVALID), not an empty registry that takes every score out of the charts."""
    assert any("does not exist" in p for p in load(tmp_path / "no-such-folder").problems)
    (tmp_path / "empty").mkdir()
    assert any("no measure file" in p for p in load(tmp_path / "empty").problems)
    no_bindings = tmp_path / "no-bindings"
    shutil.copytree(BUNDLED_MEASURES, no_bindings, ignore=shutil.ignore_patterns("bindings"))
    assert any("bindings folder does not exist" in p for p in load(no_bindings).problems)
    assert load(BUNDLED_MEASURES).problems == []


def test_validate_fails_a_measures_folder_the_run_would_refuse(tmp_path: Path) -> None:
    """validate said "all checks passed" (a warning) for a missing clients.measures folder,
    and every run then failed its project task with MEASURES_INVALID."""
    for name, make in (("missing", False), ("empty", True)):
        f = tmp_path / name
        if make:
            f.mkdir()
        (tmp_path / f"cfg-{name}").mkdir()
        cfg = write_config(tmp_path / f"cfg-{name}", [demo_extractor("dv", tap="dataverse")],
                           clients={"sources": ["dataverse"], "measures": str(f)})
        res = run_cli("validate", "--config", str(cfg), "--skip-permissions", env=clean_env())
        assert res.returncode == 2, res.stdout + res.stderr
        assert "all checks passed" not in res.stdout
        assert ("does not exist" if name == "missing" else "no measure file") in res.stdout


def test_two_bindings_of_one_form_are_a_problem_not_a_silent_loss(tmp_path: Path) -> None:
    """A copied binding file with a new id passed validate; at run time every response of the
    form was BINDING_AMBIGUOUS: no score, and no item-9 flag, in any chart."""
    f = tmp_path / "measures"
    shutil.copytree(BUNDLED_MEASURES, f)
    text = (f / "bindings" / "demo-intake.yaml").read_text()
    (f / "bindings" / "demo-intake-copy.yaml").write_text(text.replace("id: demo-intake", "id: demo-intake-copy"))
    problems = load(f).problems
    assert any("selects the same form as binding" in p and "demo-intake-copy" in p and "'demo-intake'" in p
               and "form_id 1FAIpQLSdemoIntake" in p for p in problems), problems
    (f / "bindings" / "demo-intake-copy.yaml").write_text(
        text.replace("id: demo-intake", "id: other-account").replace(
            "  - {form_id: 1FAIpQLSdemoIntake}\n", "  - {form_id: 1FAIpQLSdemoIntake, account: clinic-b}\n").replace(
            '  - {form_id: "1IntakeDemoLinkedResponses000000000000000000/1650287441"}\n', ""))
    assert any("selects the same form" in p for p in load(f).problems)  # the intake selector has no account
    (f / "bindings" / "demo-intake-copy.yaml").write_text(
        text.replace("id: demo-intake", "id: other-account").replace(
            "  - {form_id: 1FAIpQLSdemoIntake}\n", "  - {form_id: 1FAIpQLSdemoIntake, account: clinic-b}\n").replace(
            '  - {form_id: "1IntakeDemoLinkedResponses000000000000000000/1650287441"}\n', ""))
    (f / "bindings" / "demo-intake.yaml").write_text(text.replace(
        "  - {form_id: 1FAIpQLSdemoIntake}\n", "  - {form_id: 1FAIpQLSdemoIntake, source: forms}\n"))
    assert load(f).problems == []  # {id, account: clinic-b} and {id, source: forms} may never meet
    assert load(BUNDLED_MEASURES).problems == []
