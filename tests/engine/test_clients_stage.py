"""The project stage end to end: the bundled demo through the real CLI, checked against truth.

One module-scoped run of `lorchestra run` over the bundled demo (12 demo extractors, 30
records each, clients from the mensio Dataverse) builds a workspace; tests then copy it
when they change it. The demo taps know which synthetic client each record is about
(``engine.demo_taps.truth``): every link must be right (precision 100%) and at least 95% of
the documents a rule can link must be linked (recall), with the traps (a family's shared
address, name twins, Gmail variants, phone-only clients, staff-only threads, a QuickBooks
customer who is no client) each checked by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml

from engine.clients.model import client_id_for
from engine.demo_taps.canary import CANARIES
from engine.demo_taps.people import (
    FAMILY_OF,
    GMAIL_CLIENT,
    NAME_TWIN_OF,
    NON_CLIENT_CUSTOMER,
    PHONE_ONLY,
)
from engine.demo_taps.truth import truth
from lorch_tui.bigtable import clean
from tests.helpers import REPO, clean_env, copy_workspace, log_events, run_cli, wait_for

RECORDS = 30
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
TAP_OF = {e["name"]: e for e in DEMO["extractors"]}


def env(**extra: str) -> dict[str, str]:
    return clean_env(LORCH_DEMO_RECORDS=str(RECORDS), COLUMNS="400", **extra)


def cli(ws: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cfg = ["--config", str(config)] if config else []
    if not cfg and args[0] == "run":
        cfg = ["--demo"]  # the bundled demo without a terminal, on purpose
    return run_cli(*args, "--workspace", str(ws), *cfg, env=env(), timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("clients") / "ws"
    res = cli(ws, "run")
    assert res.returncode == 0, res.stdout + res.stderr
    return ws


copy = copy_workspace


def db(ws: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{ws / 'vector-store' / 'index.sqlite'}?mode=ro", uri=True)


def ground_truth() -> dict[tuple[str, str, str, str], dict[int, str]]:
    out: dict[tuple[str, str, str, str], dict[int, str]] = {}
    for ex in DEMO["extractors"]:
        d = ex["demo"]
        for t in truth(d["tap"], ex["account"], d["seed"], RECORDS):
            out[(ex["source"], ex["account"], t.kind, t.source_id)] = t.persons
    return out


def snapshot(ws: Path) -> dict[str, tuple[bytes, int, int]]:
    root = ws / "clients"
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_links_match_the_demo_truth_with_no_wrong_link(built: Path) -> None:
    gt = ground_truth()
    con = db(built)
    clients = con.execute("SELECT client_id, source, account, entity_id FROM clients").fetchall()
    person_of: dict[str, int] = {}
    for cid, source, account, entity in clients:
        (person,) = gt[(source, account, "contact", entity)]
        person_of[cid] = person
    client_of = {p: c for c, p in person_of.items()}
    assert len(client_of) == len(person_of) == RECORDS * 40 // 100, "one client per mensio contact"
    links = con.execute("SELECT client_id, source, account, kind, entity_id, rule, direction "
                        "FROM client_links WHERE source != 'measures'").fetchall()  # test_measures_demo
    wrong = [(cid, doc) for cid, *doc, _rule, _dir in links
             if person_of[cid] not in gt[tuple(doc)]]  # type: ignore[index]
    assert not wrong, f"{len(wrong)} wrong links (precision below 100%): {wrong[:5]}"
    linked = {(cid, tuple(doc)) for cid, *doc, _r, _d in links}
    linkable = [(doc, p) for doc, persons in gt.items() for p, how in persons.items()
                if p in client_of and how in ("key", "ref")]
    hit = sum(1 for doc, p in linkable if (client_of[p], doc) in linked)
    assert len(linkable) > 150, "the demo gives the rules real work"
    assert hit / len(linkable) >= 0.95, f"recall {hit}/{len(linkable)}"
    rules = {r for *_x, r, _d in links}
    assert {"email", "phone", "source_ref", "name_dob"} <= rules
    assert {d for *_x, _r, d in links if d} == {"in", "out"}
    con.close()


def test_every_trap_is_handled(built: Path) -> None:
    gt = ground_truth()
    con = db(built)
    cid = {p: client_id_for("dataverse", "mensio", e) for (s, a, k, e), who in gt.items()
           if (s, a, k) == ("dataverse", "mensio", "contact") for p in who}
    unlinked = {tuple(r[:4]): r[4] for r in con.execute(
        "SELECT source, account, kind, entity_id, reason FROM client_unlinked")}
    links = con.execute("SELECT client_id, source, account, kind, entity_id, rule, via "
                        "FROM client_links").fetchall()

    def rules_for(person: int, **where: str) -> set[str]:
        return {r[5] for r in links if r[0] == cid[person]
                and all(r[1 + ("source", "account", "kind").index(k)] == v for k, v in where.items())}

    # a family's shared address: a conflict, and mail reached only through it links no one
    (head,), (member,) = FAMILY_OF.values(), FAMILY_OF.keys()
    conflicts = con.execute("SELECT key, clients, documents FROM client_conflicts").fetchall()
    family = [c for c in conflicts if set(c[1].split(",")) == {cid[head], cid[member]}]
    assert family and family[0][0].startswith("email:") and family[0][2] > 0
    shared_mail = [doc for doc, who in gt.items() if doc[2] == "email" and set(who.values()) == {"shared"}]
    assert shared_mail and all(unlinked.get(doc) == "conflict" for doc in shared_mail)
    assert "phone" in rules_for(member, source="sheets")  # the member's own phone still links
    # name twins: each intake row links to the right twin by name plus birth date
    for twin in (*NAME_TWIN_OF, *NAME_TWIN_OF.values()):
        assert rules_for(twin, source="sheets", kind="contact") == {"name_dob"}
    # the Gmail client's dot, plus and googlemail variants link by e-mail
    gmail = [r for r in links if r[0] == cid[GMAIL_CLIENT] and r[3] == "email"]
    assert gmail and {r[6] for r in gmail} == {f"email:{cid_local(con, cid[GMAIL_CLIENT])}"}
    assert rules_for(GMAIL_CLIENT, source="sheets", kind="contact") == {"email"}
    # phones in several formats: the phone-only client's intake row and customer record
    assert rules_for(PHONE_ONLY, source="sheets", kind="contact") == {"phone"}
    assert "phone" in rules_for(PHONE_ONLY, source="quickbooks", kind="contact")
    # staff-only threads link no one
    staff = [doc for doc, r in unlinked.items() if r == "internal"]
    assert len(staff) >= 6 and all(gt[doc] == {} for doc in staff)
    # the QuickBooks customer who is no client: its invoices link no one
    eap = ("quickbooks", "mensio", "contact", str(NON_CLIENT_CUSTOMER + 1))
    assert unlinked[eap] == "no_match"
    eap_docs = [doc for doc, who in gt.items() if doc[0] == "quickbooks" and doc[1] == "mensio"
                and doc[2] in ("invoice", "payment") and not who]
    assert eap_docs and all(unlinked[doc] == "ref_unlinked" for doc in eap_docs)
    # a name alone never links
    assert all(unlinked.get(doc) == "no_key" for doc, who in gt.items()
               if doc[0] == "sheets" and doc[2] == "clinical_session")
    con.close()


def cid_local(con: sqlite3.Connection, client: str) -> str:
    (key,) = con.execute("SELECT key FROM client_keys WHERE client_id = ? AND kind = 'email'",
                         (client,)).fetchone()
    return str(key).split(":", 1)[1]


def test_charts_are_written_safely_and_a_rerun_changes_nothing(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    root = ws / "clients"
    folders = sorted(p.name for p in root.iterdir())
    assert len(folders) == RECORDS * 40 // 100 and all(f.endswith(")") for f in folders)
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    for p in root.rglob("*"):
        assert oct(p.stat().st_mode & 0o777) == ("0o700" if p.is_dir() else "0o600"), p
    one = next(root.glob("Canarywhistle, Zebulon (*)"))
    assert sorted(f.name for f in one.iterdir()) == ["billing.md", "client.md", "measures.md", "sessions.md",
                                                        "timeline.md"]
    front = yaml.safe_load(one.joinpath("client.md").read_text().split("---")[1])
    assert set(front) >= {"client_id", "sources", "keys", "counts", "projected_at"}
    timeline = one.joinpath("timeline.md").read_text()
    assert "| date | kind | direction | title | source/account | document |" in timeline
    before = snapshot(ws)
    res = cli(ws, "run", "--stage", "project")
    assert res.returncode == 0 and "project:clients skipped" in res.stdout + res.stderr
    res = cli(ws, "run", "--stage", "project", "--force")
    assert res.returncode == 0, res.stderr
    assert snapshot(ws) == before, "a forced rerun writes byte-identical charts and rewrites no file"


def test_a_run_that_brings_the_same_records_again_skips_the_projection(built: Path, tmp_path: Path) -> None:
    """The nightly case: every tap extracts the same records under a new run id, every
    account is loaded again (new provenance, generation up), no document changes, so the
    projection is skipped and no chart file is touched."""
    ws = copy(built, tmp_path)
    with contextlib.closing(db(ws)) as con:
        rows = "SELECT source, account, canonical_sha256, inputs_sha256, generation FROM accounts WHERE source != 'measures'"
        before_rows = {r[:2]: r[2:] for r in con.execute(rows)}
    before = snapshot(ws)
    res = cli(ws, "run")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "project:clients skipped" in res.stdout + res.stderr
    with contextlib.closing(db(ws)) as con:
        after_rows = {r[:2]: r[2:] for r in con.execute(rows)}
    assert after_rows.keys() == before_rows.keys()
    assert all(after_rows[k][0] == before_rows[k][0] for k in before_rows), "the same documents"
    assert all(after_rows[k][1:] != before_rows[k][1:] for k in before_rows), "each account was loaded again"
    assert snapshot(ws) == before


def test_overrides_settle_conflicts_and_gone_clients_are_removed(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    con = db(ws)
    key, pair = con.execute("SELECT key, clients FROM client_conflicts").fetchone()
    con.close()
    a, b = pair.split(",")
    overrides = tmp_path / "clients.overrides.yaml"
    overrides.write_text(yaml.safe_dump({"merge": [[a, b]]}))
    cfg = dict(DEMO, clients={**DEMO["clients"], "overrides": str(overrides)})
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(cfg))
    before = snapshot(ws)
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    con = db(ws)
    assert con.execute("SELECT count(*) FROM clients WHERE client_id = ?", (b,)).fetchone()[0] == 0
    assert con.execute("SELECT merged FROM clients WHERE client_id = ?", (a,)).fetchone()[0] == b
    assert not con.execute("SELECT 1 FROM client_conflicts WHERE key = ?", (key,)).fetchone()
    con.close()
    listed = [orjson.loads(x) for x in cli(ws, "clients", "list", "--json", config=config).stdout.splitlines()]
    assert next(c for c in listed if c["client_id"] == a)["merged"] == [b]  # typed JSON: a list of ids
    assert all(c["merged"] == [] for c in listed if c["client_id"] != a)
    after = snapshot(ws)
    gone = {k.split("/")[0] for k in before} - {k.split("/")[0] for k in after}
    assert len(gone) == 1 and gone.pop().endswith(f"({b[:8]})"), "the merged client's folder is gone"
    unchanged = [k for k in after if k in before and after[k] == before[k]]
    assert len(unchanged) >= len(after) - 8, "only the merged client's files were rewritten"
    overrides.write_text("merge: [[only-one]]\n")
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 1 and "OVERRIDES_INVALID" in res.stdout + res.stderr


def test_stale_overrides_are_named_by_clients_conflicts(built: Path, tmp_path: Path) -> None:
    """OVERRIDE_STALE only counted: nothing said which `link:` was not applied. `clients
    conflicts` names each, and a link that holds is not listed."""
    ws = copy(built, tmp_path)
    with contextlib.closing(db(ws)) as con:
        kept, moved = con.execute("SELECT source || ':' || account || ':' || kind || ':' || entity_id FROM "
                                  "client_unlinked WHERE kind = 'email' ORDER BY entity_id LIMIT 2").fetchall()
        cid = con.execute("SELECT client_id FROM clients ORDER BY client_id LIMIT 1").fetchone()[0]
    overrides = tmp_path / "clients.overrides.yaml"
    overrides.write_text(yaml.safe_dump({"link": [{"document": kept[0], "client": cid},
                                                  {"document": moved[0], "client": cid, "sha256": "ab" * 32}]}))
    overrides.chmod(0o600)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients={**DEMO["clients"], "overrides": str(overrides)})))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0 and "OVERRIDE_STALE (count 1)" in res.stdout, res.stdout + res.stderr
    listed = cli(ws, "clients", "conflicts", config=config)
    assert listed.returncode == 0 and "1 override(s) not applied (OVERRIDE_STALE)" in listed.stdout, listed.stdout
    assert f"  {moved[0]} -> {cid}" in listed.stdout and kept[0] not in listed.stdout


def test_unused_overrides_are_named_by_clients_conflicts(built: Path, tmp_path: Path) -> None:
    """OVERRIDE_UNUSED only counted (a client id in upper case, a document id with a space), and
    an `apart` naming no client was not even counted. `clients conflicts` names each."""
    ws = copy(built, tmp_path)
    with contextlib.closing(db(ws)) as con:
        (doc,) = con.execute("SELECT source || ':' || account || ':' || kind || ':' || entity_id FROM "
                             "client_unlinked WHERE kind = 'email' ORDER BY entity_id LIMIT 1").fetchone()
        a, b = (r[0] for r in con.execute("SELECT client_id FROM clients ORDER BY client_id LIMIT 2"))
    overrides = tmp_path / "clients.overrides.yaml"
    overrides.write_text(yaml.safe_dump({"link": [{"document": doc + " ", "client": a},
                                                  {"document": doc, "client": a.upper()}],
                                         "apart": [[a, b.upper()]], "merge": [[a, "0000000000000000"]]}))
    overrides.chmod(0o600)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients={**DEMO["clients"], "overrides": str(overrides)})))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0 and "OVERRIDE_UNUSED (count 4)" in res.stdout, res.stdout + res.stderr
    listed = cli(ws, "clients", "conflicts", config=config)
    assert "4 override(s) name nothing the last projection had (OVERRIDE_UNUSED)" in listed.stdout, listed.stdout
    for line in (f"  {doc}  -> {a}", f"  {doc} -> {a.upper()}", f"  apart:{b.upper()}", "  merge:0000000000000000"):
        assert line in listed.stdout, (line, listed.stdout)


def test_the_charts_follow_the_practice_s_time_zone(built: Path, tmp_path: Path) -> None:
    """`clients.timezone` re-projects the charts in that zone: every timeline time moves by the
    zone's offset (the same rows, the same order), dates alone stay."""
    ws = copy(built, tmp_path)
    folder = next(f for f in sorted((ws / "clients").iterdir()) if f.is_dir())
    before = (folder / "timeline.md").read_text()
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients={**DEMO["clients"], "timezone": "Asia/Tokyo"})))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    after = (folder / "timeline.md").read_text()
    assert "Times are Asia/Tokyo" in after and "Times are UTC" in before

    def times(text: str) -> list[str]:
        return [row.split(" | ")[0][2:] for row in text.splitlines() if row.startswith("| 2") or row.startswith("| 1")]
    old, new = times(before), times(after)
    assert len(old) == len(new) > 0
    for a, b in zip(old, new, strict=True):
        if len(a) == 10:  # a date alone stays; an instant at midnight UTC moves (09:00 in Tokyo)
            assert b in (a, f"{a} 09:00"), (a, b)
        else:
            shifted = datetime.fromisoformat(a + "+00:00").astimezone(ZoneInfo("Asia/Tokyo"))
            assert b == shifted.strftime("%Y-%m-%d %H:%M"), (a, b)


