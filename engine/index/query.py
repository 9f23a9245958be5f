"""The query API of the document index: a plain one for scripts, an async one for the dashboard.

Both speak the same :class:`Query` (filters by kind, source, account, time range and entity
id; full-text search ranked with bm25; optional collapse of cross-account duplicates) and
return the same :class:`Document` rows, built from one SQL builder, so the two can never
disagree. A row points at its canonical document by sha256; :meth:`Store.document` reads the
object. Connections are read-only (``query_only``) and never block the index writers (WAL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from engine.index.fields import normalize_time
from engine.index.store import ObjectCorrupt as ObjectCorrupt  # re-exported for the faces
from engine.index.store import ObjectMissing as ObjectMissing
from engine.index.store import StoreError as StoreError
from engine.index.store import db_path, objects_dir, open_reader, read_object
from engine.store.workspace import Workspace

BM25_WEIGHTS = (10.0, 1.0, 4.0, 2.0)
"""Column weights of the ranking: title, body, names, notes."""

COLUMNS = _COLUMNS = ("d.doc_id, d.kind, d.source, d.account, d.entity_id, d.sha256, d.vault_run, "
            "d.transform, d.time, d.title, d.dedupe_key")


@dataclass(frozen=True)
class Query:
    """What to find; every filter is optional and they combine with AND."""

    kind: str | None = None
    source: str | None = None
    account: str | None = None
    since: str | None = None
    """Inclusive lower bound on the main time (a date or an ISO date-time)."""
    until: str | None = None
    """Inclusive upper bound: a date covers that whole day (UTC)."""
    text: str | None = None
    """Words that must all occur (prefix match with a trailing ``*``); ranks the results."""
    entity_id: str | None = None
    client_id: str | None = None
    """Only documents the project stage linked to this client (``client_links``)."""
    dedupe: bool = False
    """Collapse documents sharing a dedupe key (the same email in several mailboxes)."""
    limit: int | None = 50
    offset: int = 0


@dataclass(frozen=True)
class Document:
    """One indexed document (its derived columns; the content is in the object)."""

    doc_id: int
    kind: str
    source: str
    account: str
    entity_id: str
    sha256: str
    vault_run: str | None
    transform: str | None
    time: str | None
    title: str | None
    dedupe_key: str | None
    rank: float | None = None
    """bm25 score of a text search (lower is better); None without ``text``."""
    copies: int = 1
    """With ``dedupe``: how many documents share this one's dedupe key among the matches."""
    accounts: tuple[str, ...] = ()
    """``source/account`` of every copy (just this document's without ``dedupe``)."""


@dataclass(frozen=True)
class Count:
    """Documents of one kind in one account."""

    kind: str
    source: str
    account: str
    documents: int


def time_bound(value: str, *, upper: bool) -> str:
    """A ``--since``/``--until`` value as the stored time format; ValueError if unparsable.

    An upper bound is returned exclusive: the day after a date, the second after a date-time.
    """
    value = value.strip()
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time") from None
    norm = normalize_time(value)
    if norm is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date-time")
    if not upper:
        return norm
    step = timedelta(days=1) if len(value) == 10 else timedelta(seconds=1)
    try:
        moment = datetime.strptime(norm, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) + step
    except OverflowError:  # --until 9999-12-31: past the last date there is; every time is before it
        return "9999-12-31T23:59:59Z~"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _has_word(text: str) -> bool:
    """Whether the tokenizer finds a word in ``text``: a letter or digit, or a character
    beyond the basic plane (unicode61 counts emoji as token characters). ``*`` or ``^``
    alone is none: it matched nothing, and the meaning part then ranked every document."""
    return any(c.isalnum() or ord(c) > 0xFFFF for c in text)


def fts_query(words: str) -> str:
    """User words as an FTS5 query: each word a quoted phrase (all required), ``word*`` a prefix."""
    terms: list[str] = []
    for word in words.split():
        prefix = word.endswith("*") and len(word) > 1
        core = word[:-1] if prefix else word
        core = core.replace('"', '""')
        term = f'"{core}"' + ("*" if prefix else "")
        if _has_word(core) and term not in terms:  # a word twice is required once
            terms.append(term)
    if not terms:
        raise ValueError("the search text has no words")
    if len(terms) > MAX_WORDS:
        raise ValueError(f"the search text has {len(terms):,} different words: give at most {MAX_WORDS} "
                         "(every word is required, so a pasted page finds nothing and takes minutes)")
    return " ".join(terms)


MAX_WORDS = 64
"""Different words a search may require (FTS5's cost grows with their product of postings)."""


