"""Scoring against the bundled PHQ-9 and GAD-7 definitions: totals, bands, proration, flags.

Responses are canonical ``form_response`` documents built here; the registry is the real
YAML under config/measures plus bindings written to a temporary registry folder, so every
rule (aliases, unknown answers, missing items, a question bound twice) is exercised through
the same code the project stage runs.
"""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.measures.registry import BUNDLED_MEASURES, Registry, load
from engine.measures.score import PRORATED, NotScored, score_response

LABELS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
PHQ = [f"phq q{n}" for n in range(1, 10)]
GAD = [f"gad q{n}" for n in range(1, 8)]


def registry(tmp_path: Path, bindings: dict[str, Any] | None = None) -> Registry:
    """The bundled measures plus the given bindings (default: one form, both measures by title)."""
    folder = tmp_path / "measures"
    shutil.copytree(BUNDLED_MEASURES, folder, ignore=shutil.ignore_patterns("bindings"))
    (folder / "bindings").mkdir()
    if bindings is None:
        bindings = {"test": {"id": "test", "forms": [{"form_id": "F1"}], "measures": [
            {"measure": "phq9", "items": {f"phq9_{n}": {"title": t} for n, t in enumerate(PHQ, 1)}},
            {"measure": "gad7", "items": {f"gad7_{n}": {"question_id": f"g{n}"} for n in range(1, 8)}},
        ]}}
    for name, b in bindings.items():
        (folder / "bindings" / f"{name}.yaml").write_text(yaml.safe_dump(b))
    return load(folder)


def response(phq: list[Any] | None = None, gad: list[Any] | None = None, form: str = "F1",
             submitted: str | None = "2026-03-04T10:00:00Z") -> dict[str, Any]:
    """A form_response; values are option indexes (labels), strings (as given) or None."""
    answers: list[dict[str, Any]] = []

    def add(qid: str | None, title: str, v: Any) -> None:
        text = LABELS[v] if isinstance(v, int) else v
        answers.append({"question_id": qid, "question": title, "value": text,
                        "values": [text] if text is not None else []})
    for t, v in zip(PHQ, phq or [0] * 9, strict=True):
        add(None, t, v)
    for n, (t, v) in enumerate(zip(GAD, gad or [0] * 7, strict=True), 1):
        add(f"g{n}", t, v)
    return {"kind": "form_response", "source": "forms", "account": "a", "source_id": "r1",
            "response_id": "r1", "form": {"id": form, "title": "Check-in"},
            "submitted_at": submitted, "created_at": None,
            "respondent": {"email": "x@example.org", "name": None}, "answers": answers}


def scored(reg: Registry, doc: dict[str, Any], measure: str) -> dict[str, Any]:
    out = [o for o in score_response(doc, reg) if isinstance(o, dict) and o["measure"] == measure]
    assert len(out) == 1, score_response(doc, reg)
    return out[0]


def not_scored(reg: Registry, doc: dict[str, Any], measure: str | None = None) -> NotScored:
    out = [o for o in score_response(doc, reg) if isinstance(o, NotScored) and o.measure == measure]
    assert len(out) == 1, score_response(doc, reg)
    return out[0]


def values_for(total: int, n: int) -> list[int]:
    """n item values (0-3) summing to total, item n (the last) kept at 0 when possible."""
    out = [0] * n
    left = total
    for i in range(n):
        out[i] = min(3, left)
        left -= out[i]
    assert left == 0
    return out


def test_bundled_registry_loads_clean() -> None:
    reg = load()
    assert reg.problems == []
    phq, gad = reg.measures[("phq9", 1)], reg.measures[("gad7", 1)]
    assert (phq.code.code, gad.code.code) == ("44261-6", "70274-6")
    assert phq.total_range() == (0, 27) and gad.total_range() == (0, 21)
    assert [b.name for b in phq.bands] == ["minimal", "mild", "moderate", "moderately severe", "severe"]


