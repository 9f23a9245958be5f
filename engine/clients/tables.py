"""The client tables in the index database, and the reads the commands make of them.

The project stage replaces every client table in one transaction, so a reader (``clients``,
``query --client``, the dashboard's counts) sees the whole old projection or the whole new
one. The tables carry their own schema version in ``clients_meta`` (the index's
``user_version`` stays the index's): a different version is dropped and rebuilt, since
everything here is derived from the documents and the overrides; all but the pins
(``client_override_pins``: what each override was first applied to), which are the memory of
the operator's decisions and are kept through a rebuild.

Documents are named by the index's identity (source, account, kind, entity_id), which
survives re-indexing, rather than by ``doc_id``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from engine.clients import moved
from engine.clients.model import Projection

CLIENTS_SCHEMA_VERSION = 1
"""Version of the tables below (``clients_meta.schema_version``)."""

TABLES = ("clients", "client_keys", "client_links", "client_conflicts", "client_unlinked",
          "client_override_pins", "clients_meta")

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clients (
    client_id  TEXT PRIMARY KEY,
    name       TEXT,
    sort_name  TEXT NOT NULL,
    folder     TEXT NOT NULL,
    source     TEXT NOT NULL,
    account    TEXT NOT NULL,
    entity_id  TEXT NOT NULL,
    birth_date TEXT,
    merged     TEXT NOT NULL,
    documents  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_keys (
    client_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    shared    INTEGER NOT NULL,
    PRIMARY KEY (client_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS client_keys_key ON client_keys (key);
CREATE TABLE IF NOT EXISTS client_links (
    client_id TEXT NOT NULL,
    source    TEXT NOT NULL,
    account   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    rule      TEXT NOT NULL,
    direction TEXT,
    via       TEXT NOT NULL,
    PRIMARY KEY (client_id, source, account, kind, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS client_links_doc ON client_links (entity_id, kind, source, account);
CREATE TABLE IF NOT EXISTS client_conflicts (
    key       TEXT PRIMARY KEY,
    clients   TEXT NOT NULL,
    documents INTEGER NOT NULL,
    reviewed  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_unlinked (
    source    TEXT NOT NULL,
    account   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL,
    PRIMARY KEY (source, account, kind, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_override_pins (
    document TEXT NOT NULL,
    client   TEXT NOT NULL,
    identity TEXT NOT NULL,
    PRIMARY KEY (document, client)
) WITHOUT ROWID;
"""
"""``clients`` (one row per client; ``folder`` is its chart folder), ``client_keys`` (its
normalised keys; ``shared`` when another client holds the key too), ``client_links``
(document -> client with ``rule``, ``direction`` and the key or reference ``via``),
``client_conflicts`` (keys several clients hold; ``reviewed`` by an ``apart`` override),
``client_unlinked`` (documents linked to no one, with ``reason``), ``client_override_pins``
(the identity each ``link:`` override without ``sha256`` was first applied to; ``client`` is
"" for a link to no one: :func:`engine.clients.decide.identity`) and ``clients_meta``
(``schema_version``, ``inputs_sha256``, ``projected_at``, ``charts_done``, the measures'
totals and the tables' ``count_*`` totals)."""


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables (inside the caller's transaction); rebuild another version's."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='clients_meta'").fetchone()
    if has_meta:
        row = conn.execute("SELECT value FROM clients_meta WHERE key='schema_version'").fetchone()
        if row is None or row[0] != str(CLIENTS_SCHEMA_VERSION):
            pins = _pin_rows(conn)  # forgetting them would let a restored link hold for anyone
            for table in TABLES:
                _drop(conn, table)
            _create(conn)
            conn.executemany("INSERT OR IGNORE INTO client_override_pins VALUES (?,?,?)", pins)
    _create(conn)
    conn.execute("INSERT OR REPLACE INTO clients_meta VALUES ('schema_version', ?)",
                 (str(CLIENTS_SCHEMA_VERSION),))


