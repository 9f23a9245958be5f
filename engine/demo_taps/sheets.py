"""Demo Google Sheets tap, shaped like singer-io/tap-google-sheets.

One stream per sheet title (``Clients``, ``Session_Log``). A record's keys are the row-1
headers plus ``__sdc_spreadsheet_id``, ``__sdc_sheet_id`` and ``__sdc_row`` (the primary key;
data starts at row 2). Values are FORMATTED_VALUE strings (``$150.00``, ``TRUE``); rows are
ragged because the API drops trailing empty cells, while empty cells in the middle come back
as ``""``. Each sheet is a full load: RECORDs carry ``version`` and the sheet ends with an
ACTIVATE_VERSION message.
"""

from __future__ import annotations

from typing import Any

from engine.demo_taps import canary, texts
from engine.demo_taps.common import iso_date, mix64, split_counts, timeline, token
from engine.demo_taps.people import GMAIL_CLIENT, NAME_TWIN_OF, PHONE_ONLY, People, gmail_variant
from engine.demo_taps.spec import (
    Record,
    StreamPlan,
    TapContext,
    TapPlan,
    integer,
    make_plan,
    stream_schema,
    string,
)

CLIENT_HEADERS = ("Name", "DOB", "Phone", "Email", "Diagnosis", "Notes")
SESSION_HEADERS = ("Date", "Client", "Minutes", "Fee", "Paid", "Notes")
WEIGHTS = (40, 60)
FEES = ((30, "$95.00"), (45, "$150.00"), (53, "$175.00"), (60, "$190.00"), (50, "$160.00"))
SESSION_NOTES = (
    "sliding scale", "paid by card", "insurance pending", "late cancel fee waived",
    "telehealth", "check bounced - follow up", "copay only",
)


def _schema(headers: tuple[str, ...]) -> Record:
    columns: dict[str, Any] = {
        "__sdc_spreadsheet_id": string(), "__sdc_sheet_id": integer(), "__sdc_row": integer(),
    }
    columns.update({h: string() for h in headers})
    return stream_schema(columns)


def _ragged(values: list[str], h: int) -> list[str]:
    """Drop trailing empty cells, and sometimes a filled trailing cell, like the API."""
    cut = len(values) - (h % 4 == 0) - (h % 16 == 0)
    values = values[:cut]
    while values and values[-1] == "":
        values.pop()
    return values


class Spreadsheet:
    """One spreadsheet with a client list and a session log."""

    def __init__(self, ctx: TapContext, n_clients: int, n_sessions: int) -> None:
        self.people = People(ctx.seed)
        self.spreadsheet_id = "1" + token(ctx.key("spreadsheet"), 43)
        self.session_sheet_id = 100_000_000 + ctx.key("sheet-gid") % 1_900_000_000
        self.key = ctx.key("rows")
        self.n_clients = n_clients
        self.start, self.step = timeline(ctx.key("log-time"), n_sessions)
        self.step = max(self.step, 1)

    def _row(self, sheet_id: int, i: int, headers: tuple[str, ...], values: list[str]) -> Record:
        record: Record = {
            "__sdc_spreadsheet_id": self.spreadsheet_id,
            "__sdc_sheet_id": sheet_id,
            "__sdc_row": i + 2,
        }
        record.update(zip(headers, values, strict=False))
        return record

    def client(self, i: int) -> Record:
        """``Clients`` row ``i + 2``."""
        h = mix64(self.key ^ i)
        p = self.people.get(i)
        if i == 0:
            diagnosis, notes = canary.CANARY_NOTE, canary.CANARY_SENTENCE
        else:
            diagnosis = texts.DIAGNOSES[(h >> 8) % len(texts.DIAGNOSES)]
            notes = texts.TOPICS[(h >> 12) % len(texts.TOPICS)] if (h >> 16) % 3 else ""
        email = "" if i and (h >> 24) % 10 == 0 else p.email
        phone = p.phone((h >> 20) % 4)
        if i == GMAIL_CLIENT:
            email = gmail_variant(p, 2)
        elif i == PHONE_ONLY:
            email = ""
        elif i in NAME_TWIN_OF or i in NAME_TWIN_OF.values():
            email = phone = ""  # only the name and birth date tell the twins apart
        values = [p.full, p.birth_date, phone, email, diagnosis, notes]
        if i:
            values = _ragged(values, h >> 28)
        return self._row(0, i, CLIENT_HEADERS, values)

    def session_person(self, k: int) -> int:
        """The client of ``Session_Log`` row ``k + 2`` (written there by name only)."""
        return 0 if k == 0 else mix64(self.key ^ ~k) % max(self.n_clients, 1)

    def session(self, k: int) -> Record:
        """``Session_Log`` row ``k + 2``."""
        h = mix64(self.key ^ ~k)
        j = self.session_person(k)
        minutes, fee = FEES[(h >> 8) % len(FEES)]
        paid = "FALSE" if (h >> 12) % 6 == 0 else "TRUE"
        note = SESSION_NOTES[(h >> 16) % len(SESSION_NOTES)] if (h >> 20) % 3 == 0 else ""
        values = [
            iso_date(self.start + k * self.step),
            self.people.get(j).full,
            str(minutes),
            fee,
            paid,
            f"{canary.CANARY_NOTE} follow-up" if k == 0 else note,
        ]
        if k:
            values = _ragged(values, h >> 24)
        return self._row(self.session_sheet_id, k, SESSION_HEADERS, values)


def plan(ctx: TapContext) -> TapPlan:
    """The Sheets tap: ``Clients`` (40%) then ``Session_Log`` (60%), each a full load."""
    n_clients, n_sessions = split_counts(ctx.records, WEIGHTS)
    sheet = Spreadsheet(ctx, n_clients, n_sessions)
    version = 1_700_000_000_000 + ctx.key("version") % 100_000_000_000
    streams = []
    for name, headers, count, make in (
        ("Clients", CLIENT_HEADERS, n_clients, sheet.client),
        ("Session_Log", SESSION_HEADERS, n_sessions, sheet.session),
    ):
        streams.append(StreamPlan(
            name=name, schema=_schema(headers), key_properties=["__sdc_row"], count=count,
            make=make, text_field="Notes", message_extra={"version": version},
            trailer=[{"type": "ACTIVATE_VERSION", "stream": name, "version": version}],
        ))
    return make_plan(ctx, streams)
