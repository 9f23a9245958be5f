"""Chart folders (engine/clients/charts.py, folders.py) and the client tables, on real files.

Folder names are safe and distinct; a folder is replaced whole, unchanged files keep their
inode; a writer killed at any step (simulated by failing the step) leaves the old or the new
folder once recovered; the tables rebuild themselves when their schema version changes.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.clients import charts, folders, tables
from engine.clients.model import Card, Client, DocFacts, DocRef, Link, Projection


def test_safe_names_strip_separators_and_control_characters() -> None:
    assert charts.safe_name("Doe, Jane") == "Doe, Jane"
    assert charts.safe_name("a/b\\c:d*e?f\"g<h>i|j") == "a-b-c-d-e-f-g-h-i-j"
    assert charts.safe_name("new\nline\ttab\x00nul\u200bzw") == "new line tab nul zw"
    assert charts.safe_name("..") == "Unnamed" and charts.safe_name("  ") == "Unnamed"
    assert charts.safe_name(".hidden") == "hidden"
    assert len(charts.safe_name("x" * 500)) == charts.MAX_NAME
    assert charts.safe_name("Zoë") == "Zoë"


def client(cid: str, name: str = "Doe, Jane") -> Client:
    family, given = name.split(", ")
    return Client(cid, DocRef("dv", "a", "contact", cid), Card(f"{given} {family}", given, family, None))


def test_folder_names_are_told_apart_by_id_and_ids_grow_on_collision() -> None:
    clients = {c.client_id: c for c in (client("aaaaaaaa11111111"), client("aaaaaaaa22222222"),
                                        client("bbbbbbbb33333333"))}
    charts.assign_folders(clients)
    names = sorted(c.folder for c in clients.values())
    assert names == ["Doe, Jane (aaaaaaaa11)", "Doe, Jane (aaaaaaaa22)", "Doe, Jane (bbbbbbbb)"], \
        "only the two ids that share 8 digits grow: the other folder keeps its name"
    assert all(charts.is_chart_folder(n) for n in names)
    assert not charts.is_chart_folder("notes") and not charts.is_chart_folder(".staging-1 (abcdef12)")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_replace_keeps_unchanged_files_and_swaps_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "clients"
    root.mkdir(mode=0o700)
    assert folders.replace_folder(root, "X (01234567)", {"a.md": b"1", "b.md": b"2"})
    ino = (root / "X (01234567)" / "a.md").stat().st_ino
    assert not folders.replace_folder(root, "X (01234567)", {"a.md": b"1", "b.md": b"2"})
    assert folders.replace_folder(root, "X (01234567)", {"a.md": b"1", "b.md": b"3"})
    assert (root / "X (01234567)" / "a.md").stat().st_ino == ino, "unchanged file not rewritten"
    assert tree(root) == {"X (01234567)/a.md": b"1", "X (01234567)/b.md": b"3"}
    assert oct((root / "X (01234567)" / "b.md").stat().st_mode & 0o777) == "0o600"
    folders.remove_folder(root, "X (01234567)")
    assert list(root.iterdir()) == []


class Boom(Exception):
    pass


@pytest.mark.parametrize("exchange", [True, False])
@pytest.mark.parametrize("step", range(6))
def test_a_writer_killed_at_any_step_leaves_old_or_new(tmp_path: Path, monkeypatch: Any,
                                                      step: int, exchange: bool) -> None:
    root = tmp_path / "clients"
    root.mkdir(mode=0o700)
    old = {"a.md": b"old a", "b.md": b"same"}
    new = {"a.md": b"new a", "b.md": b"same", "c.md": b"new c"}
    folders.replace_folder(root, "X (01234567)", old)
    calls = [0]
    real_rename, real_link, real_exchange = os.rename, os.link, folders._exchange

    def counted(fn: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            calls[0] += 1
            if calls[0] == step + 1:
                raise Boom()
            return fn(*args, **kw)
        return wrapper

    monkeypatch.setattr(os, "rename", counted(real_rename))
    monkeypatch.setattr(os, "link", counted(real_link))
    monkeypatch.setattr(folders, "_exchange", counted(real_exchange) if exchange else counted(lambda a, b: False))
    try:
        folders.replace_folder(root, "X (01234567)", new)
    except Boom:
        pass
    monkeypatch.undo()
    folders.recover(root)
    got = {k.split("/", 1)[1]: v for k, v in tree(root).items()}
    assert got in (old, new), got
    assert [p.name for p in root.iterdir()] == ["X (01234567)"]


def projection() -> Projection:
    c = client("0123456789abcdef")
    c.folder = "Doe, Jane (01234567)"
    c.keys = {"email:jane@example.org"}
    ref = DocRef("gmail", "box", "email", "m1")
    facts = DocFacts(ref, "2024-01-02T03:04:05Z", "Hello | there")
    return Projection({c.client_id: c}, [Link(c.client_id, ref, "email", "in", "email:jane@example.org")],
                      [], [], {ref: facts, c.home: DocFacts(c.home, None, "Jane Doe")})


def test_charts_render_deterministically_and_keep_projected_at(tmp_path: Path) -> None:
    root = tmp_path / "clients"
    p = projection()
    s1 = charts.write_charts(root, p, "2026-01-01T00:00:00Z")
    first = tree(root)
    s2 = charts.write_charts(root, p, "2026-02-02T00:00:00Z")
    assert (s1.written, s2.written, s2.unchanged) == (1, 0, 1) and tree(root) == first
    text = first["Doe, Jane (01234567)/timeline.md"].decode()
    assert "| 2024-01-02 03:04 | email | in | Hello \\| there | gmail/box | `gmail:box:email:m1` |" in text
    assert b'projected_at: "2026-01-01T00:00:00Z"' in first["Doe, Jane (01234567)/client.md"]
    p.clients["0123456789abcdef"].keys.add("phone:+12125550100")
    charts.write_charts(root, p, "2026-03-03T00:00:00Z")
    assert b'projected_at: "2026-03-03T00:00:00Z"' in (root / "Doe, Jane (01234567)" / "client.md").read_bytes()
    (root / "Gone, Client (fedcba98)").mkdir()
    (root / "my notes").mkdir()
    assert charts.write_charts(root, p, "2026-03-03T00:00:00Z").removed == 1
    assert sorted(x.name for x in root.iterdir()) == ["Doe, Jane (01234567)", "my notes"]


def test_tables_carry_a_schema_version_and_rebuild_another(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "i.sqlite", isolation_level=None)
    p = projection()
    p.clients["0123456789abcdef"].folder = "f"
    tables.write_projection(con, p, "sha", "now")
    assert tables.read_meta(con)["schema_version"] == str(tables.CLIENTS_SCHEMA_VERSION)
    assert tables.counts(con) == {"clients": 1, "links": 1, "linked_documents": 1, "conflicts": 0,
                                  "unlinked": 0, "measures_scored": 0, "measures_not_scored": 0,
                                  "measures_duplicates": 0, "measures_critical_unlinked": 0, "moves_open": 0,
                                  "charts_complete": 0}  # written, charts not yet
    con.execute("UPDATE clients_meta SET value = '0' WHERE key = 'schema_version'")
    con.execute("ALTER TABLE clients ADD COLUMN stale TEXT")
    assert tables.counts(con) is None
    tables.write_projection(con, p, "sha", "now")
    cols = [r[1] for r in con.execute("PRAGMA table_info(clients)")]
    assert "stale" not in cols and tables.counts(con) is not None


def _timeline_with(tmp_path: Path, ref: DocRef, title: str) -> str:
    """Jane's timeline.md with one more e-mail, ``ref`` titled ``title``."""
    root = tmp_path / "clients"
    p = projection()
    p.docs[ref] = DocFacts(ref, "2024-01-03T03:04:05Z", title)
    p.links.append(Link("0123456789abcdef", ref, "email", "in", "email:jane@example.org"))
    charts.write_charts(root, p, "2026-01-01T00:00:00Z")
    return (root / "Doe, Jane (01234567)" / "timeline.md").read_text()