def _drop(conn: sqlite3.Connection, table: str) -> None:
    """Drop ``table``, emptied first: a DROP TABLE of a million links inside the tables'
    transaction took 240 MiB of SQLite's memory (the writer's temporary files are kept in
    memory), its DELETE without a WHERE a few (docs/performance.md)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if exists:
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - one of TABLES
        conn.execute(f"DROP TABLE {table}")


def _create(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _pin_rows(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    try:
        return [(str(d), str(c), str(s)) for d, c, s in
                conn.execute("SELECT document, client, identity FROM client_override_pins")]
    except sqlite3.Error:  # none yet, or not in a shape this version reads
        return []


def forget_pins(conn: sqlite3.Connection, refs: list[str]) -> tuple[dict[str, int], list[str]]:
    """Forget the stored pins of ``refs`` (a document as ``source:account:kind:source_id``, its
    pins for every client; ``client:ID`` for a client's), inside the caller's transaction:
    the pins forgotten per reference, and the references that had none. The stored fingerprint
    is dropped so the next projection runs (and pins the links anew) even when nothing else
    changed. `lorchestra clients repin` (besides `clean --stage index`, which deletes them all)."""
    forgotten: dict[str, int] = {}
    missing: list[str] = []
    for ref in dict.fromkeys(refs):
        n = conn.execute("DELETE FROM client_override_pins WHERE document = ?", (ref,)).rowcount
        if n:
            forgotten[ref] = n
        else:
            missing.append(ref)
    if forgotten:
        conn.execute("DELETE FROM clients_meta WHERE key = 'inputs_sha256'")
    return forgotten, missing


def write_projection(conn: sqlite3.Connection, p: Projection, inputs_sha256: str,
                     projected_at: str, scratch: str | None = None) -> None:
    """Replace every client table with ``p`` (inside the caller's transaction).

    ``scratch`` names the attached scratch database of a streamed projection
    (:mod:`engine.clients.stream`): its ``links`` and ``unlinked`` rows are copied by SQL.
    ``charts_done`` is reset: the stage sets it once the chart folders match these rows. The
    stored counts are dropped: :func:`store_counts` sets them once the measurement links are
    in too (until then :func:`counts` counts).
    """
    ensure_schema(conn)
    _forget_counts(conn)
    for table in TABLES[:-1]:
        conn.execute(f"DELETE FROM {table}")
    if p.streamed is not None:
        per_client = p.streamed.per_client
    else:
        per_client = {}
        for link in p.links:
            per_client[link.client_id] = per_client.get(link.client_id, 0) + 1
    shared = {c.key for c in p.conflicts}
    conn.executemany("INSERT INTO clients VALUES (?,?,?,?,?,?,?,?,?,?)", [
        (c.client_id, c.card.name, c.card.sort_name, c.folder, c.home.source, c.home.account,
         c.home.entity_id, c.card.birth_date, ",".join(c.merged), per_client.get(c.client_id, 0))
        for c in p.clients.values()])
    conn.executemany("INSERT INTO client_keys VALUES (?,?,?,?)", [
        (c.client_id, k, k.split(":", 1)[0], int(k in shared))
        for c in p.clients.values() for k in sorted(c.keys)])
    if scratch is not None:
        conn.execute(f"INSERT OR IGNORE INTO client_links SELECT * FROM {scratch}.links")  # noqa: S608
    conn.executemany("INSERT OR IGNORE INTO client_links VALUES (?,?,?,?,?,?,?,?)", [
        (lk.client_id, *lk.doc, lk.rule, lk.direction, lk.via) for lk in p.links])
    conn.executemany("INSERT INTO client_conflicts VALUES (?,?,?,?)", [
        (c.key, ",".join(c.clients), c.documents, int(c.reviewed)) for c in p.conflicts])
    if scratch is not None:
        # OR IGNORE: a statement that cannot abort needs no statement journal, which the
        # writer's temp_store = MEMORY kept in memory, a copy of every page it reused from
        # the rows deleted above (47 MiB of the project task's peak at 1,000,000 documents).
        # The scan decides each document once: there is no duplicate to ignore.
        conn.execute(f"INSERT OR IGNORE INTO client_unlinked SELECT * FROM {scratch}.unlinked")  # noqa: S608
    conn.executemany("INSERT INTO client_unlinked VALUES (?,?,?,?,?,?)", [
        (*u.doc, u.reason, u.detail) for u in p.unlinked])
    conn.executemany("INSERT INTO client_override_pins VALUES (?,?,?)",
                     [(d, c, s) for (d, c), s in sorted(p.override_pins.items())])
    set_meta(conn, inputs_sha256=inputs_sha256, projected_at=projected_at, charts_done="0",
             stale_overrides=orjson.dumps(sorted(set(p.stale))).decode(),
             unused_overrides=orjson.dumps(sorted(set(p.unused))).decode())


def set_meta(conn: sqlite3.Connection, **values: str) -> None:
    """Set ``clients_meta`` rows."""
    conn.executemany("INSERT OR REPLACE INTO clients_meta VALUES (?, ?)", list(values.items()))


def stale_overrides(conn: sqlite3.Connection, which: str = "stale_overrides") -> list[tuple[str, str]]:
    """(document or ``client:ID``, client or "") of the overrides the last projection did not
    apply as stale (none before this was stored); ``which="unused_overrides"``: those naming
    a document or client that is not there (``merge:ID``, ``apart:ID`` for those entries)."""
    raw = read_meta(conn).get(which)
    try:
        got = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        return []
    return [(str(d), str(c)) for d, c in got] if isinstance(got, list) else []


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """``clients_meta`` as a dict; empty when the stage never ran."""
    try:
        return dict(conn.execute("SELECT key, value FROM clients_meta").fetchall())
    except sqlite3.OperationalError:
        return {}


COUNTED = {
    "clients": "SELECT count(*) FROM clients",
    "links": "SELECT count(*) FROM client_links",
    "linked_documents": "SELECT count(*) FROM (SELECT DISTINCT entity_id, kind, source, account FROM client_links)",
    "conflicts": "SELECT count(*) FROM client_conflicts WHERE reviewed = 0",
    "unlinked": "SELECT count(*) FROM client_unlinked",
}
"""The totals ``status``, the dashboard and ``clients`` show, and how each is counted.

Counting links reads a table as large as the linked documents (a practice's history: about a
million rows, a second or more for the ``DISTINCT``), so the project stage counts once when it
writes the tables (:func:`store_counts`, kept in ``clients_meta`` as ``count_<name>``) and
:func:`counts` reads those rows; it counts itself only when they are missing (tables written
before they existed, or by hand)."""

COUNT_PREFIX = "count_"


def store_counts(conn: sqlite3.Connection) -> None:
    """Count the client tables into ``clients_meta`` (the last step of their write transaction)."""
    set_meta(conn, **{COUNT_PREFIX + name: str(n) for name, n in _count(conn).items()})


def _forget_counts(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM clients_meta WHERE substr(key, 1, ?) = ?", (len(COUNT_PREFIX), COUNT_PREFIX))


def _count(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: int(conn.execute(sql).fetchone()[0]) for name, sql in COUNTED.items()}


def _stored_counts(meta: dict[str, str]) -> dict[str, int] | None:
    try:
        return {name: int(meta[COUNT_PREFIX + name]) for name in COUNTED}
    except (KeyError, ValueError):
        return None


def counts(conn: sqlite3.Connection) -> dict[str, int] | None:
    """PHI-free totals (clients, links, open conflicts, unlinked), or None before any run.

    Read from the ``count_*`` rows the project stage stored (no table scan); counted when
    they are missing."""
    meta = read_meta(conn)
    if meta.get("schema_version") != str(CLIENTS_SCHEMA_VERSION):
        return None
    found = _stored_counts(meta)
    return {
        **(found if found is not None else _count(conn)),
        "measures_scored": int(meta.get("measures_scored") or 0),
        "measures_not_scored": int(meta.get("measures_not_scored") or 0),
        "measures_duplicates": int(meta.get("measures_duplicates") or 0),
        "measures_critical_unlinked": int(meta.get("measures_critical_unlinked") or 0),
        "moves_open": moved.open_count(meta),  # LINKS_MOVED not reviewed yet
        # 0 while (or after a projection stopped while) the chart folders are being written:
        # each folder is swapped on its own, so some may still be the previous run's
        "charts_complete": int(meta.get("charts_done", "1") == "1"),
    }


def rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a query as dicts."""
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
