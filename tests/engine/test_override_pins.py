"""A ``link:`` override holds for the content it was first applied to (or the sha256 it names).

Real taps, the bundled transforms, the real CLI: a Dataverse system of record (Ben, Cy) and an
intake sheet whose rows have no ids (``source_id`` is the row number). The operator links the
unmatched row 3 to Ben; the front desk then deletes the blank row 2, and the tap renumbers the
rows below it, so row 3 is now Cy's intake row. The link must not put Cy's row in Ben's chart.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.helpers import run_cli

TAP = """import json, sys
data = json.load(open(sys.argv[1]))
for stream, recs in data.items():
    print(json.dumps({"type": "SCHEMA", "stream": stream, "schema": {"type": "object"}, "key_properties": []}))
    for r in recs:
        print(json.dumps({"type": "RECORD", "stream": stream, "record": r}))
print(json.dumps({"type": "STATE", "value": {"done": True}}))
"""


def contact(cid: str, first: str, last: str, email: str, phone: str, dob: str) -> dict[str, Any]:
    return {"contactid": cid, "fullname": f"{first} {last}", "firstname": first, "lastname": last,
            "emailaddress1": email, "telephone1": phone, "birthdate": dob, "statecode": 0}


def row(n: int, name: str, dob: str, phone: str, email: str) -> dict[str, Any]:
    return {"__sdc_spreadsheet_id": "1SheetXYZ", "__sdc_sheet_id": 0, "__sdc_row": n, "Name": name,
            "DOB": dob, "Phone": phone, "Email": email}


def setup(tmp: Path) -> Path:
    (tmp / "tap.py").write_text(TAP)
    (tmp / "dv.json").write_text(json.dumps({"contacts": [
        contact("aaaaaaaa-0000-0000-0000-000000000002", "Ben", "Kim", "ben.kim@example.com", "212-555-0102",
                "1981-02-02"),
        contact("aaaaaaaa-0000-0000-0000-000000000003", "Cy", "Diaz", "cy@example.com", "212-555-0103",
                "1982-03-03")]}))
    sheet(tmp, [row(2, "Test Row", "", "", ""), row(3, "Benny K", "", "", "benny.k@work.example"),
                row(4, "Cy Diaz", "3/3/1982", "212-555-0103", "cy@example.com")])
    tap = [sys.executable, str(tmp / "tap.py")]
    cfg = {"workspace": str(tmp / "ws"),
           "extractors": [
               {"name": "dv", "domain": "clinical", "source": "dataverse", "account": "mensio", "kind": "singer",
                "command": [*tap, str(tmp / "dv.json")]},
               {"name": "sh", "domain": "ops", "source": "sheets", "account": "intake", "kind": "singer",
                "command": [*tap, str(tmp / "sh.json")]}],
           "stages": {"canonize": {"mappings": [
               {"source": "dataverse", "stream": "contacts", "transform": "clinical/dataverse_contact_to_contact_v1"},
               {"source": "sheets", "stream": "Clients", "transform": "ops/sheets_clients_to_contact_v1"}]},
               "index": {"vectors": False}},
           "clients": {"sources": ["dataverse"], "overrides": str(tmp / "overrides.yaml")}}
    (tmp / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "pipeline.yaml"


def sheet(tmp: Path, rows: list[dict[str, Any]]) -> None:
    (tmp / "sh.json").write_text(json.dumps({"Clients": rows}))


def run(cfg: Path) -> set[str]:
    """Run every stage; the codes of the project task's warnings."""
    res = run_cli("run", "--json", "--config", str(cfg), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return {e["code"] for e in map(orjson.loads, res.stdout.splitlines())
            if e["type"] == "task_warning" and e["stage"] == "project"}


def linked(tmp: Path, doc: str) -> list[tuple[str, str]]:
    """(client name, rule) of the links of ``sheets:intake:contact:<doc>``."""
    with contextlib.closing(sqlite3.connect(tmp / "ws" / "vector-store" / "index.sqlite")) as con:
        return con.execute("SELECT c.name, l.rule FROM client_links l JOIN clients c USING (client_id) "
                           "WHERE l.source = 'sheets' AND l.entity_id = ?", (doc,)).fetchall()


def client_id(tmp: Path, name: str) -> str:
    with contextlib.closing(sqlite3.connect(tmp / "ws" / "vector-store" / "index.sqlite")) as con:
        return str(con.execute("SELECT client_id FROM clients WHERE name = ?", (name,)).fetchone()[0])


def test_a_renumbered_sheet_row_is_not_moved_into_the_linked_chart(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/3") == [] and linked(tmp_path, "1SheetXYZ/0/4") == [("Cy Diaz", "email")]
    ben = client_id(tmp_path, "Ben Kim")
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(
        {"version": 1, "link": [{"document": "sheets:intake:contact:1SheetXYZ/0/3", "client": ben}]}))
    assert "OVERRIDE_STALE" not in run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/3") == [("Ben Kim", "override")], "whatever the rules say"
    sheet(tmp_path, [row(2, "Test Row", "", "", ""),  # the row's content changes, its keys do not
                     {**row(3, "Benny K", "", "", "benny.k@work.example"), "Notes": "called back"},
                     row(4, "Cy Diaz", "3/3/1982", "212-555-0103", "cy@example.com")])
    assert "OVERRIDE_STALE" not in run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/3") == [("Ben Kim", "override")], "the same document: still linked"
    sheet(tmp_path, [row(2, "Benny K", "", "", "benny.k@work.example"),  # row 2 deleted: renumbered
                     row(3, "Cy Diaz", "3/3/1982", "212-555-0103", "cy@example.com")])
    assert "OVERRIDE_STALE" in run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/3") == [("Cy Diaz", "email")], "Cy's row stays Cy's"
    timeline = next((tmp_path / "ws" / "clients").glob("Kim, Ben*")) / "timeline.md"
    assert "1SheetXYZ/0/3" not in timeline.read_text()
    with contextlib.closing(sqlite3.connect(tmp_path / "ws" / "vector-store" / "index.sqlite")) as con:
        sha = con.execute("SELECT sha256 FROM documents WHERE entity_id = '1SheetXYZ/0/2'").fetchone()[0]
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump({"version": 1, "link": [  # the operator re-links
        {"document": "sheets:intake:contact:1SheetXYZ/0/2", "client": ben, "sha256": sha}]}))
    assert "OVERRIDE_STALE" not in run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/2") == [("Ben Kim", "override")]


