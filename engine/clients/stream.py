"""The streaming resolver: every document's facts on disk, so the project task's memory stays flat.

Holding every document's facts (about 0.8 KiB each) made the project task grow with the
index: 1.2 GiB at 933,000 documents. Here the facts go to a scratch SQLite database inside
the workspace (``vector-store/.project-scratch.sqlite``, 0600, no journal, removed when the
task ends and at the start of the next one), and the decisions are made by one ordered scan
of it:

1. **Reduce** (:meth:`Scratch.add`): each document becomes a row ``(account number, kind,
   entity_id, facts)``; the primary key orders rows exactly like ``sorted(DocRef)``, the
   in-memory resolver's order. Only two things stay in memory: the facts of the documents
   that define a client (few: one per client record) and the set of referenced documents
   (the resolver interns them anyway).
2. **Decide** (:meth:`Scratch.resolve`): the clients and their keys from the defining facts;
   which referenced documents exist (a set: their facts stay on disk and are fetched only
   when one is decided before the scan reaches it; a session or an invoice is decided by its
   contact's decision, memoised as before); then every row in key order,
   decided by the very same code as the in-memory resolver (:class:`engine.clients.decide.Decisions`),
   its links and unlinked reason appended to scratch tables and dropped. Only counts stay:
   links per client, the clients of form responses (for the measures), conflict counts.
3. **Use**: the project task attaches the scratch database to the index connection and
   copies the decisions into ``client_links`` / ``client_unlinked`` with one ``INSERT ...
   SELECT`` each, and reads each client's chart items with one query (:func:`chart_items`:
   ``client_links`` joined to the facts, which carry the document's time and title).

Same rules, same order, same results: ``python -m bench.project_check --dump`` compares the
tables and chart bytes with the in-memory resolver's (docs/clients.md, docs/performance.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from engine.clients import kept
from engine.clients.model import DocFacts, DocRef, Link, Projection, Streamed, Unlinked
from engine.clients.resolve import Resolver
from engine.store.fsutil import create_private
from engine.store.workspace import PROJECT_SCRATCH

SCRATCH_NAME = PROJECT_SCRATCH
BATCH = 4096
"""Rows written per ``executemany``."""
CACHE_KIB = 8192
"""Page cache of the scratch connection: rows arrive nearly in key order per account."""

SCHEMA = """
CREATE TABLE accts (acct INTEGER PRIMARY KEY, source TEXT NOT NULL, account TEXT NOT NULL);
CREATE UNIQUE INDEX accts_name ON accts (source, account);
CREATE TABLE facts (
    acct      INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (acct, kind, entity_id)
) WITHOUT ROWID;
CREATE TABLE links (client_id TEXT, source TEXT, account TEXT, kind TEXT, entity_id TEXT,
                    rule TEXT, direction TEXT, via TEXT);
CREATE TABLE unlinked (source TEXT, account TEXT, kind TEXT, entity_id TEXT, reason TEXT,
                       detail TEXT);