def test_chart_text_from_records_stays_text(tmp_path: Path) -> None:
    """Anyone who e-mails the practice chooses a subject: raw HTML (a read beacon), a link or an
    image must reach the chart as text, escaped, and a reference with a backtick stays one
    code span. Rendered with the markdown-it the project installs, no tag or link appears."""
    from markdown_it import MarkdownIt

    evil = '<img src="https://tracker.example/p.gif"> [Pay now](https://evil.example/pay) ![i](x.png) `x`'
    text = _timeline_with(tmp_path, DocRef("gmail", "box", "email", "m`2``<b>x</b>"), evil)
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in html and "<a " not in html and "tracker.example/p.gif" in html
    assert "<code>gmail:box:email:m`2``&lt;b&gt;x&lt;/b&gt;</code>" in html and "<b>" not in html
    assert "<code>gmail:box:email:m1</code>" in html


def test_bare_addresses_in_chart_text_are_no_live_links(tmp_path: Path) -> None:
    """GitHub-flavoured viewers make `http://...` and `www....` live without any markup (its
    autolink extension): rendered with markdown-it's linkify (the same rule), none is a link,
    and the text still reads as it was."""
    from markdown_it import MarkdownIt

    subject = "Pay here http://evil.example/pay or WWW.evil.example | ftp://x.example/f"
    text = _timeline_with(tmp_path, DocRef("gmail", "box", "email", "m9"), subject)
    md = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "linkify"])
    assert "<a " in md.render("see http://evil.example/pay"), "the renderer does autolink"
    html = md.render(text)
    assert "<a " not in html, html
    assert "Pay here http://evil.example/pay or WWW.evil.example | ftp://x.example/f" in html


