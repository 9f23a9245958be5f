"""A small practice run end to end for the name checks of the project stage (not a test module).

A Dataverse system of record, a Gmail mailbox, a linked sheet of the demo intake form, a
QuickBooks company and an intake sheet of contacts, each replayed by :data:`FILE_TAP`
through the bundled transforms and the real CLI (``lorchestra run``). :func:`outcome` reads
which client each document went to, or why none, from the index database.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from engine.demo_taps.forms import GAD7, NAME_TITLE, PHQ9
from tests.helpers import FILE_TAP, clean_env, run_cli

MAPPINGS = [
    {"source": "dataverse", "stream": "contacts", "transform": "clinical/dataverse_contact_to_contact_v1"},
    {"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"},
    {"source": "sheets", "stream": "Form_Responses_1", "transform": "forms/sheets_form_response_to_form_response_v1"},
    {"source": "sheets", "stream": "Clients", "transform": "ops/sheets_clients_to_contact_v1"},
    {"source": "quickbooks", "stream": "customers", "transform": "finance/qbo_customer_to_contact_v1"},
    {"source": "quickbooks", "stream": "invoices", "transform": "finance/qbo_invoice_to_invoice_v1"},
]
OWN = ["*@calmwaters.example", "dr.hale@gmail.com"]
SHEET = ("1IntakeDemoLinkedResponses000000000000000000", 1650287441)
"""The demo intake form's linked sheet: the bundled binding ``demo-intake`` scores its rows."""
TITLES = [NAME_TITLE, *PHQ9, *GAD7]


def contact(cid: str, first: str, last: str, *, email: str | None = None, phone: str | None = None,
            dob: str | None = None) -> dict[str, Any]:
    """A Dataverse contact (the system of record)."""
    return {"contactid": cid, "firstname": first, "lastname": last, "fullname": f"{first} {last}",
            "emailaddress1": email, "telephone1": phone, "birthdate": dob, "statecode": 0,
            "modifiedon": "2024-01-01T10:00:00Z"}


def mail(mid: str, frm: str, to: str, cc: str | None = None) -> dict[str, Any]:
    """A Gmail message (``Name <address>`` headers as written)."""
    hs = [{"name": "Date", "value": "Mon, 04 Mar 2024 10:00:00 -0800"},
          {"name": "Message-ID", "value": f"<{mid}@example>"}, {"name": "Subject", "value": f"message {mid}"},
          {"name": "From", "value": frm}, {"name": "To", "value": to}]
    if cc:
        hs.append({"name": "Cc", "value": cc})
    return {"id": mid, "threadId": mid, "labelIds": ["INBOX"], "internalDate": "1709575200000",
            "payload": {"mimeType": "text/plain", "headers": hs,
                        "body": {"size": 2, "data": base64.urlsafe_b64encode(b"hi").decode()}}}


def form_row(n: int, email: str, name: str, label: str = "Several days") -> dict[str, Any]:
    """A row of the intake form's linked sheet: the name question, then every PHQ-9 and GAD-7
    item answered ``label`` ("Nearly every day": item 9 positive)."""
    row: dict[str, Any] = {"__sdc_spreadsheet_id": SHEET[0], "__sdc_sheet_id": SHEET[1], "__sdc_row": n,
                           "Timestamp": f"3/{n}/2025 16:00:00", "Email Address": email}
    row.update(zip(TITLES, [name] + [label] * (len(TITLES) - 1), strict=True))
    return row


def customer(cid: str, name: str, email: str) -> dict[str, Any]:
    """A QuickBooks customer."""
    return {"Id": cid, "DisplayName": name, "PrimaryEmailAddr": {"Address": email}, "Active": True}


def invoice(iid: str, customer_id: str, name: str) -> dict[str, Any]:
    """A QuickBooks invoice of a customer."""
    return {"Id": iid, "DocNumber": f"INV-{iid}", "TxnDate": "2024-03-01", "CustomerRef": {"value": customer_id, "name": name},
            "Line": [], "TotalAmt": 150.0, "Balance": 150.0, "CurrencyRef": {"value": "USD"}}