"""
"""``accts`` numbers the accounts in (source, account) order; ``facts`` holds one row per
document (``data``: the facts as JSON with the index's time and title, see :func:`encode`); ``links`` and ``unlinked`` the
decisions, in decision order."""
KEPT_KIND = "form_response"
"""The kind whose document bytes the scratch database keeps for the measures step; its
links are indexed (``links_kept``) so the measures step finds each response's client there
(:func:`engine.clients.kept.kept_documents`) instead of in a dict of every response (11.5 MiB at 1,000,000 demo
records)."""


def scratch_path(vector_store: Path) -> Path:
    """Where the project task's scratch database lives (beside the index: same file system)."""
    return vector_store / SCRATCH_NAME


def part_path(path: Path) -> Path:
    """The scratch database of the task's reading helper (:mod:`engine.clients.reading`)."""
    return path.with_name(path.name + "-part")


def remove(path: Path) -> None:
    """Remove a scratch database, its kept responses and scores, the moved-links comparison's
    database (:func:`engine.clients.moved.own_database`) and any journal SQLite may have left."""
    for db in (path, kept.kept_path(path), kept.scores_path(path), path.with_name(path.name + "-moves")):
        for p in (db, db.with_name(db.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def encode(f: DocFacts) -> bytes:
    """A document's facts as a compact JSON array (the ref is the row's key)."""
    return orjson.dumps([f.keys, [(t.kind, t.entity_id) for t in f.refs], f.outside, f.direction,
                         int(f.mail), int(f.has_rule), int(f.defines), f.columns, f.time, f.title, f.name, f.said,
                         int(f.dated)])


def decode(ref: DocRef, data: bytes, same: Callable[[DocRef], DocRef] | None = None) -> DocFacts:
    """The inverse of :func:`encode` (no card: only a client's own record needs it).
    ``same``: the one object kept for a referenced document (the references are given it)."""
    keys, refs, outside, direction, mail, has_rule, defines, columns, time, title, name, said, dated = orjson.loads(data)
    targets = (DocRef(ref.source, ref.account, k, e) for k, e in refs)
    return DocFacts(ref, time, title, keys=tuple(keys),
                    refs=tuple(targets if same is None else map(same, targets)),
                    outside=tuple(outside), direction=direction, mail=bool(mail),
                    has_rule=bool(has_rule), defines=bool(defines), columns=tuple(columns), name=name,
                    said=tuple((k, n) for k, n in said), dated=bool(dated))


class Scratch:
    """The scratch database of one project run; a context manager that removes it."""

    def __init__(self, path: Path, resolver: Resolver) -> None:
        self.path = path
        self.resolver = resolver
        remove(path)
        remove(part_path(path))  # a helper's, left by a kill (no helper may run this time)
        create_private(path)
        create_private(kept.kept_path(path))
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{CACHE_KIB}",
                       "temp_store = MEMORY"):
            self.conn.execute(f"PRAGMA {pragma}")
        kept.attach_kept(self.conn, path)
        self.conn.executescript(SCHEMA + kept.KEPT_SCHEMA)
        self.conn.execute("BEGIN")
        self.accts: dict[tuple[str, str], int] = {}
        self.defining: list[DocFacts] = []
        self._rows: list[tuple[int, str, str, bytes]] = []
        self._kept: list[tuple[int, int, str, bytes]] = []
        self.documents = 0

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        remove(self.path)

    def close(self) -> None:
        """Close the connection (the file stays until :meth:`__exit__`)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    # -- reduce ------------------------------------------------------------------------

    def account(self, source: str, account: str) -> None:
        """Number the next account (call in (source, account) order)."""
        acct = self.accts[(source, account)] = len(self.accts)
        self.conn.execute("INSERT INTO accts VALUES (?, ?, ?)", (acct, source, account))

    def add(self, ref: DocRef, doc: dict[str, Any], time: str | None = None,
            title: str | None = None, raw: bytes | None = None) -> None:
        """Reduce one document to its facts and write them (with the index's time and title
        of it, for the charts); keep a client's defining facts, and ``raw`` (the document's
        bytes) when its kind is :data:`KEPT_KIND`."""
        facts = self.resolver.reduce(ref, time, title, doc)
        if facts.defines and facts.card is not None:
            self.defining.append(facts)
        acct = self.accts[(ref.source, ref.account)]
        self._rows.append((acct, ref.kind, ref.entity_id, encode(facts)))
        if raw is not None and ref.kind == KEPT_KIND:
            self._kept.append((0 if doc.get("response_id") else 1, acct, ref.entity_id, raw))
        self.documents += 1
        if len(self._rows) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        self._rows.sort()  # key order: each batch lands on neighbouring pages
        self.conn.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?)", self._rows)
        self._rows.clear()
        if self._kept:
            self.conn.executemany("INSERT OR REPLACE INTO kept.responses VALUES (?, ?, ?, ?)", self._kept)
            self._kept.clear()

    def finish(self) -> None:
        """Write what is pending and commit (a helper process's scratch database)."""
        if self._rows:
            self._flush()
        self.conn.execute("COMMIT")
        self.close()

    def merge(self, part: Path, defining: list[DocFacts], targets: list[DocRef], documents: int) -> None:
        """Take over a helper's scratch database ``part`` (other accounts, same numbers), its
        defining facts and the documents its documents refer to."""
        if self._rows:
            self._flush()
        self.conn.execute("COMMIT")  # ATTACH is not allowed inside a transaction
        self.conn.execute("ATTACH DATABASE ? AS part", (str(part),))
        self.conn.execute("ATTACH DATABASE ? AS partkept", (str(kept.kept_path(part)),))
        self.conn.execute("INSERT INTO facts SELECT acct, kind, entity_id, data FROM part.facts")
        self.conn.execute("INSERT INTO kept.responses SELECT pass, acct, entity_id, data FROM partkept.responses")
        self.conn.execute("DETACH DATABASE partkept")
        self.conn.execute("DETACH DATABASE part")
        self.conn.execute("BEGIN")
        self.defining += defining
        self.resolver.add_targets(targets)
        self.documents += documents

    def kept_count(self) -> int:
        """How many documents were kept so far (:data:`KEPT_KIND`)."""
        return kept.kept_count(self.conn)

    def seal(self) -> None:
        """Commit what was read (call once every document is in): from here on nothing
        writes the kept responses, which another process may then read."""
        if self._rows or self._kept:
            self._flush()
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN")

    # -- decide ------------------------------------------------------------------------

    def _one(self, ref: DocRef) -> DocFacts | None:
        acct = self.accts.get((ref.source, ref.account))
        if acct is None:
            return None
        row = self.conn.execute("SELECT data FROM facts WHERE acct = ? AND kind = ? AND entity_id = ?",
                                (acct, ref.kind, ref.entity_id)).fetchone()
        return None if row is None else decode(ref, row[0], self.resolver.same_ref)

    def _has(self, ref: DocRef) -> bool:
        acct = self.accts.get((ref.source, ref.account))
        return acct is not None and self.conn.execute(
            "SELECT 1 FROM facts WHERE acct = ? AND kind = ? AND entity_id = ?",
            (acct, ref.kind, ref.entity_id)).fetchone() is not None

    def _rows_in_order(self) -> Iterator[DocFacts]:
        names = {acct: name for name, acct in self.accts.items()}
        cur = self.conn.execute("SELECT acct, kind, entity_id, data FROM facts "
                                "ORDER BY acct, kind, entity_id")
        kinds: dict[str, str] = {}
        same = self.resolver.same_ref  # a referenced document: the resolver's one object for it
        while rows := cur.fetchmany(BATCH):
            for acct, kind, entity, data in rows:
                source, account = names[acct]
                yield decode(same(DocRef(source, account, kinds.setdefault(kind, kind), entity)), data, same)

    def resolve(self, progress: Callable[[int], None] | None = None) -> Projection:
        """Every decision, written to the scratch tables; the projection holds counts only.
        ``progress`` is called with the documents decided so far, every :data:`BATCH`."""
        if self._rows:
            self._flush()
        r = self.resolver
        r.read_done()
        clients, alias, unused = r.clients(sorted(self.defining, key=lambda f: f.ref))
        self.defining = []
        targets = r.targets  # the resolver's own set of them (a view: no copy)
        # the targets that are not indexed (few: a set of those that are was 4 MiB of the
        # task's peak at 1,000,000 demo documents); the others' facts stay on disk
        missing = {t for t in targets if not self._has(t)}

        def exists(ref: DocRef) -> bool:
            return ref not in missing if ref in targets else self._one(ref) is not None

        def lookup(ref: DocRef) -> DocFacts | None:
            # a target's facts are fetched when it is decided before the ordered scan reaches
            # it (then memoised); an overridden document is asked once
            return None if ref in missing else self._one(ref)

        out = Streamed()
        link_rows: list[tuple[str | None, ...]] = []
        unlinked_rows: list[tuple[str, ...]] = []

        def on_links(links: list[Link]) -> None:
            out.links += len(links)
            for lk in links:
                out.per_client[lk.client_id] = out.per_client.get(lk.client_id, 0) + 1
                link_rows.append((lk.client_id, *lk.doc, lk.rule, lk.direction, lk.via))
            if len(link_rows) >= BATCH:
                self.conn.executemany("INSERT INTO links VALUES (?,?,?,?,?,?,?,?)", link_rows)
                link_rows.clear()

        def on_unlinked(u: Unlinked) -> None:
            out.unlinked += 1
            unlinked_rows.append((*u.doc, u.reason, u.detail))
            if len(unlinked_rows) >= BATCH:
                self.conn.executemany("INSERT INTO unlinked VALUES (?,?,?,?,?,?)", unlinked_rows)
                unlinked_rows.clear()

        conflicts, state = r.decider(clients, alias, lookup, targets, on_links, on_unlinked, exists)
        for n, facts in enumerate(self._rows_in_order(), 1):  # the decisions are written meanwhile
            state.decide(facts.ref, 0, facts)
            if progress is not None and n % BATCH == 0:
                progress(n)
        self.conn.executemany("INSERT INTO links VALUES (?,?,?,?,?,?,?,?)", link_rows)
        self.conn.executemany("INSERT INTO unlinked VALUES (?,?,?,?,?,?)", unlinked_rows)
        self.conn.execute("CREATE INDEX links_kept ON links (source, account, entity_id) "
                          "WHERE kind = 'form_response'")  # for CLIENT_OF
        self.conn.execute("COMMIT")
        p = r.finish(clients, conflicts, state, [], [], {}, unused)
        r.forget()  # the measures (and their embedding model) come next: keep only the clients
        p.documents = self.documents
        p.streamed = out
        return p


def chart_items(conn: sqlite3.Connection, schema: str, client_id: str) -> list[tuple[Link, DocFacts]]:
    """One client's links with the facts its chart shows (time, title, columns).

    ``conn`` is the index connection with the scratch database attached as ``schema``; the
    measurements' links (their account is not in ``accts``) are left out, as the in-memory
    projection leaves them out.
    """
    out: list[tuple[Link, DocFacts]] = []
    for (source, account, kind, entity, rule, direction, via, data) in conn.execute(
            f"SELECT l.source, l.account, l.kind, l.entity_id, l.rule, l.direction, l.via, f.data "  # noqa: S608
            f"FROM client_links l "
            f"JOIN {schema}.accts a ON a.source = l.source AND a.account = l.account "
            f"JOIN {schema}.facts f ON f.acct = a.acct AND f.kind = l.kind AND f.entity_id = l.entity_id "
            f"WHERE l.client_id = ?", (client_id,)):
        ref = DocRef(source, account, kind, entity)
        out.append((Link(client_id, ref, rule, direction, via), _chart_facts(ref, data)))
    return out


def chart_items_in_order(conn: sqlite3.Connection, schema: str, client_id: str
                         ) -> Iterator[tuple[Link, DocFacts]]:
    """:func:`chart_items` in chart order, newest first (``(time or "") DESC``, then the
    document: :func:`engine.clients.markdown.newest_first`), one row at a time: the largest
    client's items are never all in memory. SQLite compares text by its UTF-8 bytes, which
    orders like Python's ``str``; the key ends with the links' primary key, so it is total."""
    rows = conn.execute(
        f"SELECT l.source, l.account, l.kind, l.entity_id, l.rule, l.direction, l.via, f.data "  # noqa: S608
        f"FROM client_links l "
        f"JOIN {schema}.accts a ON a.source = l.source AND a.account = l.account "
        f"JOIN {schema}.facts f ON f.acct = a.acct AND f.kind = l.kind AND f.entity_id = l.entity_id "
        f"WHERE l.client_id = ? "
        f"ORDER BY coalesce(json_extract(f.data, '$[8]'), '') DESC, l.source, l.account, l.kind, l.entity_id",
        (client_id,))
    for (source, account, kind, entity, rule, direction, via, data) in rows:
        ref = DocRef(source, account, kind, entity)
        yield Link(client_id, ref, rule, direction, via), _chart_facts(ref, data)


def _chart_facts(ref: DocRef, data: bytes) -> DocFacts:
    """:func:`decode` without the keys, references and outside addresses, which no chart
    shows: the largest client's chart holds every item at once (36,000 at 1,000,000 demo
    records), so each item carries only what is rendered."""
    _, _, _, direction, mail, has_rule, defines, columns, time, title, _, _, dated = orjson.loads(data)
    return DocFacts(ref, time, title, direction=direction, mail=bool(mail), has_rule=bool(has_rule),
                    defines=bool(defines), columns=tuple(columns), dated=bool(dated))
