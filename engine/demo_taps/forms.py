"""Demo Google Forms taps: questionnaire responses, from the Forms API and a linked sheet.

``forms`` emits the stream ``responses``: records shaped like the Forms API
``forms.responses.list`` (``formId``, ``responseId``, ``createTime``, ``lastSubmittedTime``,
``respondentEmail``, ``answers{questionId: {questionId, textAnswers{answers[{value}]}}}``),
each with the form it answers under ``form`` (``formId``, ``info.title``, ``items`` with
``questionItem.question.questionId`` and ``title``), since a response alone names questions
only by id. ``formsheets`` emits the same responses as rows of a form's linked sheet,
shaped like tap-google-sheets: each form links to its own spreadsheet (one account each; an
account whose name contains ``follow`` holds the follow-up form, any other the intake), whose
sheet ``Form Responses 1`` becomes the stream ``Form_Responses_1`` with the columns
``Timestamp``, ``Email Address`` and one per question title (``Timestamp`` as the sheet shows
it, ``M/D/YYYY H:MM:SS``, in UTC here).

Two forms: an intake (name, PHQ-9, GAD-7) answered once by each client, and a follow-up (PHQ-9,
GAD-7) every four weeks after, over several months, with severity drifting down. A few answers
use aliases (``"2"``), a few leave one item blank, and a few carry an answer no option names,
so the scoring has every case to handle. The forms are the same for every account and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.demo_taps.common import DAY, derive, iso_z, mix64, token
from engine.demo_taps.people import People
from engine.demo_taps.spec import (
    Record,
    StreamPlan,
    TapContext,
    TapPlan,
    array,
    integer,
    make_plan,
    obj,
    stream_schema,
    string,
)

PHQ9 = (
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself, or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed, or being so fidgety or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
)
GAD7 = (
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
)
LABELS = ("Not at all", "Several days", "More than half the days", "Nearly every day")
NAME_TITLE = "Your full name"
START = 1_748_736_000  # 2025-06-01T00:00:00Z
CYCLE = 28 * DAY
SHEET_STREAM = "Form_Responses_1"
"""The stream of a linked sheet (its tab `Form Responses 1`)."""


@dataclass(frozen=True)
class Form:
    """One Google Form: id, title, sheet id of its linked sheet, questions (id, title)."""

    form_id: str
    title: str
    spreadsheet_id: str
    """The linked spreadsheet (fixed, so the demo binding can name it)."""
    sheet_id: int
    questions: tuple[tuple[str, str], ...]

    def resource(self) -> Record:
        """The Forms API form resource (only what the responses need)."""
        return {"formId": self.form_id, "info": {"title": self.title, "documentTitle": self.title},
                "items": [{"itemId": f"i{qid}", "title": title,
                           "questionItem": {"question": {"questionId": qid, "required": True}}}
                          for qid, title in self.questions]}


def _questions(prefix: str, titles: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((f"{derive('forms-demo', prefix, n) % 0xFFFFFFFF:08x}", t)
                 for n, t in enumerate(titles))


INTAKE = Form("1FAIpQLSdemoIntake", "Intake questionnaire",
              "1IntakeDemoLinkedResponses000000000000000000", 1_650_287_441,
              _questions("name", (NAME_TITLE,)) + _questions("phq", PHQ9) + _questions("gad", GAD7))
FOLLOW_UP = Form("1FAIpQLSdemoFollowUp", "Follow-up check-in",
                 "1FollowUpDemoLinkedResponses0000000000000000", 1_101_482_306,
                 _questions("phq", PHQ9) + _questions("gad", GAD7))


@dataclass(frozen=True)
class Response:
    """One submitted response: which form, who, when and each question's answer (or None)."""

    form: Form
    response_id: str
    email: str
    name: str
    submitted: int
    answers: tuple[str | None, ...]