def test_known_answer_sets_score_exactly(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    doc = response(phq=[1, 2, 3, 0, 1, 2, 3, 0, 1], gad=[3, 3, 2, 2, 1, 1, 0])
    phq, gad = scored(reg, doc, "phq9"), scored(reg, doc, "gad7")
    assert (phq["value"], phq["band"], phq["code"]) == (13, "moderate", "44261-6")
    assert (gad["value"], gad["band"], gad["code"]) == (12, "moderate", "70274-6")
    assert phq["items"] == {f"phq9_{n}": v for n, v in enumerate([1, 2, 3, 0, 1, 2, 3, 0, 1], 1)}
    assert phq["flags"] == ["phq9_9_positive"] and gad["flags"] == []
    assert set(phq) == {"kind", "source", "account", "source_id", "measure", "measure_version",
                        "code", "value", "band", "items", "flags", "effective_at",
                        "response_id", "binding"}
    assert (phq["measure_version"], phq["effective_at"], phq["response_id"], phq["binding"]) == (
        1, "2026-03-04T10:00:00Z", "r1", "test")
    all_max = scored(reg, response(phq=[3] * 9, gad=[3] * 7), "phq9")
    assert (all_max["value"], all_max["band"]) == (27, "severe")


@pytest.mark.parametrize(("total", "band"), [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "moderately severe"), (19, "moderately severe"), (20, "severe"), (27, "severe")])
def test_phq9_band_boundaries(tmp_path: Path, total: int, band: str) -> None:
    m = scored(registry(tmp_path), response(phq=values_for(total, 9)), "phq9")
    assert (m["value"], m["band"]) == (total, band)


@pytest.mark.parametrize(("total", "band"), [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "severe"), (21, "severe")])
def test_gad7_band_boundaries(tmp_path: Path, total: int, band: str) -> None:
    m = scored(registry(tmp_path), response(gad=values_for(total, 7)), "gad7")
    assert (m["value"], m["band"]) == (total, band)


