"""Documents whose client changed since the previous projection: said, never silent.

A client's keys are its record's current ones, so the rules re-decide every document each
run. Most changes are wanted (a new contact record claims mail that was nobody's), but one
is the worst this layer can do: an address moved from one client's record to another's (a
household address re-entered on the partner's record, a typo corrected onto the wrong
person) takes the first client's past mail into the second one's chart, with exit 0. The
rules cannot tell that from a correction, so the projection reports it: each document that
left someone's chart for someone else's (a person it was linked to is not any more, and a
person it was not linked to is now) is counted (warning ``LINKS_MOVED``) and listed by
`lorchestra clients conflicts` and `lorchestra clients moved` (the first :data:`LISTED`),
where a ``link:`` override can put it back; it stays listed until reviewed (:func:`meta`).
A document that only lost a client (a mail to Ann and Bob now Ann's alone) or only gained
one (a new client's address on old mail) went nowhere new and is not counted.

"Person" is the client's folded name and birth date, not its id: a client id comes from its
record's id (a sheet row's number), so ids shift when a row above is deleted and the same
person's documents change id without moving. Under the same id, a record corrected in place
is the same person: the same name (a birth date added or fixed), or the same known birth
date and given name (a new family name); an unknown birth date or a shared one alone (twins)
excuses nothing (:func:`_same`). A client merged into another (an
override) is that other client, and a document a ``link:`` override decides moved by the
operator's word. A document linked to no one now is not counted (no chart holds it), nor
one whose own content changed since (:func:`snapshot`): its change may be the move's reason.
The ``doc_id`` mark is a hint, not proof: a load that removes an account's newest rows lets
a later load give those ids again (a changed document then passes as unchanged: a move
report too many), and a re-index that gives every row a new id (a new index field version)
reports no move that run.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson

from engine.clients import keys as K
from engine.store.fsutil import create_private

LISTED = 1000
"""Moved documents named in ``clients_meta.moved_links`` (all are counted)."""

_DOC = "source = o.source AND account = o.account AND kind = o.kind AND entity_id = o.entity_id"
_NDOC = "n.source = o.source AND n.account = o.account AND n.kind = o.kind AND n.entity_id = o.entity_id"


def moves_path(scratch: Path) -> Path:
    """The database of the comparison's own tables, beside the project's scratch database."""
    return scratch.with_name(scratch.name + "-moves")


@contextlib.contextmanager
def own_database(conn: sqlite3.Connection, scratch: Path) -> Iterator[str]:
    """A database of its own for :func:`snapshot` and :func:`find`, attached to ``conn`` as
    ``moves`` (0600 in the workspace: names and birth dates are PHI; no journal, no sync),
    detached and removed afterwards; enter it outside a transaction.

    Not the scratch database: this comparison writes inside the tables' transaction, and
    once its pages spill from the cache the writer holds the file's exclusive lock, so the
    measures' own connection to the scratch database (reading the measurement links in the
    same transaction) gave up after 5 s ("database is locked": every projection after the
    first failed ``INDEX_DB_ERROR`` at 2,000 demo records per account)."""
    path = moves_path(scratch)
    path.unlink(missing_ok=True)
    create_private(path)
    conn.execute("ATTACH DATABASE ? AS moves", (str(path),))
    try:
        for pragma in ("journal_mode = OFF", "synchronous = OFF"):
            conn.execute(f"PRAGMA moves.{pragma}")
        yield "moves"
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # never in place of the error that got here
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.execute("DETACH DATABASE moves")
        path.unlink(missing_ok=True)
        raise
    conn.execute("DETACH DATABASE moves")
    path.unlink(missing_ok=True)


def snapshot(conn: sqlite3.Connection, scratch: str) -> int | None:
    """The previous projection's links with their client's person, into the scratch database
    (before the tables are replaced, inside the same transaction; on disk, not in memory), and
    the largest ``doc_id`` the index had then (None before it was stored: nothing is compared).

    The index gives a document whose content changed a new ``doc_id`` above every earlier one
    (:mod:`engine.index.diff`), so a document at or below that mark is the very one the
    previous projection linked. One above it changed, and the change may be the move's reason
    (an invoice given to another customer) or another document in the same place (a sheet row
    renumbered onto the next person's): not counted."""
    raw = conn.execute("SELECT value FROM clients_meta WHERE key = 'doc_id_mark'").fetchone()
    conn.execute(f"DROP TABLE IF EXISTS {scratch}.old_links")
    conn.execute(f"CREATE TABLE {scratch}.old_links AS SELECT l.source, l.account, l.kind, "  # noqa: S608
                 "l.entity_id, l.client_id, c.name, c.birth_date FROM main.client_links l "
                 "JOIN main.clients c USING (client_id)")
    return int(raw[0]) if raw is not None and str(raw[0]).isdigit() else None


def find(conn: sqlite3.Connection, scratch: str, mark: int | None) -> list[tuple[str, str, str, list[str]]]:
    """(document, client before, its name then, clients now) of each document that moved to
    another person (the name kept: the id may be another person's now); read from the new
    tables (written in this transaction) against :func:`snapshot`."""
    if mark is None:
        conn.execute(f"DROP TABLE {scratch}.old_links")
        return []
    # on disk, not in memory: after a row near the top of a sheet of record is deleted, every
    # id shifts, and a link under another id of the very same name and birth date is no candidate
    conn.execute(f"DROP TABLE IF EXISTS {scratch}.moved_docs")
    conn.execute(
        f"CREATE TABLE {scratch}.moved_docs AS SELECT DISTINCT o.source, o.account, o.kind, o.entity_id "  # noqa: S608
        f"FROM {scratch}.old_links o "
        f"WHERE NOT EXISTS (SELECT 1 FROM main.client_links n JOIN main.clients c USING (client_id) "
        f"WHERE {_NDOC} AND c.name IS o.name AND c.birth_date IS o.birth_date) "
        f"AND EXISTS (SELECT 1 FROM main.client_links WHERE {_DOC}) "
        f"AND EXISTS (SELECT 1 FROM main.documents WHERE {_DOC} AND doc_id <= ?)", (mark,))
    if conn.execute(f"SELECT 1 FROM {scratch}.moved_docs LIMIT 1").fetchone():  # noqa: S608
        conn.execute(f"CREATE INDEX {scratch}.old_links_doc ON old_links (entity_id, kind, source, account)")
    moved: list[tuple[str, str, str, list[str]]] = []
    docs = conn.execute(f"SELECT source, account, kind, entity_id FROM {scratch}.moved_docs "  # noqa: S608
                        "ORDER BY source, account, kind, entity_id")
    for source, account, kind, entity_id in docs:
        where = (entity_id, kind, source, account)
        now = conn.execute(
            "SELECT l.client_id, c.name, c.birth_date, c.merged, l.rule FROM main.client_links l JOIN main.clients c "
            "USING (client_id) WHERE l.entity_id = ? AND l.kind = ? AND l.source = ? AND l.account = ?",
            where).fetchall()
        if any(rule == "override" for *_, rule in now):
            continue  # a link: override decides it: the operator's word
        old = conn.execute(f"SELECT client_id, name, birth_date FROM {scratch}.old_links WHERE entity_id = ? "  # noqa: S608
                           "AND kind = ? AND source = ? AND account = ?", where).fetchall()
        lost = [(oc, on, ob) for oc, on, ob in old
                if not any(_same(oc, on, ob, cid, n, b, m) for cid, n, b, m, _ in now)]
        gained = [cid for cid, n, b, m, _ in now if not any(_same(oc, on, ob, cid, n, b, m) for oc, on, ob in old)]
        if lost and gained:  # it left someone's chart for someone else's
            moved.append((f"{source}:{account}:{kind}:{entity_id}", lost[0][0], str(lost[0][1] or ""),
                          sorted(cid for cid, *_ in now)))
    conn.execute(f"DROP TABLE {scratch}.old_links")
    conn.execute(f"DROP TABLE {scratch}.moved_docs")
    return sorted(moved)


def _same(before: str, name: str | None, birth: str | None, cid: str, now_name: str | None,
          now_birth: str | None, merged: str | None) -> bool:
    """Whether the client ``cid`` a document is linked to now is the person ``before`` was:
    the same folded name and birth date (an id shifted with its sheet row); under the same id,
    a record corrected in place: the same name (a birth date added or fixed), or the same
    known birth date and given name (a new family name). A birth date unknown on either side
    excuses nothing (the next person's row often has none), nor does a shared one alone
    (twins). Or the client ``before`` was merged into."""
    if before in str(merged or "").split(","):
        return True
    folded, now_folded = K.name_text(name), K.name_text(now_name)
    if folded == now_folded and (cid == before or birth == now_birth):
        return True
    return (cid == before and birth is not None and birth == now_birth and folded is not None
            and now_folded is not None and folded.split()[:1] == now_folded.split()[:1])


Moved = tuple[str, str, str, list[str], str]
"""A listed move: document, client before, its name then, clients now, and the time of the
projection that found it."""


def meta(conn: sqlite3.Connection, moved: list[tuple[str, str, str, list[str]]]) -> dict[str, str]:
    """The ``clients_meta`` rows that keep this projection's count (``links_moved``, the
    warning), the moves still open (``moved_links``: the first :data:`LISTED`; ``moves_open``:
    all) and the index's largest ``doc_id`` now (the next projection's mark).

    Called after the new tables are written (same transaction). A move stays listed until it
    is reviewed (`lorchestra clients moved --reviewed THROUGH`), a ``link:`` override decides its
    document, its document's clients change again (a move again is listed anew) or the
    document is gone: a cron night's warning is not the only trace of a document that went
    to another person's chart."""
    top = conn.execute("SELECT coalesce(max(doc_id), 0) FROM main.documents").fetchone()[0]
    row = conn.execute("SELECT value FROM clients_meta WHERE key = 'projected_at'").fetchone()
    at = str(row[0]) if row else ""
    found = {m[0] for m in moved}
    old = conn.execute("SELECT value FROM clients_meta WHERE key = 'moved_links'").fetchone()
    kept = [m for m in listed(old[0] if old else None) if m[0] not in found and _still_open(conn, m)]
    entries: list[Moved] = [(*m, at) for m in moved] + kept
    return {"links_moved": str(len(moved)), "doc_id_mark": str(int(top)), "moves_open": str(len(entries)),
            "moved_links": orjson.dumps([list(m) for m in entries[:LISTED]]).decode()}


def mark_now(conn: sqlite3.Connection) -> dict[str, str]:
    """The ``doc_id_mark`` row again, of the index's largest ``doc_id`` now: the project task
    stores it once the measurements' load, which ran beside the tables
    (:mod:`engine.measures.load`), has committed, so the next projection's mark covers the
    measurements indexed in this run, as :func:`meta` does when they are loaded first."""
    top = conn.execute("SELECT coalesce(max(doc_id), 0) FROM main.documents").fetchone()[0]
    return {"doc_id_mark": str(int(top))}


def _still_open(conn: sqlite3.Connection, m: Moved) -> bool:
    """Whether a listed move's document is still linked to the very clients it moved to, and
    by the rules (a ``link:`` override is the operator's word on it)."""
    parts = m[0].split(":", 3)
    if len(parts) != 4:
        return False
    source, account, kind, entity_id = parts
    now = conn.execute("SELECT client_id, rule FROM main.client_links WHERE entity_id = ? AND kind = ? "
                       "AND source = ? AND account = ?", (entity_id, kind, source, account)).fetchall()
    return bool(now) and not any(rule == "override" for _, rule in now) and sorted(c for c, _ in now) == sorted(m[3])


def reviewed(conn: sqlite3.Connection, through: str) -> tuple[int, int]:
    """Forget the listed moves found by projections up to ``through`` (the newest ``since``
    the operator was shown: a projection that ran after they looked adds moves they have not
    seen, which stay); (forgotten, still listed)."""
    old = conn.execute("SELECT value FROM clients_meta WHERE key = 'moved_links'").fetchone()
    items = listed(old[0] if old else None)
    keep = [m for m in items if m[4] and m[4] > through]
    conn.executemany("INSERT OR REPLACE INTO clients_meta VALUES (?, ?)",
                     [("moved_links", orjson.dumps([list(m) for m in keep]).decode()),
                      ("moves_open", str(len(keep))), ("links_moved", "0")])
    return len(items) - len(keep), len(keep)


def newest(items: list[Moved]) -> str:
    """The newest ``since`` of listed moves (what ``--reviewed`` is given), "" for none."""
    return max((m[4] for m in items), default="")


def open_count(meta_rows: dict[str, str]) -> int:
    """Moves still open, from ``clients_meta`` (older tables: the last projection's count)."""
    for key in ("moves_open", "links_moved"):
        if str(meta_rows.get(key, "")).isdigit():
            return int(meta_rows[key])
    return len(listed(meta_rows.get("moved_links")))


def listed(raw: str | None) -> list[Moved]:
    """The moves still open (none before this was stored; a list of tables before moves were
    kept carries no time)."""
    try:
        got = orjson.loads(raw) if raw else []
    except orjson.JSONDecodeError:
        return []
    if not isinstance(got, list):
        return []
    if not all(isinstance(g, list) and len(g) in (4, 5) and isinstance(g[3], list) for g in got):
        return []
    return [(str(g[0]), str(g[1]), str(g[2]), [str(c) for c in g[3]], str(g[4]) if len(g) == 5 else "")
            for g in got]