def test_an_extractor_removed_from_the_config_leaves_the_charts(built: Path, tmp_path: Path) -> None:
    """The usual reason to remove an account is that it was wrong (another mailbox): its
    documents must leave every chart at the next projection, and `status` names it."""
    ws = copy(built, tmp_path)
    with contextlib.closing(db(ws)) as con:
        source, account = con.execute(
            "SELECT source, account FROM client_links WHERE kind = 'email' GROUP BY source, account "
            "ORDER BY count(*) DESC LIMIT 1").fetchone()
    cfg = dict(DEMO, extractors=[e for e in DEMO["extractors"]
                                 if (e["source"], e["account"]) != (source, account)])
    cfg["jobs"] = {k: [n for n in v if any(e["name"] == n for e in cfg["extractors"])]
                   for k, v in DEMO.get("jobs", {}).items()}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    with contextlib.closing(db(ws)) as con:
        left = con.execute("SELECT count(*) FROM client_links WHERE source = ? AND account = ?",
                           (source, account)).fetchone()[0]
        still = con.execute("SELECT count(*) FROM documents WHERE source = ? AND account = ?",
                            (source, account)).fetchone()[0]
    assert left == 0 and still > 0, "out of the charts, still in the index until cleaned"
    status = cli(ws, "status", config=config)
    assert f"{source}/{account}" in status.stdout and "no extractor of this config names" in status.stdout
    assert cli(ws, "run", "--stage", "project").returncode == 0  # the full config projects it again
    with contextlib.closing(db(ws)) as con:
        assert con.execute("SELECT count(*) FROM client_links WHERE source = ? AND account = ?",
                           (source, account)).fetchone()[0] > 0