def filter_clauses(q: Query) -> tuple[list[str], list[Any]]:
    """The WHERE conditions (over ``documents d``) of every filter except the search text.

    Every ranking (bm25, vector, hybrid) applies exactly these, so a new filter (a client, for
    the clients layer) is added here once and holds for all of them.
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("kind", q.kind), ("source", q.source), ("account", q.account),
                          ("entity_id", q.entity_id)):
        if value is not None:
            where.append(f"d.{column} = ?")
            params.append(value)
    if q.client_id is not None:  # the client's links first, then their documents by key: one
        # look-up per link (a correlated EXISTS looked up every document: 2.2 s at 1,000,000)
        where.append("d.doc_id IN (SELECT c.doc_id FROM client_links l JOIN documents c ON "
                     "c.entity_id = l.entity_id AND c.kind = l.kind AND c.source = l.source "
                     "AND c.account = l.account WHERE l.client_id = ?)")
        params.append(q.client_id)
    if q.since is not None:
        where.append("d.time >= ?")
        params.append(time_bound(q.since, upper=False))
    if q.until is not None:
        where.append("d.time < ?")
        params.append(time_bound(q.until, upper=True))
    return where, params


def build_sql(q: Query) -> tuple[str, list[Any]]:
    """The SELECT for a query and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    if q.text is not None:
        source, rank = "fts JOIN documents d ON d.doc_id = fts.rowid", "bm25(fts, {}, {}, {}, {})".format(*BM25_WEIGHTS)
        where.append("fts MATCH ?")
        params.append(fts_query(q.text))
    else:
        source, rank = "documents d", "NULL"
    more, more_params = filter_clauses(q)
    where += more
    params += more_params
    cond = " AND ".join(where) or "1"
    # doc_id DESC as the tie-break lets SQLite walk the time indexes backwards with no sort.
    order = "rank, time DESC, doc_id DESC" if q.text is not None else "time DESC, doc_id DESC"
    page = " LIMIT ? OFFSET ?"
    paging = [q.limit if q.limit is not None else -1, q.offset]
    if not q.dedupe:
        sql = (f"SELECT {_COLUMNS}, {rank} AS rank, 1 AS copies, d.source || '/' || d.account "
               f"AS accounts FROM {source} WHERE {cond} ORDER BY {order}{page}")
        return sql, params + paging
    sql = (f"WITH hits AS (SELECT {_COLUMNS}, {rank} AS rank FROM {source} WHERE {cond}), "
           "ranked AS (SELECT h.*, row_number() OVER w AS rn, count(*) OVER p AS copies, "
           "group_concat(source || '/' || account, ',') OVER p AS accounts FROM hits h "
           "WINDOW p AS (PARTITION BY coalesce(dedupe_key, '#' || doc_id)), "
           f"w AS (p ORDER BY {order})) "
           "SELECT doc_id, kind, source, account, entity_id, sha256, vault_run, transform, time, "
           f"title, dedupe_key, rank, copies, accounts FROM ranked WHERE rn = 1 ORDER BY {order}{page}")
    return sql, params + paging


def document_from_row(row: tuple[Any, ...]) -> Document:
    """A :class:`Document` from a row of ``COLUMNS`` + rank, copies, accounts."""
    return _document(row)


def _document(row: tuple[Any, ...]) -> Document:
    accounts = tuple(sorted(set(str(row[13]).split(",")))) if row[13] else ()
    return Document(doc_id=row[0], kind=row[1], source=row[2], account=row[3], entity_id=row[4],
                    sha256=row[5], vault_run=row[6], transform=row[7], time=row[8], title=row[9],
                    dedupe_key=row[10], rank=row[11], copies=int(row[12]), accounts=accounts)


COUNTS_SQL = ("SELECT kind, source, account, count(*) FROM documents NOT INDEXED "
              "GROUP BY kind, source, account ORDER BY kind, source, account")
KIND_COUNTS_SQL = ("SELECT kind, count(*), count(DISTINCT coalesce(dedupe_key, '#' || doc_id)) "
                   "FROM documents NOT INDEXED GROUP BY kind ORDER BY kind")
"""The counts read every document: in table order (``NOT INDEXED``), not through
``documents_kind_time``, which SQLite picks for the ``GROUP BY kind`` and which then costs one
row look-up per document (at 1,000,000 documents 5.3 s against 1.1 s: docs/performance.md)."""
HAS_KIND_SQL = "SELECT 1 FROM documents WHERE kind = ? LIMIT 1"
KINDS_SQL = ("WITH RECURSIVE k(kind) AS (SELECT min(kind) FROM documents UNION ALL "
             "SELECT (SELECT min(kind) FROM documents WHERE kind > k.kind) FROM k WHERE k.kind IS NOT NULL) "
             "SELECT kind FROM k WHERE kind IS NOT NULL")
"""The kinds in the index, one ``documents_kind_time`` index seek per kind (a skip scan):
``SELECT DISTINCT kind`` or the counts read every document (seconds at a million)."""