def test_proration_at_the_allowance(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    # 8 answered items summing 10: 10 * 9 / 8 = 11.25 -> 11.
    m = scored(reg, response(phq=[2, 2, 2, 2, 1, 1, None, 0, 0]), "phq9")
    assert (m["value"], m["band"], m["flags"]) == (11, "moderate", [PRORATED])
    assert m["items"]["phq9_7"] is None
    # 8 answered summing 12: 12 * 9 / 8 = 13.5 rounds half up to 14.
    m = scored(reg, response(phq=[3, 3, 3, 3, None, 0, 0, 0, 0]), "phq9")
    assert m["value"] == 14
    # GAD-7: 6 answered summing 7: 7 * 7 / 6 = 8.1666 -> 8; summing 3: 3.5 -> 4 (half up).
    assert scored(reg, response(gad=[2, 2, 2, 1, 0, 0, None]), "gad7")["value"] == 8
    assert scored(reg, response(gad=[1, 1, 1, None, 0, 0, 0]), "gad7")["value"] == 4
    # A blank answer ("") counts as missing, like an absent one.
    assert scored(reg, response(gad=[1, 1, 1, "  ", 0, 0, 0]), "gad7")["value"] == 4


def test_past_the_allowance_is_not_scored(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    doc = response(phq=[3, 3, 3, 3, 3, 3, 3, None, None])
    assert not_scored(reg, doc, "phq9").reason == "TOO_MANY_MISSING"
    assert scored(reg, doc, "gad7")["value"] == 0  # the other measure still scores
    doc["answers"] = [a for a in doc["answers"] if a["question"] not in PHQ[:2]]  # questions absent
    r = not_scored(reg, doc, "phq9")  # not on the form: not known, never "unanswered"
    assert (r.reason, r.item, r.flags) == ("QUESTION_MISSING", "phq9_1", ("phq9_9_unanswered",))


def test_critical_item_flag(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    assert scored(reg, response(phq=[0] * 8 + [0]), "phq9")["flags"] == []
    for v in (1, 2, 3):
        m = scored(reg, response(phq=[0] * 8 + [v]), "phq9")
        assert m["flags"] == ["phq9_9_positive"] and m["band"] == "minimal"
    m = scored(reg, response(phq=[0, 0, 0, 0, 0, 0, 0, None, 1]), "phq9")
    assert m["flags"] == ["phq9_9_positive", PRORATED]


def test_aliases_and_label_spelling(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    m = scored(reg, response(phq=["3", "2", "1", "0", " nearly  EVERY day ", "more than half of the days",
                                  "several days", "NOT AT ALL", 0]), "phq9")
    assert m["value"] == 3 + 2 + 1 + 0 + 3 + 2 + 1 + 0


@pytest.mark.parametrize("answer", ["Sometimes", "4", "Nearly every da", "3.0"])
def test_unknown_answer_is_not_scored_with_reason(tmp_path: Path, answer: str) -> None:
    reg = registry(tmp_path)
    doc = response(phq=[0, 0, 0, 0, answer, 0, 0, 0, 0])
    r = not_scored(reg, doc, "phq9")
    assert (r.reason, r.item, r.binding) == ("UNKNOWN_ANSWER", "phq9_5", "test")


def test_several_answers_to_one_item_are_not_guessed(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    doc = response()
    doc["answers"][0]["values"] = ["Not at all", "Several days"]
    assert not_scored(reg, doc, "phq9").reason == "UNKNOWN_ANSWER"


def test_form_without_binding_and_no_time(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    assert [o.reason for o in score_response(response(form="OTHER"), reg)
            if isinstance(o, NotScored)] == ["NO_BINDING"]
    assert not_scored(reg, response(submitted=None), "phq9").reason == "NO_TIME"


def test_question_bound_twice_and_ambiguous(tmp_path: Path) -> None:
    items: dict[str, Any] = {f"phq9_{n}": {"title": t} for n, t in enumerate(PHQ, 1)}
    items["phq9_2"] = {"question_id": "q-one"}
    b = {"id": "twice", "forms": [{"form_title": "Check-in"}],
         "measures": [{"measure": "phq9", "items": items}]}
    reg = registry(tmp_path, {"twice": b})
    doc = response()
    doc["answers"][0]["question_id"] = "q-one"  # phq9_1 by title and phq9_2 by id: one answer
    assert not_scored(reg, doc, "phq9").reason == "QUESTION_BOUND_TWICE"
    doc = response()
    doc["answers"][3]["question"] = PHQ[2]  # two questions with one title
    assert not_scored(reg, doc, "phq9").reason == "QUESTION_AMBIGUOUS"


def test_two_bindings_for_one_form_are_not_guessed(tmp_path: Path) -> None:
    one = {"id": "one", "forms": [{"form_id": "F1"}], "measures": [
        {"measure": "gad7", "items": {f"gad7_{n}": {"question_id": f"g{n}"} for n in range(1, 8)}}]}
    two = {**one, "id": "two", "forms": [{"form_title": "Check-in"}]}
    reg = registry(tmp_path, {"one": one, "two": two})
    assert [o.reason for o in score_response(response(), reg)] == ["BINDING_AMBIGUOUS"]


def test_scoring_is_deterministic(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    doc = response(phq=[1, 2, None, 3, 0, 1, 2, 3, 1], gad=["2", 1, 0, 3, 2, 1, 0])
    assert score_response(doc, reg) == score_response(doc, registry(tmp_path / "again"))


def test_titles_match_without_case_punctuation_or_spacing(tmp_path: Path) -> None:
    """A form's copy of the official wording differs by a comma, a curly quote or a space: the
    item is still found (not counted unanswered, prorated, with its item-9 flag lost)."""
    official = "Thoughts that you would be better off dead, or of hurting yourself in some way"
    titles = PHQ[:8] + [official]
    reg = registry(tmp_path, {"test": {"id": "test", "forms": [{"form_id": "F1"}], "measures": [
        {"measure": "phq9", "items": {f"phq9_{n}": {"title": t} for n, t in enumerate(titles, 1)}}]}})
    doc = response(phq=[1] * 8 + [3])
    doc["answers"][8]["question"] = "THOUGHTS that you would be better off dead or of hurting  yourself in some way\u2019"
    got = scored(reg, doc, "phq9")
    assert got["value"] == 11 and got["items"]["phq9_9"] == 3
    assert PRORATED not in got["flags"] and "phq9_9_positive" in got["flags"]
    doc["answers"][8]["question"] = "Thoughts that you would be better off alive"
    r = not_scored(reg, doc, "phq9")  # another question: not found, and not prorated as if blank
    assert (r.reason, r.item, r.flags) == ("QUESTION_MISSING", "phq9_9", ("phq9_9_question_missing",))


def test_two_titles_bound_that_differ_only_by_punctuation_are_one_question(tmp_path: Path) -> None:
    titles = PHQ[:7] + ["Same question, again", "same question again"]
    reg = registry(tmp_path, {"test": {"id": "test", "forms": [{"form_id": "F1"}], "measures": [
        {"measure": "phq9", "items": {f"phq9_{n}": {"title": t} for n, t in enumerate(titles, 1)}}]}})
    assert any("bound to the same question" in p for p in reg.problems), reg.problems


def test_a_phq9_built_as_a_forms_grid_is_scored_from_the_api_and_the_sheet(tmp_path: Path) -> None:
    """A Google Forms grid (questionGroupItem) is the usual way to build the PHQ-9: each row is
    a question titled "Grid [Row]" (the linked sheet's column header), found by the item's own
    wording; the bundled API transform used to leave grid rows without text (TOO_MANY_MISSING)."""
    from engine.canon.compiled import CompiledTransform
    from engine.canon.registry import Registry as Transforms

    reg = registry(tmp_path)
    grid = "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
    record = {
        "formId": "F1", "responseId": "r1", "createTime": "2026-03-04T10:00:00Z",
        "lastSubmittedTime": "2026-03-04T10:00:00Z", "respondentEmail": "x@example.org",
        "form": {"formId": "F1", "info": {"title": "Check-in"}, "items": [
            {"title": grid, "questionGroupItem": {"questions": [
                {"questionId": f"p{n}", "rowQuestion": {"title": t}} for n, t in enumerate(PHQ, 1)]}},
        ]},
        "answers": {f"p{n}": {"questionId": f"p{n}", "textAnswers": {"answers": [{"value": LABELS[2]}]}}
                    for n in range(1, 10)},
    }
    transforms = Transforms.load(None, None)
    doc = CompiledTransform(transforms, transforms.get("forms/gforms_response_to_form_response_v1")).apply(
        record, {"source": "forms", "account": "a"})
    assert [a["question"] for a in doc["answers"]] == [f"{grid} [{t}]" for t in PHQ]
    assert scored(reg, doc, "phq9")["value"] == 18
    sheet = {"__sdc_spreadsheet_id": "F1", "__sdc_sheet_id": 0, "__sdc_row": 2, "Timestamp": "3/4/2026 10:00:00",
             "Email Address": "x@example.org", **{f"{grid} [{t}]": LABELS[1] for t in PHQ}}
    doc2 = CompiledTransform(transforms, transforms.get("forms/sheets_form_response_to_form_response_v1")).apply(
        sheet, {"source": "sheets", "account": "s"})
    doc2["form"]["id"] = "F1"
    assert scored(reg, doc2, "phq9")["value"] == 9
    # a header with a space or a newline after "]", and an answer typed decomposed (NFD), are the same
    ragged = {**sheet, **{f"{grid} [{t}] \n": LABELS[1] for t in PHQ}}
    for t in PHQ:
        del ragged[f"{grid} [{t}]"]
    ragged[f"{grid} [{PHQ[0]}] \n"] = unicodedata.normalize("NFD", LABELS[1].upper())
    doc3 = CompiledTransform(transforms, transforms.get("forms/sheets_form_response_to_form_response_v1")).apply(
        ragged, {"source": "sheets", "account": "s"})
    doc3["form"]["id"] = "F1"
    assert scored(reg, doc3, "phq9")["value"] == 9
    from engine.measures.registry import normalize_answer, normalize_title
    assert normalize_answer("Ma\u0301s de la mitad") == normalize_answer("Más de la mitad")
    assert normalize_title("¿Se sintio\u0301 mal?") == normalize_title("¿Se sintió mal?")


def test_a_response_that_cannot_be_scored_still_carries_its_critical_item(tmp_path: Path) -> None:
    """An unknown answer or too many blanks: no total, but item 9 answered "Nearly every day"
    is still said (the chart lists the response under "Not scored" with the flag)."""
    reg = registry(tmp_path)
    unknown = not_scored(reg, response(phq=["Sometimes", 0, 0, 0, 0, 0, 0, 0, 3]), "phq9")
    assert (unknown.reason, unknown.item, unknown.flags) == ("UNKNOWN_ANSWER", "phq9_1", ("phq9_9_positive",))
    assert unknown.effective_at == "2026-03-04T10:00:00Z"
    blanks = not_scored(reg, response(phq=[None, None, 0, 0, 0, 0, 0, 0, 2]), "phq9")
    assert (blanks.reason, blanks.flags) == ("TOO_MANY_MISSING", ("phq9_9_positive",))
    quiet = not_scored(reg, response(phq=[None, None, 0, 0, 0, 0, 0, 0, 0]), "phq9")
    assert quiet.flags == ()


def test_a_critical_item_with_any_positive_answer_is_flagged(tmp_path: Path) -> None:
    """Item 9 ticked twice ("Several days" and "Not at all") cannot be scored, and its flag was
    lost; "3 (Nearly every day)" names no option: the chart must say the answer is not known."""
    reg = registry(tmp_path)
    doc = response()
    doc["answers"][8]["values"] = ["Several days", "Not at all"]
    r = not_scored(reg, doc, "phq9")
    assert (r.reason, r.item, r.flags) == ("UNKNOWN_ANSWER", "phq9_9", ("phq9_9_positive",))
    doc["answers"][8]["values"] = ["Not at all", "not at all"]  # two answers, none positive
    assert not_scored(reg, doc, "phq9").flags == ()
    r = not_scored(reg, response(phq=[0] * 8 + ["3 (Nearly every day)"]), "phq9")
    assert (r.reason, r.item, r.flags) == ("UNKNOWN_ANSWER", "phq9_9", ("phq9_9_unreadable",))
    r = not_scored(reg, response(phq=["x"] + [0] * 7 + ["3 (Nearly every day)"]), "phq9")
    assert (r.reason, r.item, r.flags) == ("UNKNOWN_ANSWER", "phq9_1", ("phq9_9_unreadable",))
    r = not_scored(reg, response(phq=["x"] + [0] * 7 + [2]), "phq9")  # another item unknown first
    assert (r.item, r.flags) == ("phq9_1", ("phq9_9_positive",))


def test_a_critical_item_not_answered_or_not_found_says_so(tmp_path: Path) -> None:
    """A prorated PHQ-9 whose item 9 is blank, or whose item 9 question the binding does not
    find in the form (worded otherwise), looked complete: value 0, "minimal", flag `prorated`
    only. A blank item 9 is the documented proration, flagged `phq9_9_unanswered`; an item 9
    not on the form is not scored at all (`QUESTION_MISSING`, flag `phq9_9_question_missing`)."""
    reg = registry(tmp_path)
    m = scored(reg, response(phq=[0] * 8 + [None]), "phq9")
    assert m["flags"] == ["phq9_9_unanswered", PRORATED] and m["items"]["phq9_9"] is None
    doc = response()
    doc["answers"][8]["question"] = "Thoughts that you would be better off dead, or of hurting yourself"
    doc["answers"][8]["value"], doc["answers"][8]["values"] = "Nearly every day", ["Nearly every day"]
    r = not_scored(reg, doc, "phq9")
    assert (r.reason, r.item, r.flags) == ("QUESTION_MISSING", "phq9_9", ("phq9_9_question_missing",))
    assert "flags" in scored(reg, response(), "gad7") and scored(reg, response(), "gad7")["flags"] == []


def test_a_response_without_a_time_keeps_its_critical_flags(tmp_path: Path) -> None:
    """A sheet row whose Timestamp does not parse was one `NO_TIME` line without a measure or
    flags, so a positive item 9 vanished from the chart: now one line per measure, flagged."""
    reg = registry(tmp_path)
    out = score_response(response(phq=[0] * 8 + [3], submitted=None), reg)
    assert all(isinstance(o, NotScored) and o.reason == "NO_TIME" and o.effective_at is None for o in out)
    assert {o.measure: o.flags for o in out if isinstance(o, NotScored)} == {
        "phq9": ("phq9_9_positive",), "gad7": ()}
    bad = response(phq=[0] * 8 + [None], gad=["x"] * 7, submitted=None)
    assert {o.measure: o.flags for o in score_response(bad, reg) if isinstance(o, NotScored)} == {
        "phq9": ("phq9_9_unanswered",), "gad7": ()}


def test_a_response_that_gives_a_date_alone_is_measured_on_that_date(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    assert scored(reg, response(submitted="2026-03-04"), "phq9")["effective_at"] == "2026-03-04"
    assert scored(reg, response(submitted="2026-03-04T10:00:00.250Z"), "phq9")["effective_at"] == \
        "2026-03-04T10:00:00Z"
    doc = {**response(submitted=None), "created_at": "2026-03-05"}
    assert scored(reg, doc, "phq9")["effective_at"] == "2026-03-05"


def test_a_critical_item_beside_an_unreadable_answer_or_found_twice_keeps_its_flag(tmp_path: Path) -> None:
    """`["Not at all", "3 (Nearly every day)"]` read as 0 (no flag); a binding problem on item 9
    (two questions with its title) returned before item 9 was read."""
    reg = registry(tmp_path)
    doc = response()
    doc["answers"][8]["values"] = ["Not at all", "3 (Nearly every day)"]
    doc["answers"][0]["values"] = ["Sometimes"]  # item 1 unknown first: the line names item 1
    r = not_scored(reg, doc, "phq9")
    assert (r.reason, r.item, r.flags) == ("UNKNOWN_ANSWER", "phq9_1", ("phq9_9_unreadable",))
    doc = response(phq=[0] * 8 + [3])
    doc["answers"].append({**doc["answers"][8], "value": "Not at all", "values": ["Not at all"]})  # item 9 twice
    r = not_scored(reg, doc, "phq9")
    assert (r.reason, r.item, r.flags) == ("QUESTION_AMBIGUOUS", "phq9_9", ("phq9_9_positive",))
    doc = response(phq=[0] * 8 + [3])
    doc["answers"][3]["question"] = PHQ[2]  # items 3 and 4 ambiguous; item 9 still read
    r = not_scored(reg, doc, "phq9")
    assert (r.reason, r.flags) == ("QUESTION_AMBIGUOUS", ("phq9_9_positive",))


def test_an_item_bound_to_another_item_s_question_takes_no_answer(tmp_path: Path) -> None:
    """Item 9 bound to item 1's question (a binding mistake: QUESTION_BOUND_TWICE) read item 1's
    answer, and a 3 there raised a false `phq9_9_positive`; its own answer is not known."""
    items: dict[str, Any] = {f"phq9_{n}": {"title": t} for n, t in enumerate(PHQ, 1)}
    items["phq9_9"] = {"question_id": "q-nine"}  # the form gives item 1's question that id
    b = {"id": "twice", "forms": [{"form_title": "Check-in"}], "measures": [{"measure": "phq9", "items": items}]}
    reg = registry(tmp_path, {"twice": b})
    for first, ninth in ((3, 0), (0, 3)):
        doc = response(phq=[first] + [0] * 7 + [ninth])
        doc["answers"][0]["question_id"] = "q-nine"
        r = not_scored(reg, doc, "phq9")
        assert (r.reason, r.item, r.flags) == ("QUESTION_BOUND_TWICE", "phq9_9", ("phq9_9_unreadable",)), \
            (first, ninth)


def test_a_sheet_row_that_ends_before_its_last_questions_left_them_blank(tmp_path: Path) -> None:
    """A linked sheet's row drops its empty cells at the end: a patient who left item 9 (the
    sheet's last column) blank gave a row without that question, which read as a question not
    on the form (QUESTION_MISSING, and a critical 'answer not known'). Another row of the same
    sheet that has the column shows the sheet has it: the item is blank, prorated as the
    standard allows. A question no row has is still missing."""
    from engine.measures.score import Columns

    sheet = "1SheetAbc/0"
    reg = registry(tmp_path, {"s": {"id": "s", "forms": [{"form_id": sheet}], "measures": [
        {"measure": "phq9", "items": {f"phq9_{n}": {"title": t} for n, t in enumerate(PHQ, 1)}}]}})

    def row(values: list[int], day: str = "2026-03-04") -> dict[str, Any]:
        doc = response(phq=[*values, *[None] * (9 - len(values))], form=sheet, submitted=f"{day}T10:00:00Z")
        doc["answers"] = [a for a in doc["answers"][:len(values)]]  # the cells after the last one: gone
        return doc
    full, ragged = row([1] * 9), row([1] * 8)
    columns = Columns()
    for doc in (full, ragged):
        columns.learn(doc)
    got = [o for o in score_response(ragged, reg, columns) if isinstance(o, dict)]
    assert len(got) == 1 and got[0]["value"] == 9 and PRORATED in got[0]["flags"], got
    assert "phq9_9_unanswered" in got[0]["flags"]
    alone = score_response(ragged, reg, Columns())  # no row of the sheet has item 9's column
    assert [o.reason for o in alone if isinstance(o, NotScored)] == ["QUESTION_MISSING"], alone
    # item 9 added to a PHQ-8 form later: its column appeared with the rows after; the rows
    # before were never asked it (not a blank to prorate, and not 'not critical')
    before, added = row([1] * 8, "2026-01-05"), row([1] * 9, "2026-02-01")
    later = Columns()
    for doc in (before, added):
        later.learn(doc)
    assert [o.reason for o in score_response(before, reg, later) if isinstance(o, NotScored)] == ["QUESTION_MISSING"]
    api = response(phq=[1] * 8 + [None])  # a Forms API response lists every question itself
    api["answers"] = api["answers"][:8]
    assert [o.reason for o in score_response(api, registry(tmp_path / "api"), columns)
            if isinstance(o, NotScored) and o.measure == "phq9"] == ["QUESTION_MISSING"]


def test_a_form_declared_to_carry_no_measure_says_nothing(tmp_path: Path) -> None:
    """A consent form's responses were NO_BINDING every run, counted in MEASURES_NOT_SCORED
    (hiding real rejects there); `measures: []` says the form carries none. The key stays
    required: a binding file without it is a problem, never a silent 'no measure'."""
    reg = registry(tmp_path, {"consent": {"id": "consent", "forms": [{"form_id": "C1"}], "measures": []}})
    assert reg.problems == [] and score_response(response(form="C1"), reg) == []
    assert [o.reason for o in score_response(response(form="C2"), reg) if isinstance(o, NotScored)] == ["NO_BINDING"]
    missing = registry(tmp_path / "m", {"consent": {"id": "consent", "forms": [{"form_id": "C1"}]}})
    assert missing.problems and "measures" in " ".join(missing.problems)
    from engine.config import PipelineConfig
    from engine.measures.checks import check_measures
    from tests.helpers import demo_extractor

    cfg = PipelineConfig.model_validate({"workspace": str(tmp_path / "ws"), "extractors": [demo_extractor("g1")],
                                         "clients": {"sources": ["dataverse"], "measures": str(tmp_path / "measures")}})
    said = {c.subject: c.message for c in check_measures(cfg)}
    assert said["binding consent"] == "1 form(s): no measure (declared: measures: [])", said
