"""The client totals (``status``, the dashboard, ``clients``) are counted once, when the project
stage writes the tables, and read from ``clients_meta`` after that (issue 18: on a practice's
history the links table holds about a million rows; counting it on every ``lorchestra status``
cost a second or more).

Real SQLite files; the reads are observed with SQLite's own authorizer (every table a
statement reads) and progress handler (virtual machine steps), at N and 10N links.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.clients import tables
from engine.clients.model import Card, Client, Conflict, DocRef, Link, Projection, Unlinked
from engine.measures.step import MeasuresResult, link

CLIENT_TABLES = {"clients", "client_keys", "client_links", "client_conflicts", "client_unlinked"}


def projection(links: int) -> Projection:
    """Ten clients, ``links`` linked e-mails (a few sent to two clients), two conflicts (one
    reviewed), three unlinked documents."""
    clients = {}
    for i in range(10):
        cid = f"{i:016x}"
        clients[cid] = Client(cid, DocRef("dv", "a", "contact", cid), Card(f"Jane Doe{i}", "Jane", f"Doe{i}", None))
        clients[cid].folder = f"f{i}"
    ids = sorted(clients)
    out: list[Link] = []
    for n in range(links):
        ref = DocRef("gmail", "box", "email", f"m{n}")
        out.append(Link(ids[n % 10], ref, "email", "in", "email:x@example.org"))
        if n % 7 == 0:  # the same document linked to a second client
            out.append(Link(ids[(n + 1) % 10], ref, "email", "in", "email:y@example.org"))
    unlinked = [Unlinked(DocRef("gmail", "box", "email", f"u{n}"), "no_key", "") for n in range(3)]
    conflicts = [Conflict("phone:+1", (ids[0], ids[1]), reviewed=False),
                 Conflict("phone:+2", (ids[2], ids[3]), reviewed=True)]
    return Projection(clients, out, unlinked, conflicts, {})


def write(path: Path, links: int, *, stored: bool = True) -> sqlite3.Connection:
    """The project stage's write transaction: the tables, then (``stored``) the measures' link step."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    tables.write_projection(con, projection(links), "sha", "2026-01-01T00:00:00Z")
    if stored:
        link(con, MeasuresResult(scored=4, not_scored=1))
    con.execute("COMMIT")
    return con


def counted_by_sql(con: sqlite3.Connection) -> dict[str, int]:
    return {name: int(con.execute(sql).fetchone()[0]) for name, sql in tables.COUNTED.items()}


def reads_and_steps(con: sqlite3.Connection) -> tuple[set[str], int, dict[str, int] | None]:
    """Tables read and VM steps (in thousands) of one ``tables.counts`` call."""
    read: set[str] = set()
    steps = [0]

    def authorize(action: int, arg1: str | None, _arg2: str | None, _db: str | None, _trig: str | None) -> int:
        if action == sqlite3.SQLITE_READ and arg1:
            read.add(arg1)
        return sqlite3.SQLITE_OK

    def progress() -> int:
        steps[0] += 1
        return 0

    con.set_authorizer(authorize)
    con.set_progress_handler(progress, 1000)
    try:
        found = tables.counts(con)
    finally:
        con.set_authorizer(None)
        con.set_progress_handler(None, 0)
    return read, steps[0], found


def test_the_project_write_stores_totals_that_match_a_fresh_count(tmp_path: Path) -> None:
    con = write(tmp_path / "i.sqlite", 700)
    meta = tables.read_meta(con)
    expected = counted_by_sql(con)
    assert expected == {"clients": 10, "links": 800, "linked_documents": 700, "conflicts": 1, "unlinked": 3}
    assert {k: int(v) for k, v in meta.items() if k.startswith("count_")} == {
        f"count_{k}": v for k, v in expected.items()}
    assert tables.counts(con) == {**expected, "measures_scored": 4, "measures_not_scored": 1,
                                  "measures_duplicates": 0, "measures_critical_unlinked": 0, "moves_open": 0,
                                  "charts_complete": 0}  # written, charts not yet


def test_counts_read_no_client_table_and_cost_the_same_at_n_and_10n_links(tmp_path: Path) -> None:
    small = write(tmp_path / "small.sqlite", 2_000)
    large = write(tmp_path / "large.sqlite", 20_000)
    read_s, steps_s, found_s = reads_and_steps(small)
    read_l, steps_l, found_l = reads_and_steps(large)
    assert found_s is not None and found_l is not None
    assert (found_s["links"], found_l["links"]) == (2_286, 22_858)
    assert read_s & CLIENT_TABLES == set() and read_l & CLIENT_TABLES == set(), (read_s, read_l)
    assert read_l == {"clients_meta"}
    assert steps_l == steps_s  # no step grows with the links (counting 20,000 links: dozens)


def test_without_stored_totals_counts_still_counts(tmp_path: Path) -> None:
    """Tables written before the totals existed, or a write that did not reach the link step:
    the totals are counted (and a stale stored total never survives a new projection)."""
    con = write(tmp_path / "i.sqlite", 2_000)
    assert tables.counts(con) is not None
    con.execute("BEGIN IMMEDIATE")
    tables.write_projection(con, projection(500), "sha2", "2026-01-02T00:00:00Z")
    con.execute("COMMIT")
    assert not [k for k in tables.read_meta(con) if k.startswith("count_")]
    read, steps, found = reads_and_steps(con)
    assert found is not None and found["links"] == 572 and found["linked_documents"] == 500
    assert "client_links" in read and steps > 0
    con.execute("UPDATE clients_meta SET value = 'x' WHERE key = 'schema_version'")
    assert tables.counts(con) is None
