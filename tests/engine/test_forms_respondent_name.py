"""The bundled forms transforms read ``respondent.name`` from the form's name question.

docs/measures.md, step 3: a form that asks for the name of the person it is about gives that
answer as ``respondent.name``, so a parent's address with a child's name is ``disagree``
instead of the child's scores in the parent's chart. Both shapes (a Forms API response with
its form, a linked sheet's row) must read the same titles the same way, for forms the project
has never seen: a title is a name question about the form's subject, or it is not read (a
parent's, a therapist's, an emergency contact's name never is).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.canon.compiled import CompiledTransform
from engine.canon.registry import Registry

REGISTRY = Registry.load()
API = "forms/gforms_response_to_form_response_v1"
SHEET = "forms/sheets_form_response_to_form_response_v1"
_compiled: dict[str, CompiledTransform] = {}

SUBJECT_TITLES = [
    "Name", "Full name", "Your name", "Your full name", "Legal name", "Full legal name",
    "Client name", "Client's name", "Clients name", "Client’s name:", "Patient name", "Patient's full name",
    "PATIENT'S FULL NAME (first and last) *", "Child's name", "Your child's full name",
    "Name of client/patient/child", "Name of the patient", "Client/patient name",
    "First and last name", "first & last name", "Name:", "Name?", "  Name * ", "Name (first and last)",
    "What is your name?", "Please enter your full name", "Patient name (if different from the person filling this form)",
    "Name (maximum 40 characters)", "Child's name (not the parent's)",
]
OTHER_TITLES = [
    "Parent/guardian name", "Parent's name", "Guardian name", "Mother's name", "Spouse's name",
    "Emergency contact name", "Therapist's name", "Referring doctor name", "Name of your GP", "Your GP's name",
    "Clinician name", "Referrer's name", "Name of parent/guardian", "Name of person completing this form",
    "Name of therapist", "Name of school", "Full name (parent/guardian)", "Name (emergency contact)",
    "Your name (parent or guardian)", "Doctor's name (if any)", "Preferred name", "Company name", "Username",
    "Name of medication", "Middle name", "Name [First]", "Parent first name", "Emergency contact last name",
    "Name (Dr.)", "Name (your GP)", "Name (mum or dad)", "Little interest or pleasure in doing things",
]


def apply(tid: str, questions: list[tuple[str, Any]]) -> dict[str, Any]:
    """Run transform ``tid`` on one response whose questions are (title, answer) in form order."""
    t = REGISTRY.transforms[tid]
    if tid not in _compiled:
        _compiled[tid] = CompiledTransform(REGISTRY, t)
    if tid == API:
        qids = [f"q{n}" for n in range(len(questions))]
        record: dict[str, Any] = {
            "formId": "F", "responseId": "R", "createTime": "2026-01-02T03:04:05Z", "respondentEmail": "a@x.example",
            "answers": {q: {"questionId": q, "textAnswers": {"answers": [{"value": a}]}}
                        for q, (_t, a) in zip(qids, questions, strict=True) if a is not None},
            "form": {"formId": "F", "info": {"title": "T"},
                     "items": [{"title": title, "questionItem": {"question": {"questionId": q}}}
                               for q, (title, _a) in zip(qids, questions, strict=True)]}}
    else:
        record = {"__sdc_spreadsheet_id": "S", "__sdc_sheet_id": 1, "__sdc_row": 2,
                  "Timestamp": "1/2/2026 3:04:05", "Email Address": "a@x.example", **dict(questions)}
    return _compiled[tid].apply(record, {"source": t.source, "account": "test"})


def name(tid: str, questions: list[tuple[str, Any]]) -> str | None:
    return apply(tid, questions)["respondent"]["name"]


@pytest.mark.parametrize("tid", [API, SHEET])
@pytest.mark.parametrize("title", SUBJECT_TITLES)
def test_a_name_question_about_the_subject_is_read(tid: str, title: str) -> None:
    assert name(tid, [("Feeling down, depressed, or hopeless", "Several days"), (title, "  Ben Reed ")]) == "Ben Reed"


@pytest.mark.parametrize("tid", [API, SHEET])
@pytest.mark.parametrize("title", OTHER_TITLES)
def test_another_persons_name_is_never_read(tid: str, title: str) -> None:
    assert name(tid, [(title, "Ann Reed"), ("Feeling down, depressed, or hopeless", "Several days")]) is None


@pytest.mark.parametrize("tid", [API, SHEET])
@pytest.mark.parametrize(("questions", "expected"), [
    ([("First name", "Ben"), ("Last name", "Reed")], "Ben Reed"),
    ([("Last name:", " Reed"), ("First name:", "Ben ")], "Ben Reed"),
    ([("Given name", "Ben"), ("Family name", "Reed")], "Ben Reed"),
    ([("Forename", "Ben"), ("Surname", "Reed")], "Ben Reed"),
    ([("First name", "Ben"), ("Middle name", "Tom"), ("Last name", "Reed")], "Ben Reed"),
    ([("First name", "Ben")], "Ben"),
    ([("Patient's first name", "Ben"), ("Patient's surname", "Reed")], "Ben Reed"),
    # a subject's name before a plain one: "Your name" is the parent filling it in
    ([("Your name", "Ann Reed"), ("Child's name", "Ben Reed")], "Ben Reed"),
    ([("Your name", "Ann Reed"), ("Child's first name", "Ben"), ("Child's last name", "Reed")], "Ben Reed"),
    ([("First name", "Ann"), ("Last name", "Reed"), ("Patient name", "Ben Reed")], "Ben Reed"),
    # a full-name question before a pair of the same tier
    ([("First name", "B."), ("Last name", "R."), ("Full name", "Ben Reed")], "Ben Reed"),
    # the first answered in form order
    ([("Name", "Ben Reed"), ("Emergency contact name", "Ann Reed"), ("Full name", "Ann Reed")], "Ben Reed"),
    ([("Patient's full name (first and last)", "Ben Reed"), ("Parent/guardian name", "Ann Reed")], "Ben Reed"),
    # blank answers do not count
    ([("Your full name", "   ")], None),
    ([("Your full name", "")], None),
    ([("Your full name", None)], None),
    ([("Full name", " "), ("First name", "Ben"), ("Last name", "Reed")], "Ben Reed"),
    ([("Parent/guardian name", "Ann Reed"), ("Name (emergency contact)", "Gus Reed")], None),
    ([], None),
])
def test_which_answer_is_the_name(tid: str, questions: list[tuple[str, Any]], expected: str | None) -> None:
    assert name(tid, questions) == expected


@pytest.mark.parametrize("tid", [API, SHEET])
def test_the_answers_are_unchanged(tid: str) -> None:
    """The name is read, not taken out: the answers keep the name question as it was."""
    out = apply(tid, [("Your full name", " Ben Reed "), ("Trouble relaxing", "Several days")])
    assert [(a["question"], a["value"]) for a in out["answers"]] == [
        ("Your full name", " Ben Reed " if tid == API else "Ben Reed"), ("Trouble relaxing", "Several days")]


FAST = re.search(r"\$lookup\(\{(.*?)\}, \$t\)", REGISTRY.transforms[API].expression, re.S)


@pytest.mark.parametrize("title", re.findall(r'"([^"]+)": "', FAST.group(1)) if FAST else [])
def test_the_lookup_of_common_titles_agrees_with_the_regex(title: str) -> None:
    """The commonest titles skip the regex; with a trailing ':' they take it, to the same end."""
    for others in ([], [("Full name", "Ann Reed")], [("Patient name:", "Cy Reed")],
                   [("First name:", "Ann"), ("Last name:", "Reed")], [("Child's first name", "Cy")]):
        for tid in (API, SHEET):
            assert name(tid, [(title, "Ben Reed"), *others]) == name(tid, [(title + ":", "Ben Reed"), *others])
            assert name(tid, [*others, (title, "Ben Reed")]) == name(tid, [*others, (title + " :", "Ben Reed")])


def test_the_lookup_is_there() -> None:
    assert FAST, "the lookup of common titles moved: update FAST"


def _name_block(tid: str) -> str:
    text = REGISTRY.transforms[tid].expression
    found = re.search(r"\n  /\* respondent\.name:.*?\n  \)\};\n", text, re.S)
    assert found, f"{tid} has no respondent.name block"
    return found.group(0)


def test_both_transforms_share_one_name_block() -> None:
    """The block is copied in both transforms (JSONata has no include): they must not drift."""
    assert _name_block(API) == _name_block(SHEET)