def project_status(cfg: Path) -> tuple[str, set[str]]:
    """Run every stage; the project task's status and warning codes."""
    res = run_cli("run", "--json", "--config", str(cfg), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    events = [e for e in map(orjson.loads, res.stdout.splitlines()) if e.get("stage") == "project"]
    status = next(e["status"] for e in events if e["type"] == "task_finished")
    return status, {e["code"] for e in events if e["type"] == "task_warning"}


def test_a_link_restored_from_a_backup_holds_for_what_it_was_first_applied_to(tmp_path: Path) -> None:
    """The overrides file moved away for a night's run, the blank row deleted meanwhile, then
    the file restored: the link must not take Cy's row (now row 3) for Ben's. Once the
    operator has looked again, `clients repin` forgets the pin and the next run pins anew."""
    cfg = setup(tmp_path)
    run(cfg)
    ben = client_id(tmp_path, "Ben Kim")
    link = {"version": 1, "link": [{"document": "sheets:intake:contact:1SheetXYZ/0/3", "client": ben}]}
    (tmp_path / "overrides.yaml").write_text(yaml.safe_dump(link))
    assert "OVERRIDE_STALE" not in run(cfg) and linked(tmp_path, "1SheetXYZ/0/3") == [("Ben Kim", "override")]
    (tmp_path / "overrides.yaml").rename(tmp_path / "overrides.bak")  # moved away for one run
    run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/3") == []
    sheet(tmp_path, [row(2, "Benny K", "", "", "benny.k@work.example"),  # row 2 deleted: renumbered
                     row(3, "Cy Diaz", "3/3/1982", "212-555-0103", "cy@example.com")])
    run(cfg)
    (tmp_path / "overrides.bak").rename(tmp_path / "overrides.yaml")  # restored
    assert "OVERRIDE_STALE" in run(cfg)
    assert linked(tmp_path, "1SheetXYZ/0/3") == [("Cy Diaz", "email")], "Cy's row stays Cy's"
    conflicts = run_cli("clients", "conflicts", "--config", str(cfg))
    assert conflicts.returncode == 0 and "sheets:intake:contact:1SheetXYZ/0/3" in conflicts.stdout
    assert "clients repin" in conflicts.stdout, conflicts.stdout

    typo = run_cli("clients", "repin", "sheets:intake:contact:1SheetXYZ/0/9", "--config", str(cfg))
    assert typo.returncode == 2 and "no pin is stored" in typo.stderr, typo.stdout + typo.stderr
    bad = run_cli("clients", "repin", "client:Ben", "--config", str(cfg))
    assert bad.returncode == 2 and "client:ID" in bad.stderr
    # the operator looked again and decided the link stands for what is there now (their call):
    # the very next run projects again although nothing else changed
    res = run_cli("clients", "repin", "sheets:intake:contact:1SheetXYZ/0/3", "--config", str(cfg))
    assert res.returncode == 0 and "forgot" in res.stdout, res.stdout + res.stderr
    status, codes = project_status(cfg)
    assert status == "success" and "OVERRIDE_STALE" not in codes
    assert linked(tmp_path, "1SheetXYZ/0/3") == [("Ben Kim", "override")], "pinned anew, as the operator said"
    again = run_cli("clients", "repin", "sheets:intake:contact:1SheetXYZ/0/3", "client:" + "0" * 16,
                    "--config", str(cfg))
    assert again.returncode == 2 and "client:0000000000000000" in again.stderr, "one unknown: nothing forgotten"
    assert project_status(cfg) == ("skipped", set()), "the first reference's pin was not forgotten"


def test_repin_waits_for_a_running_projection(tmp_path: Path) -> None:
    """It writes the pins a projection writes: never at the same time (exit 3 when busy)."""
    from engine.store.lock import WorkspaceLock
    from engine.store.workspace import Workspace

    cfg = setup(tmp_path)
    run(cfg)
    lock = WorkspaceLock(Workspace(tmp_path / "ws"), command="a test").acquire()
    try:
        res = run_cli("clients", "repin", "client:" + "0" * 16, "--config", str(cfg))
    finally:
        lock.release()
    assert res.returncode == 3, res.stdout + res.stderr


def test_pins_survive_a_rebuild_of_the_client_tables(tmp_path: Path) -> None:
    """Another version's client tables are dropped and rebuilt from the documents: the pins
    are the operator's decisions, not derived, and stay."""
    from engine.clients.tables import CLIENTS_SCHEMA_VERSION, ensure_schema, forget_pins

    with contextlib.closing(sqlite3.connect(tmp_path / "index.sqlite")) as con:
        ensure_schema(con)
        con.execute("INSERT INTO client_override_pins VALUES ('sheets:a:contact:1', 'c1', '3:ab')")
        con.execute("INSERT INTO clients_meta VALUES ('inputs_sha256', 'f' )")
        con.execute("UPDATE clients_meta SET value = '0' WHERE key = 'schema_version'")  # an older version
        ensure_schema(con)
        assert con.execute("SELECT * FROM client_override_pins").fetchall() == [("sheets:a:contact:1", "c1", "3:ab")]
        assert dict(con.execute("SELECT key, value FROM clients_meta")) == {"schema_version": str(CLIENTS_SCHEMA_VERSION)}
        con.execute("INSERT INTO clients_meta VALUES ('inputs_sha256', 'f' )")
        assert forget_pins(con, ["sheets:a:contact:1", "client:x"]) == ({"sheets:a:contact:1": 1}, ["client:x"])
        assert con.execute("SELECT count(*) FROM client_override_pins").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM clients_meta WHERE key = 'inputs_sha256'").fetchone() == (0,)


def test_the_merge_suggestion_keeps_the_id_of_the_first_listed_source(tmp_path: Path) -> None:
    """A reviewer's practice (Dataverse, then an intake sheet, both systems of record): the
    suggestion kept the sheet row's id (it sorted as hex first), which moved to the next
    person's row after a deletion."""
    from engine.clients.read import ClientTables
    from engine.clients.tables import ensure_schema
    from lorch_tui.clientscmd import _source_rank, likely_same_person

    with contextlib.closing(sqlite3.connect(tmp_path / "index.sqlite")) as con:
        ensure_schema(con)
        con.executemany("INSERT INTO clients VALUES (?, 'M', 'M', 'f', ?, 'a', 'e', NULL, '', 0)",
                        [("0a0a0a0a0a0a0a0a", "sheets"), ("f1f1f1f1f1f1f1f1", "dataverse")])
        pair = "0a0a0a0a0a0a0a0a,f1f1f1f1f1f1f1f1"
        conflicts = [{"key": "name_dob:maria garcia|1985-02-02", "clients": pair, "reviewed": 0},
                     {"key": "email:m@example.com", "clients": pair, "reviewed": 0}]
        rank = _source_rank(ClientTables(con), ["dataverse", "sheets"])
        assert likely_same_person(conflicts, rank) == [("f1f1f1f1f1f1f1f1", "0a0a0a0a0a0a0a0a")]
        rank = _source_rank(ClientTables(con), ["sheets", "dataverse"])
        assert likely_same_person(conflicts, rank) == [("0a0a0a0a0a0a0a0a", "f1f1f1f1f1f1f1f1")]
        assert likely_same_person(conflicts[1:], rank) == [], "a name and birth date, and another key"