def test_removing_the_forms_api_extractor_keeps_the_sheet_copies_scores(built: Path, tmp_path: Path) -> None:
    """The Forms API account and the linked sheets carry copies of one submission: without the
    API extractor, its responses (still in the index) must not dispute the sheet copies."""
    ws = copy(built, tmp_path)
    cfg = dict(DEMO, extractors=[e for e in DEMO["extractors"] if e["name"] != "tap-forms--outcomes"])
    cfg["jobs"] = {k: [n for n in v if n != "tap-forms--outcomes"] for k, v in DEMO.get("jobs", {}).items()}
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    rejects = ws / "canonical" / "measures" / "scored.rejects.jsonl"
    codes = [orjson.loads(x)["reason"] for x in rejects.read_bytes().splitlines()] if rejects.exists() else []
    assert "COPIES_DISAGREE" not in codes
    scored = [orjson.loads(x) for x in (ws / "canonical" / "measures" / "scored.jsonl").read_bytes().splitlines()]
    assert scored and all(not m["source_id"].startswith("forms/") for m in scored)
    assert any("| " in p.read_text() for p in (ws / "clients").glob("*/measures.md"))


def test_clients_commands_and_query_by_client(built: Path) -> None:
    res = cli(built, "clients", "list", "--json")
    assert res.returncode == 0, res.stderr
    rows = [orjson.loads(line) for line in res.stdout.splitlines()]
    canary = next(r for r in rows if r["name"] == "Zebulon Canarywhistle")
    narrow = run_cli("clients", "list", "--workspace", str(built), env={**env(), "COLUMNS": "80"}, timeout=300)
    assert narrow.returncode == 0 and all(len(line) <= 80 for line in narrow.stdout.splitlines()), narrow.stdout
    assert all(r["client_id"] in narrow.stdout for r in rows), "an id is never cut at 80 columns"
    shown_narrow = run_cli("clients", "show", canary["client_id"], "--workspace", str(built),
                           env={**env(), "COLUMNS": "80"}, timeout=300)
    assert all(len(line) <= 80 for line in shown_narrow.stdout.splitlines()), shown_narrow.stdout
    res = cli(built, "clients", "show", "zebulon canarywhistle", "--json", "--limit", "0")
    shown = orjson.loads(res.stdout)
    assert shown["client_id"] == canary["client_id"] and len(shown["documents"]) == canary["documents"]
    assert {d["rule"] for d in shown["documents"]} >= {"source_ref", "email"}
    res = cli(built, "clients", "show", canary["client_id"][:6])
    assert res.returncode == 0 and "Canarywhistle, Zebulon" in res.stdout
    res = cli(built, "query", "--client", canary["client_id"], "--limit", "0", "--json")
    assert len(res.stdout.splitlines()) == canary["documents"]
    about = [line for line in res.stdout.splitlines()
             if orjson.loads(line)["kind"] != "measurement"]  # scores name no one
    assert all(canary["name"] in line or "canary" in line for line in about[:3])
    res = cli(built, "clients", "conflicts")
    assert res.returncode == 0 and "open conflict(s)" in res.stdout
    res = cli(built, "clients", "conflicts", "--json")
    conflicts = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert conflicts and all(isinstance(c["clients"], list) and len(c["clients"]) >= 2 and
                             isinstance(c["reviewed"], bool) for c in conflicts), conflicts[:1]
    res = cli(built, "clients", "unlinked", "--kind", "email", "--json")
    reasons = {orjson.loads(line)["reason"] for line in res.stdout.splitlines()}
    assert {"internal", "conflict", "no_match"} <= reasons
    for bad in (("clients", "show", "nobody at all"), ("query", "--client", "nobody")):
        res = cli(built, *bad)
        assert res.returncode == 2 and "no client matches" in res.stderr