def test_measures_md_headings_carry_no_control_character() -> None:
    from engine.measures.chart import render
    from engine.measures.registry import load
    text = render("Ctl\x1b[31mRed\x07Bell Zed\x00Nul\x08", [], load())
    first = text.splitlines()[0]
    assert first == "# Measures: Ctl \\[31mRed Bell Zed Nul", first


def test_billing_totals_never_add_two_currencies(tmp_path: Path) -> None:
    root = tmp_path / "clients"
    p = projection()
    cid = "0123456789abcdef"
    for sid, total, balance, cur in (("6", "100.00", "100.00", "EUR"), ("4", "0.10", "0.10", "USD"),
                                     ("5", "0.20", "0.20", "USD"), ("7", "0.005", "0.005", "USD")):
        _invoice(p, cid, sid, total, balance, cur)
    charts.write_charts(root, p, "2026-01-01T00:00:00Z")
    text = (root / "Doe, Jane (01234567)" / "billing.md").read_text()
    assert "- **Invoiced:** 100.00 EUR, 0.31 USD" in text, text  # 0.305: halves up, not to even
    assert "| 7 | 0.01 | 0.01 | USD | open |" in text, text  # each amount as the totals are: 0.005 -> 0.01
    assert "- **Open balance:** 100.00 EUR, 0.31 USD" in text
    assert "- **Paid:** 0.00" in text
    ref = DocRef("quickbooks", "co", "invoice", "8")  # a 27-digit amount the schema allows
    p.docs[ref] = DocFacts(ref, "2024-02-08T00:00:00Z", "Invoice 8",
                           columns=("8", "100000000000000000000000000.00", "0", "GBP", "paid", ""))
    p.links.append(Link(cid, ref, "source_ref", None, "customer"))
    charts.write_charts(root, p, "2026-01-02T00:00:00Z")
    text = (root / "Doe, Jane (01234567)" / "billing.md").read_text()
    assert "100000000000000000000000000.00 GBP" in text
    assert "Unapplied" not in text
    for sid, total, unapplied in (("p1", "50.00", "20.00"), ("p2", "30.00", "0"), ("p3", "10.00", "5.005")):
        ref = DocRef("quickbooks", "co", "payment", sid)  # columns: reference, total, currency, unapplied
        p.docs[ref] = DocFacts(ref, "2024-03-01T00:00:00Z", f"Payment {sid}", columns=(sid, total, "USD", unapplied))
        p.links.append(Link(cid, ref, "source_ref", None, "customer"))
    charts.write_charts(root, p, "2026-01-03T00:00:00Z")
    text = (root / "Doe, Jane (01234567)" / "billing.md").read_text()
    assert "- **Paid:** 90.00 USD" in text and "- **Open balance:** 100.00 EUR, 0.00 GBP, 0.31 USD" in text, text
    assert "- **Unapplied payments (a credit, not taken off the open balance above):** 25.01 USD" in text


def _invoice(p: Any, cid: str, sid: str, total: str, balance: str, cur: str) -> None:
    """An open invoice of the day ``2024-02-0<sid>`` linked to ``cid`` by its customer reference;
    the invoice rule's columns: number, total, balance, currency, status, due."""
    ref = DocRef("quickbooks", "co", "invoice", sid)
    p.docs[ref] = DocFacts(ref, "2024-02-0" + sid + "T00:00:00Z", f"Invoice {sid}",
                           columns=(sid, total, balance, cur, "open", ""))
    p.links.append(Link(cid, ref, "source_ref", None, "customer"))