class Responses:
    """Response ``i``: client ``i % k`` at visit ``i // k`` (0 the intake, then follow-ups).

    ``k`` (at most 10) stays within the Dataverse tap's contacts for the same record count, so
    every respondent is a client; client 0 is the canary patient, as in every demo tap.
    """

    def __init__(self, ctx: TapContext) -> None:
        self.people = People(ctx.seed)
        self.key = ctx.seed_key("forms")
        self.k = max(1, min(10, ctx.records * 4 // 10))

    def get(self, i: int) -> Response:
        j, visit = person(self, i), i // self.k
        p = self.people.get(j)
        form = INTAKE if visit == 0 else FOLLOW_UP
        h = mix64(self.key ^ i)
        base = (mix64(self.key ^ ~j) % 30) / 10  # 0.0 .. 2.9: the client's starting level
        level = max(0.0, base - 0.25 * visit)
        answers: list[str | None] = []
        for n, (_qid, title) in enumerate(form.questions):
            if title == NAME_TITLE:
                answers.append(p.full)
                continue
            hn = mix64(h ^ (n + 1))
            value = max(0, min(3, int(level + (hn % 100) / 100 - 0.2)))
            if title == PHQ9[8]:
                value = min(value, 1 if base > 2 and visit < 2 else 0)
            answers.append(str(value) if hn % 11 == 0 else LABELS[value])
        if h % 13 == 5:
            answers[-3] = None  # one item left blank: prorated
        if h % 37 == 7:
            answers[-2] = "Sometimes"  # names no option: not scored, reason UNKNOWN_ANSWER
        submitted = START + visit * CYCLE + (j * 3 % 7) * DAY + 32_400 + h % 28_800
        rid = "ACYDBNj" + token(h, 20)
        return Response(form, rid, p.email, p.full, submitted, tuple(answers))


def _api_record(r: Response) -> Record:
    answers: dict[str, Any] = {}
    for (qid, _title), value in zip(r.form.questions, r.answers, strict=True):
        if value is not None:
            answers[qid] = {"questionId": qid, "textAnswers": {"answers": [{"value": value}]}}
    stamp = iso_z(r.submitted).replace("Z", f".{r.submitted % 1000:03d}Z")
    return {"formId": r.form.form_id, "responseId": r.response_id, "createTime": stamp,
            "lastSubmittedTime": stamp, "respondentEmail": r.email, "answers": answers,
            "form": r.form.resource()}


def sheet_timestamp(epoch: int) -> str:
    """``M/D/YYYY H:MM:SS``, as a linked sheet's Timestamp column shows it."""
    iso = iso_z(epoch)
    y, m, d = iso[:4], int(iso[5:7]), int(iso[8:10])
    hh, rest = int(iso[11:13]), iso[13:19]
    return f"{m}/{d}/{y} {hh}{rest}"


def _schema_api() -> Record:
    answer = obj(questionId=string(), textAnswers=obj(answers=array(obj(value=string()))))
    item = obj(itemId=string(), title=string(),
               questionItem=obj(question=obj(questionId=string(), required={"type": ["boolean", "null"]})))
    return stream_schema({
        "formId": string(), "responseId": string(False), "createTime": string(fmt="date-time"),
        "lastSubmittedTime": string(fmt="date-time"), "respondentEmail": string(),
        "answers": {"type": ["object", "null"], "additionalProperties": answer},
        "form": obj(formId=string(), info=obj(title=string(), documentTitle=string()),
                    items=array(item)),
    })


def plan(ctx: TapContext) -> TapPlan:
    """The Forms API tap: one ``responses`` stream."""
    responses = Responses(ctx)
    return make_plan(ctx, [StreamPlan(
        name="responses", schema=_schema_api(), key_properties=["responseId"],
        count=ctx.records, make=lambda i: _api_record(responses.get(i)),
        text_field="respondentEmail")])


def sheet_rows(ctx: TapContext, responses: Responses) -> tuple[Form, list[int]]:
    """The account's form and the response index of each of its sheet's rows."""
    form = FOLLOW_UP if "follow" in ctx.account.lower() else INTAKE
    return form, [i for i in range(ctx.records) if responses.get(i).form is form]


def person(responses: Responses, i: int) -> int:
    """The client who sent response ``i``."""
    return i % responses.k


def sheet_plan(ctx: TapContext) -> TapPlan:
    """The linked-sheet tap: the account's form, its responses in submission order."""
    responses = Responses(ctx)
    form, rows = sheet_rows(ctx, responses)
    version = 1_700_000_000_000 + ctx.key("version") % 100_000_000_000
    headers = ("Timestamp", "Email Address", *(t for _q, t in form.questions))

    def make(n: int) -> Record:
        r = responses.get(rows[n])
        values = [sheet_timestamp(r.submitted), r.email, *(a or "" for a in r.answers)]
        while values and values[-1] == "":
            values.pop()  # the API drops trailing empty cells
        record: Record = {"__sdc_spreadsheet_id": form.spreadsheet_id,
                          "__sdc_sheet_id": form.sheet_id, "__sdc_row": n + 2}
        record.update(zip(headers, values, strict=False))
        return record

    columns: dict[str, Any] = {"__sdc_spreadsheet_id": string(), "__sdc_sheet_id": integer(),
                               "__sdc_row": integer()}
    columns.update({h: string() for h in headers})
    return make_plan(ctx, [StreamPlan(
        name=SHEET_STREAM, schema=stream_schema(columns), key_properties=["__sdc_row"],
        count=len(rows), make=make, text_field="Email Address",
        message_extra={"version": version},
        trailer=[{"type": "ACTIVATE_VERSION", "stream": SHEET_STREAM, "version": version}])])