def intake(n: int, name: str, dob: str, email: str = "", phone: str = "") -> dict[str, Any]:
    """A row of an intake sheet of contacts (name and birth date, maybe an address)."""
    return {"__sdc_spreadsheet_id": "1IntakeSheet", "__sdc_sheet_id": 0, "__sdc_row": n,
            "Name": name, "DOB": dob, "Phone": phone, "Email": email, "Notes": ""}


def _singer(path: Path, streams: dict[str, tuple[str, list[dict[str, Any]]]]) -> None:
    lines: list[dict[str, Any]] = []
    for stream, (key, records) in streams.items():
        lines.append({"type": "SCHEMA", "stream": stream, "schema": {"type": "object"}, "key_properties": [key]})
        lines += [{"type": "RECORD", "stream": stream, "record": r} for r in records]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def practice(tmp: Path, *, contacts: list[dict[str, Any]], mails: Sequence[dict[str, Any]] = (),
             forms: Sequence[dict[str, Any]] = (), customers: Sequence[dict[str, Any]] = (),
             invoices: Sequence[dict[str, Any]] = (), intakes: Sequence[dict[str, Any]] = (),
             overrides: dict[str, Any] | None = None) -> Path:
    """Write the taps' files and ``tmp/pipeline.yaml`` (only the sources given); its path."""
    (tmp / "filetap.py").write_text(FILE_TAP)
    files: list[tuple[str, str, str, str, dict[str, tuple[str, list[dict[str, Any]]]]]] = [
        ("crm", "clinical", "dataverse", "calm", {"contacts": ("contactid", contacts)})]
    if mails:
        files.append(("mail", "email", "gmail", "drhale", {"messages": ("id", list(mails))}))
    if forms:
        files.append(("checkin", "clinical", "sheets", "checkin", {"Form_Responses_1": ("__sdc_row", list(forms))}))
    if intakes:
        files.append(("intake", "ops", "sheets", "intake", {"Clients": ("__sdc_row", list(intakes))}))
    if customers or invoices:
        files.append(("books", "finance", "quickbooks", "books",
                      {"customers": ("Id", list(customers)), "invoices": ("Id", list(invoices))}))
    extractors = []
    for name, domain, source, account, streams in files:
        _singer(tmp / f"{name}.jsonl", streams)
        extractors.append({"name": name, "domain": domain, "source": source, "account": account, "kind": "singer",
                           "command": [sys.executable, str(tmp / "filetap.py"), str(tmp / f"{name}.jsonl")],
                           "timeout_s": 120})
    clients: dict[str, Any] = {"sources": ["dataverse"], "own_addresses": OWN, "phone_region": "US"}
    if overrides is not None:
        (tmp / "overrides.yaml").write_text(yaml.safe_dump({"version": 1, **overrides}, sort_keys=False))
        (tmp / "overrides.yaml").chmod(0o600)
        clients["overrides"] = "overrides.yaml"
    cfg = {"pipeline": {"name": tmp.name, "version": "1"}, "workspace": str(tmp / "ws"), "extractors": extractors,
           "stages": {"canonize": {"mappings": MAPPINGS}, "index": {"vectors": False}}, "clients": clients}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(cfg: Path) -> None:
    """``lorchestra run`` (every stage, project included); it must succeed."""
    res = run_cli("--config", str(cfg), "run", env=clean_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def outcome(ws: Path) -> dict[tuple[str, str], str]:
    """(kind, source id) -> the clients' names it is linked to (``"A; B"``), or ``"unlinked
    REASON: DETAIL"``."""
    out: dict[tuple[str, str], str] = {}
    with contextlib.closing(sqlite3.connect(ws / "vector-store" / "index.sqlite")) as con:
        for kind, eid, names in con.execute(
                "SELECT l.kind, l.entity_id, group_concat(c.name, '; ') FROM client_links l "
                "JOIN clients c USING (client_id) GROUP BY l.source, l.account, l.kind, l.entity_id"):
            out[(kind, eid)] = names
        for kind, eid, reason, detail in con.execute(
                "SELECT kind, entity_id, reason, detail FROM client_unlinked"):
            out[(kind, eid)] = f"unlinked {reason}: {detail}"
    return out


def client_ids(ws: Path) -> dict[str, str]:
    """Client name -> id (names unique in these tests)."""
    with contextlib.closing(sqlite3.connect(ws / "vector-store" / "index.sqlite")) as con:
        return {name: cid for cid, name in con.execute("SELECT client_id, name FROM clients")}