def test_a_client_filter_reads_the_client_s_links_not_every_document(built: Path) -> None:
    """`query --client` and ranked queries find the client's documents through its links
    (one key look-up each): the plan never scans the documents table."""
    from engine.index.query import Query, build_sql, filter_clauses

    with contextlib.closing(db(built)) as con:
        cid = con.execute("SELECT client_id FROM clients ORDER BY documents DESC LIMIT 1").fetchone()[0]
        want = {r[0] for r in con.execute(
            "SELECT d.doc_id FROM documents d JOIN client_links l ON l.entity_id = d.entity_id AND l.kind = d.kind "
            "AND l.source = d.source AND l.account = d.account WHERE l.client_id = ?", (cid,))}
        where, params = filter_clauses(Query(client_id=cid))
        sql = f"SELECT d.doc_id FROM documents d WHERE {' AND '.join(where)}"
        assert {r[0] for r in con.execute(sql, params)} == want and want
        for query_sql, query_params in ((sql, params), build_sql(Query(client_id=cid, limit=5))):
            plan = " | ".join(r[3] for r in con.execute(f"EXPLAIN QUERY PLAN {query_sql}", query_params))
            assert "SCAN d" not in plan and "SEARCH l" in plan, plan


def test_long_lists_are_plain_lines_with_every_row(built: Path) -> None:
    """Above LORCH_RICH_TABLE_ROWS rows `clients list`, `clients unlinked` and `query` print
    plain aligned lines (lorch_tui/bigtable.py): into a pipe one line per row, in the order
    and with the values of their --json output."""
    few = env(LORCH_RICH_TABLE_ROWS="3")
    cases = [
        (("clients", "list"), lambda r: [r["client_id"], r["sort_name"], r["folder"]]),
        (("clients", "unlinked"), lambda u: [f"{u['source']}:{u['account']}:{u['kind']}:{u['entity_id']}",
                                             u["reason"]]),
        (("query", "--limit", "0", "--kind", "email"), lambda d: [d["kind"], d["account"], d["source_id"]]),
    ]
    for args, values in cases:
        items = [orjson.loads(line) for line in cli(built, *args, "--json").stdout.splitlines()]
        res = run_cli(*args, "--workspace", str(built), env=few, timeout=300)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert len(items) > 3 and set(lines[1]) == {"-", " "} and "│" not in res.stdout, args
        body = lines[2:2 + len(items)]
        for item, line in zip(items, body, strict=True):
            assert all(clean(v) in line for v in values(item)), (args, line)
        assert lines[2 + len(items)].startswith(str(len(items))), lines[2 + len(items):]


