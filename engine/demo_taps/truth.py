"""Ground truth of the demo taps: which synthetic client each record is about.

The client-linking tests compare the project stage's links with this. For every record a
demo tap emits, :func:`truth` gives its canonical ``(kind, source_id)`` and the clients it
is about, each with how the record names them:

* ``key``: by something a rule may use (an e-mail address, a phone, name plus birth date);
* ``ref``: by the id of another record (a session's client, an invoice's customer);
* ``shared``: only by an address a whole family shares (a conflict: it must link no one);
* ``name_only``: only by a name (the rules never link on a name alone).

A record about no client (a vendor's mail, a staff-only thread, the EAP customer and its
invoices) has no entry in ``persons``. Records are a pure function of their index, so this
re-derives them without running a tap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.demo_taps import dataverse, forms, gmail, msgraph, quickbooks, sheets
from engine.demo_taps.common import split_counts
from engine.demo_taps.mail import MailSource, owner_party
from engine.demo_taps.people import FAMILY_OF
from engine.demo_taps.spec import Record, TapContext

KIND = {("dataverse", "contacts"): "contact", ("dataverse", "cr123_sessions"): "clinical_session",
        ("sheets", "Clients"): "contact", ("sheets", "Session_Log"): "clinical_session",
        ("quickbooks", "customers"): "contact", ("quickbooks", "invoices"): "invoice",
        ("quickbooks", "payments"): "payment", ("gmail", "messages"): "email",
        ("msgraph", "messages"): "email", ("forms", "responses"): "form_response",
        ("formsheets", forms.SHEET_STREAM): "form_response"}
"""The canonical kind of each demo stream (as the bundled transforms map them)."""

SHARED = set(FAMILY_OF) | set(FAMILY_OF.values())


@dataclass(frozen=True)
class Truth:
    """One record: its canonical identity and the clients it is about."""

    stream: str
    kind: str
    source_id: str
    persons: dict[int, str]


def _source_id(tap: str, record: Record, key: str) -> str:
    if tap in ("sheets", "formsheets"):
        return f"{record['__sdc_spreadsheet_id']}/{record['__sdc_sheet_id']}/{record['__sdc_row']}"
    return str(record[key])


def _qbo_customer(record: Record, person: int | None) -> str:
    phones = any(k in record for k in ("PrimaryPhone", "Mobile"))
    if phones or ("PrimaryEmailAddr" in record and person not in SHARED):
        return "key"
    return "shared" if "PrimaryEmailAddr" in record else "name_only"


def _persons(tap: str, ctx: TapContext) -> dict[str, object]:
    """Per stream: a function of the record index (and record) giving the persons."""
    if tap == "dataverse":
        n_contacts, n_sessions = split_counts(ctx.records, dataverse.WEIGHTS)
        practice = dataverse.Practice(ctx, n_contacts)
        sessions = dataverse.Sessions(ctx, practice, n_sessions)
        return {"contacts": lambda i, r: {i: "key"},
                "cr123_sessions": lambda i, r: {sessions.person(i): "ref"}}
    if tap == "sheets":
        n_clients, n_sessions = split_counts(ctx.records, sheets.WEIGHTS)
        sheet = sheets.Spreadsheet(ctx, n_clients, n_sessions)
        return {"Clients": lambda i, r: {i: "key"},
                "Session_Log": lambda i, r: {sheet.session_person(i): "name_only"}}
    if tap in ("forms", "formsheets"):
        responses = forms.Responses(ctx)
        _form, rows = forms.sheet_rows(ctx, responses)

        def respondent(i: int) -> dict[int, str]:
            j = forms.person(responses, i)
            return {j: "shared" if j in SHARED else "key"}
        return {"responses": lambda i, r: respondent(i),
                forms.SHEET_STREAM: lambda i, r: respondent(rows[i])}
    if tap == "quickbooks":
        company = quickbooks.Company(ctx, split_counts(ctx.records, quickbooks.WEIGHTS))
        basis = {c: _qbo_customer(company.customer(c), company.person(c))
                 for c in range(company.n_customers)}

        def of(c: int, how: str) -> dict[int, str]:
            p = company.person(c)
            return {} if p is None else {p: how if basis.get(c) == "key" else basis.get(c, how)}
        return {"customers": lambda i, r: of(i, "key"),
                "invoices": lambda i, r: of(company.invoice_customer(i), "ref"),
                "payments": lambda i, r: of(company.payment_customer(i), "ref")}
    source = MailSource(ctx, owner_party(ctx))
    return {"messages": lambda i, r: {p: "shared" if p in SHARED else "key"
                                      for p in source.at(i)[0].persons}}


def truth(tap: str, account: str, seed: int, records: int) -> Iterator[Truth]:
    """Every record of one demo extractor with the clients it is about."""
    ctx = TapContext(tap=tap, account=account, seed=seed, records=records)
    plan = {"dataverse": dataverse.plan, "sheets": sheets.plan, "quickbooks": quickbooks.plan,
            "gmail": gmail.plan, "msgraph": msgraph.plan, "forms": forms.plan,
            "formsheets": forms.sheet_plan}[tap](ctx)
    persons = _persons(tap, ctx)
    for stream in plan.streams:
        who = persons[stream.name]
        for i in range(stream.count):
            record = stream.make(i)
            sid = _source_id(tap, record, stream.key_properties[0])
            yield Truth(stream.name, KIND[(tap, stream.name)], sid, who(i, record))  # type: ignore[operator]