def test_one_currency_in_two_cases_is_one_total_and_no_currency_is_said(tmp_path: Path) -> None:
    """"usd" beside "USD" gave two amounts, and an invoice without a currency a bare number
    next to the others."""
    root = tmp_path / "clients"
    p = projection()
    cid = "0123456789abcdef"
    for sid, total, cur in (("1", "10.00", "USD"), ("2", "5.00", "usd"), ("3", "0.02", "")):
        _invoice(p, cid, sid, total, total, cur)
    charts.write_charts(root, p, "2026-01-01T00:00:00Z")
    text = (root / "Doe, Jane (01234567)" / "billing.md").read_text()
    assert "- **Invoiced:** 0.02 (no currency on the record), 15.00 USD" in text, text


def test_bidi_controls_in_a_record_never_reorder_a_chart_line() -> None:
    from engine.clients.markdown import inline

    assert inline("Re: \u202eevil\u202c | x \u2066y\u2069") == "Re:  evil  | x  y "
    assert inline("שלום עליכם") == "שלום עליכם" and inline("👩\u200d👧") == "👩\u200d👧"


def test_the_practice_s_own_files_in_a_chart_folder_are_kept(tmp_path: Path) -> None:
    """A note saved beside a chart survives the folder being rewritten; when the client's
    folder goes (renamed, merged, gone), the note stays where it was, without the chart."""
    root = tmp_path / "clients"
    p = projection()
    charts.write_charts(root, p, "2026-01-01T00:00:00Z")
    folder = root / "Doe, Jane (01234567)"
    (folder / "notes.md").write_text("my own notes")
    (folder / "notes.md").chmod(0o600)
    p.clients["0123456789abcdef"].keys.add("phone:+12125550100")  # the chart changes: rewritten
    assert charts.write_charts(root, p, "2026-01-02T00:00:00Z").written == 1
    assert (folder / "notes.md").read_text() == "my own notes"
    assert charts.write_charts(root, p, "2026-01-03T00:00:00Z").written == 0, "a note alone changes nothing"
    p.clients["0123456789abcdef"].folder = "Roe, Jane (01234567)"  # renamed
    charts.write_charts(root, p, "2026-01-04T00:00:00Z")
    assert (folder / "notes.md").read_text() == "my own notes"
    assert sorted(x.name for x in folder.iterdir()) == ["notes.md"], "the old chart's files are gone"
    assert (root / "Roe, Jane (01234567)" / "client.md").is_file()


def test_a_session_shows_the_source_s_own_status_and_modality_when_it_has_them() -> None:
    """FHIR has no no-show Encounter: the canonical status of a no-show is `cancelled`, and the
    sessions table said so, the same as a late cancellation. It shows the source's label
    (`status_display`) when there is one, and the FHIR class when no modality label is."""
    from engine.clients.resolve import Resolver
    from engine.config import ClientsConfig

    r = Resolver(ClientsConfig(sources=["dataverse"]))
    ref = DocRef("dataverse", "m", "clinical_session", "s1")
    base = {"kind": "clinical_session", "status": "cancelled", "status_code": 100000002, "class": "VR",
            "length_minutes": 50, "serviceType": {"code": "90834"}, "subject": {"id": "c1"}}
    shown = r.reduce(ref, None, None, {**base, "status_display": "No-show", "modality_display": None}).columns
    assert shown == ("No-show", "90834", "50", "VR")
    plain = r.reduce(ref, None, None, {**base, "status_display": None, "modality_display": "Telehealth"}).columns
    assert plain == ("cancelled", "90834", "50", "Telehealth")