def test_events_logs_and_history_carry_no_phi(built: Path) -> None:
    events = [e for e in log_events(built) if e.get("stage") == "project"]
    assert {e["type"] for e in events} >= {"task_queued", "task_started", "task_finished"}
    text = b"".join(p.read_bytes() for p in (built / "logs").iterdir())
    state = sqlite3.connect(built / "state" / "lorch.sqlite")
    dump = "\n".join(state.iterdump())
    state.close()
    for canary in CANARIES:
        assert canary.encode() not in text and canary not in dump
    charts = b"".join(p.read_bytes() for p in (built / "clients").rglob("*.md"))
    assert b"Zebulon Canarywhistle" in charts, "the charts do hold PHI: the check is not vacuous"


def test_project_without_a_clients_section_is_a_usage_error(tmp_path: Path) -> None:
    cfg = {k: v for k, v in DEMO.items() if k != "clients"}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = cli(tmp_path / "ws", "run", "--stage", "project", "--dry-run", config=config)
    assert res.returncode == 2 and "clients" in res.stderr
    res = cli(tmp_path / "ws", "run", "--dry-run", config=config)
    assert res.returncode == 0 and "stages extract, canonize, index\n" in res.stdout
    assert "then project" not in res.stdout


@pytest.mark.timeout(240)
def test_kill_during_project_leaves_old_or_new_charts(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    before = {k: v[0] for k, v in snapshot(ws).items()}
    con = db(ws)
    (a,) = con.execute("SELECT client_id FROM clients ORDER BY client_id LIMIT 1").fetchone()
    con.close()
    overrides = tmp_path / "o.yaml"
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients={**DEMO["clients"], "overrides": str(overrides)})))
    killed = 0
    for n in range(8):
        # a new override each round: the next run must really rewrite a chart
        overrides.write_text(yaml.safe_dump({"link": [{"document": f"x:y:z:{n}", "client": a}],
                                             "ignore": [f"nobody{n}@example.invalid"]}))
        proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "run", "--stage", "project",
                                 "--force", "--workspace", str(ws), "--config", str(config)],
                                env=env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worker = wait_for(lambda p=proc.pid: _worker_of(p), 60, "the project worker")
        time.sleep(0.08 * n)
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)  # the worker itself: no clean-up of any kind
        rc = proc.wait(timeout=60)
        assert rc in (0, 1)
        killed += rc == 1
        for folder in (ws / "clients").iterdir():
            if folder.name.startswith("."):
                continue
            files = {f.name: f.read_bytes() for f in folder.iterdir()}
            assert sorted(files) == ["billing.md", "client.md", "measures.md", "sessions.md",
                                                        "timeline.md"], folder
    assert killed >= 3, "most rounds must kill the worker mid-run, or this proves little"
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not [p for p in (ws / "clients").iterdir() if p.name.startswith(".")]
    after = {k: v[0] for k, v in snapshot(ws).items()}
    assert set(after) == set(before)