class Store:
    """A read-only view of one workspace's index (plain, synchronous)."""

    def __init__(self, conn: sqlite3.Connection, objects: Path) -> None:
        self.conn = conn
        self.objects = objects

    @classmethod
    def open(cls, workspace: Workspace | Path, *, check_same_thread: bool = True) -> Store:
        """Open the index of a workspace (StoreError INDEX_MISSING if it was never built)."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace))
        return cls(open_reader(ws, check_same_thread=check_same_thread), objects_dir(ws))

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def find(self, query: Query) -> list[Document]:
        """Documents matching ``query`` (newest first, or best match first with ``text``)."""
        sql, params = build_sql(query)
        return [_document(r) for r in self.conn.execute(sql, params)]

    def search(self, text: str, **filters: Any) -> list[Document]:
        """Full-text search, ranked; ``filters`` are other :class:`Query` fields."""
        return self.find(Query(text=text, **filters))

    def get(self, entity_id: str, *, kind: str | None = None, source: str | None = None,
            account: str | None = None) -> list[Document]:
        """Every document with this entity id (one per account that has it)."""
        return self.find(Query(entity_id=entity_id, kind=kind, source=source, account=account, limit=None))

    def counts(self) -> list[Count]:
        """Documents per kind and account."""
        return [Count(*r) for r in self.conn.execute(COUNTS_SQL)]

    def kind_counts(self) -> dict[str, tuple[int, int]]:
        """Per kind: (documents, distinct after collapsing duplicates)."""
        return {r[0]: (r[1], r[2]) for r in self.conn.execute(KIND_COUNTS_SQL)}

    def has_kind(self, kind: str) -> bool:
        """True when the index holds a document of this kind (one index seek)."""
        return self.conn.execute(HAS_KIND_SQL, (kind,)).fetchone() is not None

    def kinds(self) -> list[str]:
        """The kinds the index holds, sorted (one index seek per kind, whatever the documents)."""
        return [str(r[0]) for r in self.conn.execute(KINDS_SQL)]

    def document_bytes(self, doc: Document) -> bytes:
        """The canonical document exactly as canonize wrote it (one JSON line).

        Checked against its sha256: ObjectCorrupt when the object file was damaged,
        ObjectMissing when it is gone.
        """
        return read_object(self.objects, doc.sha256)

    def document(self, doc: Document) -> dict[str, Any]:
        """The canonical document, parsed."""
        data: dict[str, Any] = orjson.loads(self.document_bytes(doc))
        return data


class AsyncStore:
    """The same API over aiosqlite, for the dashboard's event loop."""

    def __init__(self, conn: aiosqlite.Connection, objects: Path) -> None:
        self.conn = conn
        self.objects = objects

    @classmethod
    async def open(cls, workspace: Workspace | Path) -> AsyncStore:
        """Open the index of a workspace (StoreError INDEX_MISSING if it was never built)."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace(Path(workspace))
        open_reader(ws).close()  # the same checks (exists, schema version) as the plain API
        conn = await aiosqlite.connect(db_path(ws), timeout=30)
        for pragma in ("busy_timeout = 30000", "temp_store = MEMORY", "query_only = 1"):
            await conn.execute(f"PRAGMA {pragma}")
        return cls(conn, objects_dir(ws))

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _all(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[Any]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def find(self, query: Query) -> list[Document]:
        """Documents matching ``query``; see :meth:`Store.find`."""
        sql, params = build_sql(query)
        return [_document(tuple(r)) for r in await self._all(sql, params)]

    async def search(self, text: str, **filters: Any) -> list[Document]:
        """Full-text search, ranked."""
        return await self.find(Query(text=text, **filters))

    async def get(self, entity_id: str, *, kind: str | None = None, source: str | None = None,
                  account: str | None = None) -> list[Document]:
        """Every document with this entity id."""
        return await self.find(Query(entity_id=entity_id, kind=kind, source=source, account=account,
                                     limit=None))

    async def counts(self) -> list[Count]:
        """Documents per kind and account."""
        return [Count(*r) for r in await self._all(COUNTS_SQL)]

    async def kind_counts(self) -> dict[str, tuple[int, int]]:
        """Per kind: (documents, distinct after collapsing duplicates)."""
        return {r[0]: (r[1], r[2]) for r in await self._all(KIND_COUNTS_SQL)}

    async def document_bytes(self, doc: Document) -> bytes:
        """The canonical document's bytes (read in a thread, checked like :meth:`Store.document_bytes`)."""
        return await asyncio.to_thread(read_object, self.objects, doc.sha256)

    async def document(self, doc: Document) -> dict[str, Any]:
        """The canonical document, parsed."""
        data: dict[str, Any] = orjson.loads(await self.document_bytes(doc))
        return data
