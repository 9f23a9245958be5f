"""A document the rules now link to another person than before is reported (LINKS_MOVED).

Real taps, the bundled transforms, the real CLI. A client's keys are its record's current
ones, so an address moved from one client's record to another's takes the first one's past
documents into the second one's chart: the rules cannot tell that from a correction, so the
projection must say it, and `clients conflicts` must name each document. Ids that shift
(a sheet as the system of record, a row above deleted) move no one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.engine.test_override_pins import TAP, contact, row
from tests.helpers import run_cli


def _write(tmp: Path, name: str, streams: dict[str, list[dict[str, Any]]]) -> None:
    (tmp / f"{name}.json").write_text(json.dumps(streams))


def _config(tmp: Path, *, sources: list[str], where: dict[str, Any] | None = None) -> Path:
    (tmp / "tap.py").write_text(TAP)
    tap = [sys.executable, str(tmp / "tap.py")]
    sheets = {"source": "sheets", "stream": "Clients", "transform": "ops/sheets_clients_to_contact_v1"}
    clients: dict[str, Any] = {"sources": sources, "overrides": str(tmp / "overrides.yaml")}
    if where:
        clients["where"] = where
    cfg = {"workspace": str(tmp / "ws"),
           "extractors": [
               {"name": "dv", "domain": "clinical", "source": "dataverse", "account": "crm", "kind": "singer",
                "command": [*tap, str(tmp / "dv.json")]},
               {"name": "roster", "domain": "ops", "source": "sheets", "account": "roster", "kind": "singer",
                "command": [*tap, str(tmp / "roster.json")]},
               {"name": "intake", "domain": "ops", "source": "sheets", "account": "intake", "kind": "singer",
                "command": [*tap, str(tmp / "intake.json")]}],
           "stages": {"canonize": {"mappings": [
               {"source": "dataverse", "stream": "contacts", "transform": "clinical/dataverse_contact_to_contact_v1"},
               sheets]}, "index": {"vectors": False}},
           "clients": clients}
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "pipeline.yaml"


def _run(cfg: Path) -> dict[str, int]:
    """Run every stage; the project task's warnings by code, with their counts."""
    res = run_cli("run", "--json", "--config", str(cfg), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return {e["code"]: e["count"] for e in map(orjson.loads, res.stdout.splitlines())
            if e["type"] == "task_warning" and e["stage"] == "project"}


def _conflicts(cfg: Path) -> str:
    res = run_cli("clients", "conflicts", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_an_address_moved_to_another_client_s_record_is_reported(tmp_path: Path) -> None:
    ben = contact("aaaaaaaa-0000-0000-0000-000000000002", "Ben", "Kim", "ben.kim@example.com", "212-555-0102",
                  "1981-02-02")
    cy = contact("aaaaaaaa-0000-0000-0000-000000000003", "Cy", "Diaz", "cy@example.com", "212-555-0103",
                 "1982-03-03")
    _write(tmp_path, "dv", {"contacts": [ben, cy]})
    _write(tmp_path, "roster", {"Clients": []})
    # two intake rows that give an address and no name: the address decides
    _write(tmp_path, "intake", {"Clients": [row(2, "", "", "", "cy@example.com"),
                                            row(3, "", "", "", "ben.kim@example.com")]})
    cfg = _config(tmp_path, sources=["dataverse"])
    assert "LINKS_MOVED" not in _run(cfg)
    assert "LINKS_MOVED" not in _conflicts(cfg)
    # the front desk typed Cy's address into Ben's record (and gave Cy a new one)
    _write(tmp_path, "dv", {"contacts": [{**ben, "emailaddress1": "cy@example.com"},
                                         {**cy, "emailaddress1": "cy.diaz@example.net"}]})
    warned = _run(cfg)
    assert warned.get("LINKS_MOVED") == 1, warned
    out = _conflicts(cfg)
    assert "1 document(s) linked to another client" in out, out
    assert "sheets:intake:contact:1SheetXYZ/0/2" in out and "Diaz" in out and "Kim" in out, out
    assert "1SheetXYZ/0/3" not in out, "Ben's own row moved no one (it now links to no one: not counted)"
    # a run that changes nothing says no warning, and the list stays
    assert "LINKS_MOVED" not in _run(cfg)
    assert "sheets:intake:contact:1SheetXYZ/0/2" in _conflicts(cfg)
    # a projection that runs for another change says no warning either, and keeps the move
    # listed until it is reviewed: a cron night's warning is not its only trace
    dee = contact("aaaaaaaa-0000-0000-0000-000000000004", "Dee", "Ray", "dee@example.com", "212-555-0104",
                  "1983-04-04")
    _write(tmp_path, "dv", {"contacts": [{**ben, "emailaddress1": "cy@example.com"},
                                         {**cy, "emailaddress1": "cy.diaz@example.net"}, dee]})
    assert "LINKS_MOVED" not in _run(cfg)
    moved = run_cli("clients", "moved", "--json", "--config", str(cfg))
    assert moved.returncode == 0, moved.stderr
    (entry,) = [orjson.loads(x) for x in moved.stdout.splitlines()]
    assert entry["document"] == "sheets:intake:contact:1SheetXYZ/0/2" and entry["name_before"] == "Cy Diaz"
    assert entry["since"] and len(entry["clients_now"]) == 1
    text = run_cli("clients", "moved", "--config", str(cfg)).stdout
    assert "1 document(s) linked to another client than before" in text and "(since " in text
    status = run_cli("status", "--config", str(cfg))
    assert "links moved: 1 document(s) went to another client's chart" in status.stdout, status.stdout
    assert "Diaz" not in status.stdout and "Kim" not in status.stdout  # status never prints names
    # the operator looks, and the row is Cy's: a link: override puts it back, and says no move
    cy_id = [ln for ln in _conflicts(cfg).splitlines() if "1SheetXYZ/0/2" in ln][0].split(": ", 1)[1].split()[0]
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(
        {"version": 1, "link": [{"document": "sheets:intake:contact:1SheetXYZ/0/2", "client": cy_id}]}))
    assert "LINKS_MOVED" not in _run(cfg)
    listed = run_cli("clients", "show", cy_id, "--json", "--config", str(cfg))
    assert listed.returncode == 0 and "1SheetXYZ/0/2" in listed.stdout and '"override"' in listed.stdout
    assert "LINKS_MOVED" not in _conflicts(cfg)
    assert run_cli("clients", "moved", "--json", "--config", str(cfg)).stdout == ""  # the override settled it


def test_reviewed_moves_are_forgotten_and_a_new_move_is_listed_anew(tmp_path: Path) -> None:
    ben = contact("aaaaaaaa-0000-0000-0000-000000000002", "Ben", "Kim", "ben.kim@example.com", "212-555-0102",
                  "1981-02-02")
    cy = contact("aaaaaaaa-0000-0000-0000-000000000003", "Cy", "Diaz", "cy@example.com", "212-555-0103",
                 "1982-03-03")
    _write(tmp_path, "dv", {"contacts": [ben, cy]})
    _write(tmp_path, "roster", {"Clients": []})
    _write(tmp_path, "intake", {"Clients": [row(2, "", "", "", "cy@example.com")]})
    cfg = _config(tmp_path, sources=["dataverse"])
    _run(cfg)
    _write(tmp_path, "dv", {"contacts": [{**ben, "emailaddress1": "cy@example.com"},
                                         {**cy, "emailaddress1": "cy.diaz@example.net"}]})
    assert _run(cfg).get("LINKS_MOVED") == 1
    shown = run_cli("clients", "moved", "--config", str(cfg)).stdout
    through = shown.split("lorchestra clients moved --reviewed ")[1].split()[0]
    assert through[:4].isdigit() and through.endswith("Z"), shown
    bad = run_cli("clients", "moved", "--reviewed", "yesterday", "--config", str(cfg))
    assert bad.returncode == 2 and "give the time" in bad.stderr, bad.stderr
    done = run_cli("clients", "moved", "--reviewed", through, "--config", str(cfg))
    assert done.returncode == 0 and "forgot 1 reviewed move(s)" in done.stdout, done.stdout + done.stderr
    assert run_cli("clients", "moved", "--json", "--config", str(cfg)).stdout == ""
    assert "LINKS_MOVED" not in _conflicts(cfg)
    assert "links moved" not in run_cli("status", "--config", str(cfg)).stdout
    # the address goes back to Cy's record: the row moves again, to her, and is listed anew
    _write(tmp_path, "dv", {"contacts": [ben, cy]})
    assert _run(cfg).get("LINKS_MOVED") == 1
    (entry,) = [orjson.loads(x) for x in run_cli("clients", "moved", "--json", "--config", str(cfg)).stdout.splitlines()]
    assert entry["name_before"] == "Ben Kim"
    # a move found after the operator looked is not forgotten with the ones they saw
    done = run_cli("clients", "moved", "--reviewed", through, "--config", str(cfg))
    assert "forgot 0 reviewed move(s); 1 found by a later projection stay listed" in done.stdout, done.stdout
    assert run_cli("clients", "moved", "--json", "--config", str(cfg)).stdout.count("\n") == 1
    assert "forgot 1" in run_cli("clients", "moved", "--reviewed", "all", "--config", str(cfg)).stdout


def test_ids_that_shift_when_a_roster_row_is_deleted_move_no_one(tmp_path: Path) -> None:
    roster = [row(2, "Ann Lee", "1/1/1970", "", "ann@example.com"),
              row(3, "Bo Kim", "2/2/1980", "", "bo@example.com"),
              row(4, "Cy Diaz", "3/3/1990", "", "cy@example.com")]
    _write(tmp_path, "dv", {"contacts": []})
    _write(tmp_path, "roster", {"Clients": roster})
    _write(tmp_path, "intake", {"Clients": [row(2, "", "", "", "bo@example.com"),
                                            row(3, "", "", "", "cy@example.com")]})
    cfg = _config(tmp_path, sources=["sheets"], where={"account": "roster"})
    assert "LINKS_MOVED" not in _run(cfg)
    _write(tmp_path, "roster", {"Clients": [{**r, "__sdc_row": r["__sdc_row"] - 1} for r in roster[1:]]})
    warned = _run(cfg)  # Bo and Cy have the ids Ann and Bo had: their rows did not move
    assert "LINKS_MOVED" not in warned, warned
    _write(tmp_path, "roster", {"Clients": [row(2, "Bo Kim", "2/2/1980", "", "bo@example.com"),
                                            row(3, "Dee Poe", "4/4/1999", "", "cy@example.com")]})
    warned = _run(cfg)  # Cy's row replaced by Dee's, with Cy's address: that moved a document
    assert warned.get("LINKS_MOVED") == 1, warned
    assert "sheets:intake:contact:1SheetXYZ/0/3" in _conflicts(cfg)


def _tables(tmp: Path, links: list[tuple[str, str]], clients: dict[str, tuple[str, str | None]]) -> Any:
    """A real index database with the client tables: ``links`` (client id, e-mail id) and
    ``clients`` (id -> name, birth date); the documents table as the index keeps it."""
    import sqlite3

    from engine.clients.tables import ensure_schema

    tmp.mkdir(exist_ok=True)
    con = sqlite3.connect(tmp / "index.sqlite", isolation_level=None)
    con.execute("CREATE TABLE IF NOT EXISTS documents (doc_id INTEGER PRIMARY KEY, kind TEXT, source TEXT, "
                "account TEXT, entity_id TEXT)")
    ensure_schema(con)
    con.execute("DELETE FROM clients")
    con.execute("DELETE FROM client_links")
    con.executemany("INSERT INTO clients VALUES (?, ?, ?, 'f', 'dv', 'a', ?, ?, '', 0)",
                    [(c, n, n, c, b) for c, (n, b) in clients.items()])
    con.executemany("INSERT INTO client_links VALUES (?, 'gmail', 'box', 'email', ?, 'email', 'in', 'k')", links)
    con.executemany("INSERT OR IGNORE INTO documents VALUES (?, 'email', 'gmail', 'box', ?)",
                    [(n, e) for n, e in enumerate(sorted({e for _, e in links}), 1)])
    return con


def _moved(tmp: Path, before: Any, after: Any) -> list[Any]:
    """What :func:`engine.clients.moved.find` says from the tables ``before`` to ``after``."""
    from engine.clients import moved

    con = _tables(tmp, *before)
    con.execute("ATTACH DATABASE ? AS scratch", (str(tmp / "scratch.sqlite"),))
    con.execute("BEGIN")
    moved.snapshot(con, "scratch")
    con.execute("COMMIT")
    con.close()
    con = _tables(tmp, *after)
    con.execute("ATTACH DATABASE ? AS scratch", (str(tmp / "scratch.sqlite"),))
    try:
        return moved.find(con, "scratch", 10)
    finally:
        con.close()


def test_a_record_corrected_in_place_or_a_link_lost_moves_nothing(tmp_path: Path) -> None:
    """A reviewer's findings: Ben's birth date corrected in his own record reported every one
    of his documents moved (to himself); a mail to Ann and Bob now linked to Ann only was
    reported moved from Bob to Ann, whose chart had it already. The next person's row under
    Ben's id (another name and birth date) is a move."""
    people = {"B": ("Ben Kim", "1981-02-02"), "A": ("Ann Lee", None), "C": ("Cy Diaz", "1982-03-03")}
    links = [("B", "m1"), ("A", "m2"), ("B", "m2")]
    fixed = {**people, "B": ("Kim, Ben", "1981-02-03")}
    assert _moved(tmp_path / "dob", (links, people), (links, fixed)) == []
    assert _moved(tmp_path / "lost", (links, people), ([("B", "m1"), ("A", "m2")], people)) == []
    other = {**people, "B": ("Dee Poe", "1999-09-09")}
    assert _moved(tmp_path / "row", (links, people), (links, other)) == [
        ("gmail:box:email:m1", "B", "Ben Kim", ["B"]), ("gmail:box:email:m2", "B", "Ben Kim", ["A", "B"])]
    # a birth date unknown on one side excuses nothing, nor does a shared one alone (twins);
    # a new family name with the same birth date and given name is the same person
    for n, (then, now) in enumerate(((("Ben Kim", "1981-02-02"), ("Dee Poe", None)),
                                     (("Ben Kim", None), ("Zed Roe", "1999-09-09")),
                                     (("Emma Brown", "2010-05-05"), ("Olivia Brown", "2010-05-05")))):
        got = _moved(tmp_path / f"next{n}", ([("B", "m1")], {**people, "B": then}), ([("B", "m1")], {**people, "B": now}))
        assert got == [("gmail:box:email:m1", "B", then[0], ["B"])], (then, now, got)
    married = {**people, "B": ("Ben Stone", "1981-02-02")}
    assert _moved(tmp_path / "married", (links, people), (links, married)) == []
    away = [("C", "m1"), ("A", "m2"), ("B", "m2")]
    assert _moved(tmp_path / "away", (links, people), (away, people)) == [("gmail:box:email:m1", "B", "Ben Kim", ["C"])]