def test_charts_show_times_in_the_practice_s_time_zone(tmp_path: Path) -> None:
    """A session at 23:30 in New York is 04:30 the next day in UTC, and charts were UTC only:
    evening sessions and questionnaires landed on the wrong day. With `clients.timezone` they
    show in the practice's zone; a date alone (kept as midnight UTC) stays that date."""
    from engine.measures.chart import render
    from engine.measures.registry import load

    root = tmp_path / "clients"
    p = projection()
    p.timezone = "America/New_York"
    for sid, time, dated in (("s1", "2024-03-09T04:30:00Z", False), ("s2", "2024-07-01T16:05:00Z", False),
                             ("s3", "2024-04-01T00:00:00Z", True), ("s4", "2024-05-01T00:00:00Z", False)):
        ref = DocRef("dataverse", "m", "clinical_session", sid)
        p.docs[ref] = DocFacts(ref, time, sid, columns=("Completed", "90834", "50", "In person"), dated=dated)
        p.links.append(Link("0123456789abcdef", ref, "source_ref", None, "c"))
    charts.write_charts(root, p, "2026-01-01T00:00:00Z")
    text = (root / "Doe, Jane (01234567)" / "sessions.md").read_text()
    assert "Times are America/New_York" in text
    assert "| 2024-03-08 23:30 | Completed |" in text and "| 2024-07-01 12:05 | Completed |" in text  # EST, EDT
    assert "| 2024-04-01 | Completed |" in text  # a date alone stays that date
    assert "| 2024-04-30 20:00 | Completed |" in text  # an instant at midnight UTC is converted
    assert "| 2024-03-08 23:30 |" in (root / "Doe, Jane (01234567)" / "timeline.md").read_text()
    phq = {"measure": "phq9", "measure_version": 1, "value": 5, "band": "mild", "flags": [],
           "effective_at": "2024-03-09T02:00:00Z", "source_id": "r1", "code": "44261-6"}
    assert "| 2024-03-08 | 5 | mild |" in render("Jane", [phq], load(), zone="America/New_York")
    assert "| 2024-03-09 | 5 | mild |" in render("Jane", [phq], load())
    midnight = {**phq, "effective_at": "2024-03-09T00:00:00Z"}  # 19:00 on the 8th in New York
    assert "| 2024-03-08 | 5 | mild |" in render("Jane", [midnight], load(), zone="America/New_York")
    dated = {**phq, "effective_at": "2024-03-09"}  # a response that gave a date alone
    assert "| 2024-03-09 | 5 | mild |" in render("Jane", [dated], load(), zone="America/New_York")


def test_a_date_alone_is_told_from_a_midnight_instant_by_the_value_it_came_from() -> None:
    """The index keeps `2024-04-01` and `2024-04-01T00:00:00Z` alike: the project reads which
    one the document's time came from (only when the charts are in a zone)."""
    from engine.clients.resolve import Resolver
    from engine.config import ClientsConfig

    zoned = Resolver(ClientsConfig(sources=["dataverse"], timezone="America/New_York"))
    ref = DocRef("quickbooks", "q", "invoice", "i1")
    invoice = {"kind": "invoice", "txn_date": "2024-04-01", "customer": {"id": "c"}}
    assert zoned.reduce(ref, "2024-04-01T00:00:00Z", None, invoice).dated is True
    session = {"kind": "clinical_session", "period": {"start": "2024-04-01T00:00:00Z"}, "subject": {"id": "c"}}
    sref = DocRef("dataverse", "m", "clinical_session", "s1")
    assert zoned.reduce(sref, "2024-04-01T00:00:00Z", None, session).dated is False
    assert Resolver(ClientsConfig(sources=["dataverse"])).reduce(ref, "2024-04-01T00:00:00Z", None,
                                                                 invoice).dated is False  # UTC: not asked


def test_the_chart_time_zone_must_be_a_known_one() -> None:
    from pydantic import ValidationError

    from engine.config import ClientsConfig

    assert ClientsConfig(timezone="Europe/Berlin").timezone == "Europe/Berlin"
    with pytest.raises(ValidationError, match="not a known IANA time zone"):
        ClientsConfig(timezone="Mars/Olympus")


def test_not_scored_rows_without_a_time_and_unknown_critical_items() -> None:
    """A response without a time is listed with date "-"; the warning line counts critical
    items answered above their threshold and those whose answer is not known
    (`phq9_9_question_missing`: it may be positive), not a blank one (`phq9_9_unanswered`)."""
    from engine.measures.chart import not_scored_lines

    rows = [{"effective_at": None, "measure": "phq9", "reason": "NO_TIME", "item": None,
             "flags": ["phq9_9_positive"], "response": "sheets/s/r3"},
            {"effective_at": "2024-03-09T12:00:00Z", "measure": "phq9", "reason": "TOO_MANY_MISSING",
             "item": None, "flags": ["phq9_9_question_missing"], "response": "forms/f/r4"}]
    blank = {**rows[1], "effective_at": "2024-03-10T12:00:00Z", "flags": ["phq9_9_unanswered"]}
    text = "\n".join(not_scored_lines([*rows, {**rows[0], "response": "sheets/s/r5"}, blank]))
    assert "| sheets/s/r5 |" in text  # another response without a time: its own row
    assert "**A critical item was answered, or its answer is not known, in 3 response(s) that could " \
           "not be scored" in text
    assert "| 2024-03-10 | phq9 |" in text and "phq9_9_unanswered" in text
    assert "| - | phq9 | the response has no submitted time (NO_TIME) | - | phq9_9_positive | sheets/s/r3 |" in text
    assert "| 2024-03-09 | phq9 |" in text and "phq9_9_question_missing" in text