@pytest.mark.timeout(240)
def test_a_killed_measurements_load_fails_the_task_and_the_next_run_projects_again(built: Path,
                                                                                   tmp_path: Path) -> None:
    """The measurements' load runs in a process of its own beside the tables and charts.
    Killed (out of memory, say), the task fails WORKER_CRASHED and does not mark the charts
    done, so the next run, without --force, projects again instead of skipping, and the
    measurements are indexed; the next projection's doc_id mark covers them."""
    ws = copy(built, tmp_path)
    conn = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    measured = conn.execute("SELECT count(*) FROM documents WHERE source = 'measures'").fetchone()[0]
    conn.execute("DELETE FROM accounts WHERE source = 'measures'")  # the measurements are indexed again
    conn.commit()
    conn.close()
    assert measured > 0
    out = tmp_path / "events.jsonl"
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "run", "--stage", "project", "--force",
                                 "--json", "--workspace", str(ws), "--demo"],
                                env=env(), cwd=REPO, stdout=fh, stderr=subprocess.DEVNULL)
        load = wait_for(lambda: _load_of(ws), 120, "the measurements' load")
        os.kill(load, signal.SIGKILL)
        assert proc.wait(timeout=120) == 1
    events = [orjson.loads(line) for line in out.read_bytes().splitlines() if line.startswith(b"{")]
    (done,) = [e for e in events if e["type"] == "task_finished" and e["stage"] == "project"]
    assert (done["status"], done["error_code"]) == ("failed", "WORKER_CRASHED")
    con = db(ws)
    assert con.execute("SELECT value FROM clients_meta WHERE key = 'charts_done'").fetchone() != ("1",)
    con.close()
    res = run_cli("run", "--stage", "project", "--json", "--workspace", str(ws), "--demo", env=env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    events = [orjson.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    (done,) = [e for e in events if e["type"] == "task_finished" and e["stage"] == "project"]
    assert done["status"] == "success", "not skipped: the last projection was not done"
    con = db(ws)
    assert con.execute("SELECT count(*) FROM documents WHERE source = 'measures'").fetchone()[0] == measured
    assert con.execute("SELECT 1 FROM accounts WHERE source = 'measures'").fetchone() is not None
    meta = dict(con.execute("SELECT key, value FROM clients_meta"))
    top = con.execute("SELECT max(doc_id) FROM documents").fetchone()[0]
    con.close()
    assert meta["charts_done"] == "1"
    assert int(meta["doc_id_mark"]) == top, "the mark is taken after the measurements' load committed"


def _load_of(ws: Path) -> int | None:
    """The pid of the measurements' load child (``python -m engine.measures.load WS ...``)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"engine.measures.load" in cmd and str(ws).encode() in cmd:
            return int(name)
    return None


def _worker_of(parent: int) -> int | None:
    """The pid of the engine.run.worker child of ``parent``, if it is running."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"engine.run.worker" in cmd:
            return int(name)
    return None


def test_clean_project_then_project_rebuilds_the_same_charts(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    before = {k: v[0] for k, v in snapshot(ws).items()}
    left = [ws / "vector-store" / f".project-scratch.sqlite{s}" for s in ("", "-kept", "-scores", "-part")]
    for p in left:  # what a killed project task leaves
        p.write_bytes(b"facts of documents")
    res = cli(ws, "clean", "--stage", "project", "--yes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not list((ws / "clients").iterdir())
    assert not [p for p in left if p.exists()], "a killed project task's scratch files are cleaned too"
    assert (ws / "vector-store" / "index.sqlite").is_file(), "the index stays"
    res = cli(ws, "run", "--stage", "project")
    assert res.returncode == 0 and "project:clients success" in res.stdout + res.stderr
    after = {k: v[0] for k, v in snapshot(ws).items()}
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in after if not k.endswith("client.md"))


def test_validate_checks_the_clients_section(tmp_path: Path) -> None:
    overrides = tmp_path / "o.yaml"
    overrides.write_text("apart: [[just-one]]\n")
    cfg = dict(DEMO, clients={**DEMO["clients"], "overrides": str(overrides), "sources": ["nowhere"]})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    res = cli(tmp_path / "ws", "validate", "--skip-permissions", config=config)
    assert res.returncode == 2, res.stdout
    assert "no extractor has this source" in res.stdout and "o.yaml: apart" in res.stdout
    overrides.write_text("apart: [[aaaa, bbbb]]\n")
    overrides.chmod(0o600)
    res = cli(tmp_path / "ws", "validate", "--skip-permissions", config=config)
    assert res.returncode == 0 and "0 merge, 1 apart" in res.stdout and "readable by others" not in res.stdout
    overrides.chmod(0o644)
    res = cli(tmp_path / "ws", "validate", "--skip-permissions", config=config)
    assert res.returncode == 0 and "readable by others: chmod 600 it" in res.stdout


def test_documents_in_force_are_the_index_s_even_when_canonical_moved_on(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    con = db(ws)
    before = sorted(con.execute("SELECT * FROM client_links").fetchall())
    con.close()
    meta = ws / "canonical" / "gmail" / "acct1-personal.meta.json"
    doc = orjson.loads(meta.read_bytes())
    doc["output"]["sha256"] = "0" * 64  # canonize published a newer file that index never took
    meta.write_bytes(orjson.dumps(doc))
    data = ws / "canonical" / "gmail" / "acct1-personal.jsonl"
    data.write_bytes(b"")  # and its lines are gone: the index's objects must be read instead
    res = cli(ws, "run", "--stage", "project", "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    con = db(ws)
    assert sorted(con.execute("SELECT * FROM client_links").fetchall()) == before
    con.close()


def test_two_systems_of_record_conflict_and_get_merge_suggestions(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    clients = {k: v for k, v in DEMO["clients"].items() if k != "where"}  # both Dataverse accounts
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients=clients)))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0 and "CLIENT_CONFLICTS" in res.stdout + res.stderr
    con = db(ws)
    n = con.execute("SELECT count(*) FROM clients").fetchone()[0]
    assert n == 2 * (RECORDS * 40 // 100)
    con.close()
    res = cli(ws, "clients", "conflicts", config=config)
    assert res.returncode == 0 and "merge:" in res.stdout
    pairs = [line for line in res.stdout.splitlines() if line.startswith("  - [")]
    assert len(pairs) >= RECORDS * 40 // 100 - 3, "nearly every person is suggested as one merge"


def test_timelines_show_the_indexed_time_and_title_of_every_linked_document(built: Path) -> None:
    """The project task reads times and titles after resolving (linked documents only):
    each timeline row of a sample of clients carries its document's indexed date and title."""
    from engine.clients.markdown import Dates, _cell
    con = db(built)
    folders = dict(con.execute("SELECT client_id, folder FROM clients ORDER BY client_id LIMIT 25"))
    checked = 0
    for client, folder in folders.items():
        timeline = (built / "clients" / folder / "timeline.md").read_text()
        for kind, source, account, entity, when, title in con.execute(
                "SELECT DISTINCT l.kind, l.source, l.account, l.entity_id, d.time, d.title "
                "FROM client_links l JOIN documents d ON d.entity_id = l.entity_id AND "
                "d.kind = l.kind AND d.source = l.source AND d.account = l.account "
                "WHERE l.client_id = ? AND l.source != 'measures'", (client,)):
            row = next(line for line in timeline.splitlines()
                       if line.endswith(f"| `{source}:{account}:{kind}:{entity}` |"))
            assert row.startswith(f"| {_cell(Dates().show(when))} | {kind} |"), row
            assert f"| {_cell(title)} | {source}/{account} |" in row, row
            checked += 1
    con.close()
    assert checked > 100


def test_project_reports_each_phase_and_its_links(built: Path, tmp_path: Path) -> None:
    """The project task's progress names its phase (read, resolve, measures, tables, charts,
    then index-measures: the measurements' load runs beside the tables and charts and is
    waited for last), each reported once it starts and in that order, counting that phase's
    items; its final event counts every link, as the tables do."""
    ws = copy(built, tmp_path)
    conn = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    conn.execute("DELETE FROM accounts WHERE source = 'measures'")  # the measurements are indexed again
    conn.commit()
    conn.close()
    res = run_cli("run", "--stage", "project", "--force", "--json", "--workspace", str(ws), "--demo",
                  env=env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    events = [orjson.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    progress = [e for e in events if e["type"] == "task_progress" and e["stage"] == "project"]
    phases = [e.get("phase") for e in progress]
    order = ["read", "resolve", "measures", "tables", "charts", "index-measures"]
    assert set(phases) == set(order), "every phase is reported"
    assert phases == sorted(phases, key=order.index), "no phase comes back once another began"
    assert all(e.get("total") is None or 0 <= e["records"] <= e["total"] for e in progress)
    conn = db(ws)
    documents = conn.execute("SELECT count(*) FROM documents WHERE source != 'measures'").fetchone()[0]
    links = conn.execute("SELECT count(*) FROM client_links").fetchone()[0]
    folders = conn.execute("SELECT count(*) FROM clients").fetchone()[0]
    measurements = conn.execute("SELECT count(*) FROM documents WHERE source = 'measures'").fetchone()[0]
    conn.close()
    indexed = [e for e in progress if e["phase"] == "index-measures"][-1]
    assert indexed["records"] == indexed["total"] == measurements > 0, "the measurements' load reports its lines"
    assert {e.get("total") for e in progress if e["phase"] in ("read", "resolve")} - {None} == {documents}
    last_chart = [e for e in progress if e["phase"] == "charts"][-1]
    assert last_chart["records"] == last_chart["total"] == folders
    finished = next(e for e in events if e["type"] == "task_finished" and e["stage"] == "project")
    assert finished["status"] == "success" and finished["records"] == links > 0


def test_a_where_that_matches_no_contact_fails_and_keeps_every_chart(built: Path, tmp_path: Path) -> None:
    """A typo in clients.where (a path no contact has) would make zero clients and delete
    every chart: the task fails with NO_CLIENTS instead, before it replaces anything."""
    ws = copy(built, tmp_path)
    before = sorted(p.relative_to(ws).as_posix() for p in (ws / "clients").rglob("*") if p.is_file())
    con = db(ws)
    tables = con.execute("SELECT count(*) FROM clients").fetchone()[0], \
        con.execute("SELECT count(*) FROM client_links").fetchone()[0]
    con.close()
    clients = dict(DEMO["clients"], where={"accountt": "mensio"})
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients=clients)))
    res = cli(ws, "run", "--stage", "project", "--force", config=config)
    assert res.returncode == 1, res.stdout + res.stderr
    (done,) = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "project"][-1:]
    assert (done["status"], done["error_code"]) == ("failed", "NO_CLIENTS")
    after = sorted(p.relative_to(ws).as_posix() for p in (ws / "clients").rglob("*") if p.is_file())
    assert after == before and len(before) > 0
    con = db(ws)
    assert (con.execute("SELECT count(*) FROM clients").fetchone()[0],
            con.execute("SELECT count(*) FROM client_links").fetchone()[0]) == tables
    con.close()
    assert cli(ws, "run", "--stage", "project", "--force").returncode == 0  # the right config projects


def test_sources_that_now_give_no_contact_keep_every_chart_until_cleaned(built: Path, tmp_path: Path) -> None:
    """The system of record syncs an empty result (an expired permission): zero clients
    would delete every chart. NO_CLIENTS keeps them, with a detail file saying why and what
    to do; after `clean --stage project` (nothing left to keep) zero clients is accepted."""
    ws = copy(built, tmp_path)
    before = sorted(p.relative_to(ws).as_posix() for p in (ws / "clients").rglob("*") if p.is_file())
    clients = dict(DEMO["clients"], sources=["nosuchsource"])
    config = tmp_path / "empty.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients=clients)))
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 1, res.stdout + res.stderr
    (done,) = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "project"][-1:]
    assert (done["status"], done["error_code"]) == ("failed", "NO_CLIENTS")
    assert "clean --stage project" in Path(done["detail_path"]).read_text()
    assert sorted(p.relative_to(ws).as_posix() for p in (ws / "clients").rglob("*") if p.is_file()) == before
    assert cli(ws, "clean", "--stage", "project", "--yes", config=config).returncode == 0
    res = cli(ws, "run", "--stage", "project", config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    with contextlib.closing(db(ws)) as con:
        assert con.execute("SELECT count(*) FROM clients").fetchone()[0] == 0


def test_a_chart_write_that_fails_says_which_file_in_the_workspace(built: Path, tmp_path: Path) -> None:
    """The chart root is a file, so no chart can be written: the task fails WRITE_FAILED and
    its detail_path (in the workspace) names the operation and the path."""
    ws = copy(built, tmp_path)
    shutil.rmtree(ws / "clients")
    (ws / "clients").write_bytes(b"not a folder")
    (ws / "clients").chmod(0o600)
    res = cli(ws, "run", "--stage", "project", "--force")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stdout + res.stderr
    (done,) = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "project"][-1:]
    assert (done["status"], done["error_code"]) == ("failed", "WRITE_FAILED")
    detail = Path(done["detail_path"])
    assert detail.is_relative_to(ws / "diagnostics") and (detail.stat().st_mode & 0o077) == 0
    text = detail.read_text()
    assert text.startswith("WRITE_FAILED: ENOTDIR (") and str(ws / "clients") in text


def test_a_measure_file_that_does_not_load_fails_and_keeps_every_score(built: Path, tmp_path: Path) -> None:
    """A typo in a measure file would leave that measure out and take its scores out of every
    chart: the task fails MEASURES_INVALID instead, before it replaces anything."""
    from engine.measures.registry import BUNDLED_MEASURES

    ws = copy(built, tmp_path)
    before = {p.relative_to(ws).as_posix(): p.read_bytes() for p in (ws / "clients").rglob("*.md")}
    assert any(name.endswith("measures.md") for name in before)
    folder = tmp_path / "measures"
    shutil.copytree(BUNDLED_MEASURES, folder)
    phq = folder / "phq9.v1.yaml"
    phq.write_text(phq.read_text().replace("max_missing: 1", "max_missing: one"))
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump(dict(DEMO, clients=dict(DEMO["clients"], measures=str(folder)))))
    res = cli(ws, "run", "--stage", "project", "--force", config=config)
    assert res.returncode == 1, res.stdout + res.stderr
    (done,) = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "project"][-1:]
    assert (done["status"], done["error_code"]) == ("failed", "MEASURES_INVALID")
    assert "phq9.v1.yaml" in Path(done["detail_path"]).read_text()
    after = {p.relative_to(ws).as_posix(): p.read_bytes() for p in (ws / "clients").rglob("*.md")}
    assert after == before


def test_project_force_rewrites_a_missing_or_damaged_measurement_object(built: Path, tmp_path: Path) -> None:
    """The measurements are indexed by the project stage (source measures), which index --force
    never loads: run --stage project --force re-checks their objects and rewrites them."""
    import hashlib

    ws = copy(built, tmp_path)
    con = db(ws)
    shas = [r[0] for r in con.execute("SELECT sha256 FROM documents WHERE source = 'measures' LIMIT 2")]
    con.close()
    assert len(shas) == 2
    objects = [ws / "vector-store" / "objects" / s[:2] / s[2:4] / f"{s}.json" for s in shas]
    objects[0].unlink()
    objects[1].write_bytes(b"{}")
    res = cli(ws, "run", "--stage", "project", "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    for sha, path in zip(shas, objects, strict=True):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


def test_status_says_when_the_chart_folders_are_incomplete(built: Path, tmp_path: Path) -> None:
    """The chart folders are swapped one by one: a projection stopped while writing them left
    a mix of old and new folders while `status` said nothing (the tables were new)."""
    ws = copy(built, tmp_path)
    assert "charts: incomplete" not in cli(ws, "status").stdout
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    with con:  # what a kill between the tables' commit and the last folder's swap leaves
        con.execute("UPDATE clients_meta SET value = '0' WHERE key = 'charts_done'")
    con.close()
    status = cli(ws, "status")
    assert status.returncode == 0 and "charts: incomplete" in status.stdout, status.stdout
    assert "lorchestra run --stage project" in status.stdout
    assert cli(ws, "run", "--stage", "project").returncode == 0  # sees charts_done 0: does the work again
    assert "charts: incomplete" not in cli(ws, "status").stdout


def test_status_counts_clients_whose_chart_folder_was_removed(built: Path, tmp_path: Path) -> None:
    """A chart folder removed by hand (or left out of a restore): `status` said nothing, and
    the next run writes it again (the projection is not skipped for it)."""
    import json
    import shutil

    ws = copy(built, tmp_path)
    status = cli(ws, "status", "--json")
    assert json.loads(status.stdout)["clients"]["charts_missing"] == 0
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    folders = [f for (f,) in con.execute("SELECT folder FROM clients ORDER BY client_id LIMIT 2")]
    con.close()
    for f in folders:
        shutil.rmtree(ws / "clients" / f)
    assert json.loads(cli(ws, "status", "--json").stdout)["clients"]["charts_missing"] == 2
    text = cli(ws, "status").stdout
    assert "charts: 2 client(s) without a chart folder" in text and "lorchestra run --stage project" in text
    assert all(f not in text for f in folders)  # a folder's name is a client's name: never printed
    assert cli(ws, "run", "--stage", "project").returncode == 0
    assert all((ws / "clients" / f / "client.md").is_file() for f in folders)
    assert json.loads(cli(ws, "status", "--json").stdout)["clients"]["charts_missing"] == 0


def test_the_project_task_has_a_wall_clock_and_a_memory_cap_of_its_own(built: Path, tmp_path: Path) -> None:
    """Issue 21: every stage's task has a wall-clock limit and a memory cap. The project task
    had neither (there was no `stages.project`): past its `timeout_s` it is stopped, marked
    `timeout`, and the client tables and charts stay as they were."""
    ws = copy(built, tmp_path)
    before = snapshot(ws)
    cfg = {**DEMO, "workspace": str(ws),
           "stages": {**DEMO.get("stages", {}), "project": {"timeout_s": 0.2, "memory_limit_mb": 4096}}}
    cfg["clients"] = {**DEMO["clients"], "overrides": str(REPO / "config" / DEMO["clients"]["overrides"])}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = cli(ws, "run", "--stage", "project", "--force", config=path)
    assert res.returncode == 1, res.stdout + res.stderr
    (final,) = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "project"
                and e.get("status") == "timeout"]
    assert final["error_code"] == "TIMEOUT"
    assert snapshot(ws) == before, "a stopped projection leaves every chart as it was"
    from engine.config.load import load_file
    from engine.limits import task_limits

    limits = task_limits(load_file(path), "project")
    assert (limits.timeout_s, limits.memory_limit_mb) == (0.2, 4096)
    default = task_limits(load_file(REPO / "config" / "demo.yaml"), "project")
    assert (default.timeout_s, default.memory_limit_mb) == (14400, 8192)
