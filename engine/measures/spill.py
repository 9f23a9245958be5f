"""The measures step's outputs on disk, so the project task's memory stays flat.

Scoring a pipeline's form responses gives one measurement per scored measure, plus the
rejects, the duplicates and the duplicate check's memory: held in Python that grew with the
number of responses (about 1.6 KiB a measurement: 490 MiB project peak at 66,666 responses
per form tap, docs/performance.md). Here each goes into a table of the project task's
scratch database (:mod:`engine.clients.stream`, removed with it; a kill leaves it for the
next run to remove) and is read back in the order the published files need, one row at a
time, and per client for the chart folders.

Rows keep the exact JSON line of the published file (``orjson`` with sorted keys) and an
insertion number, so ``ORDER BY key, seq`` gives what a stable Python sort of the lists gave
(SQLite compares TEXT as UTF-8 bytes: the order of code points, as Python's ``str``).
A connection is opened per process (:meth:`Spill.reader`): the second chart writer is
forked and must never use its parent's connection.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.clients import kept

SCHEMA = """
CREATE TABLE IF NOT EXISTS m_seen (key TEXT PRIMARY KEY, source_id TEXT NOT NULL, client TEXT,
                                   ref TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS m_later (seq INTEGER PRIMARY KEY, source TEXT, account TEXT,
                                    entity_id TEXT, sha256 TEXT);
CREATE TABLE IF NOT EXISTS m_scored (seq INTEGER PRIMARY KEY, source_id TEXT NOT NULL,
                                     client_id TEXT, response_id, line BLOB NOT NULL, copy_key TEXT);
CREATE TABLE IF NOT EXISTS m_rejects (seq INTEGER PRIMARY KEY, response TEXT NOT NULL,
                                      measure TEXT NOT NULL, line BLOB NOT NULL, client TEXT,
                                      effective_at TEXT, copy_key TEXT);
CREATE TABLE IF NOT EXISTS m_dups (seq INTEGER PRIMARY KEY, response TEXT NOT NULL,
                                   measure TEXT NOT NULL, line BLOB NOT NULL, dup_of TEXT,
                                   client TEXT);
CREATE TABLE IF NOT EXISTS m_disputed (source_id TEXT PRIMARY KEY, ref TEXT NOT NULL) WITHOUT ROWID;
DELETE FROM m_seen; DELETE FROM m_later; DELETE FROM m_scored; DELETE FROM m_rejects;
DELETE FROM m_dups; DELETE FROM m_disputed;
"""
"""(``response_id`` has no type: an integer id stays one, as it was in the links.)
``m_seen``: the duplicate check (key -> the measurement it first gave, with the client and
the response of that first copy); ``m_later``: the responses without a response id, scored
in a second pass; ``m_scored``, ``m_rejects``, ``m_dups``: the lines of the three published
files with their sort keys (a duplicate also with the measurement it repeats and its own
client); ``m_disputed``: the measurements whose copies were linked to different clients,
settled before the files are written (:meth:`Spill.disputes`)."""

INDEXES = """
CREATE INDEX IF NOT EXISTS m_scored_order ON m_scored (source_id, seq);
CREATE INDEX IF NOT EXISTS m_scored_client ON m_scored (client_id, source_id, seq);
CREATE INDEX IF NOT EXISTS m_rejects_order ON m_rejects (response, measure, seq);
CREATE INDEX IF NOT EXISTS m_rejects_client ON m_rejects (client, effective_at, response, measure, seq)
    WHERE client IS NOT NULL;
CREATE INDEX IF NOT EXISTS m_dups_order ON m_dups (response, measure, seq);
"""

BATCH = 2_000
"""Rows buffered before one ``executemany``."""

LINE = orjson.OPT_SORT_KEYS
ORDER = {"scored": "m_scored ORDER BY source_id, seq", "rejects": "m_rejects ORDER BY response, measure, seq",
         "dups": "m_dups ORDER BY response, measure, seq"}


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -4096",
                   "temp_store = MEMORY"):  # temporary b-trees never go to /tmp: they hold PHI
        conn.execute(f"PRAGMA {pragma}")
    return conn


@dataclass(frozen=True, slots=True)
class Copy:
    """One copy of a disputed measurement: the measurement itself or one of its duplicates."""

    response: str
    """The copy's response (``source/account/entity_id``)."""
    client: str | None
    """The client that copy was linked to."""
    measure: str
    binding: str | None
    seq: int
    """Its row (in ``m_scored`` for the first copy, ``m_dups`` for the others)."""


@dataclass(frozen=True, slots=True)
class Disputed:
    """A measurement whose copies were linked to different clients."""

    source_id: str
    measurement: dict[str, Any]
    """The measurement, as scored from the first copy."""
    copies: list[Copy]
    """The first copy, then its duplicates in the order they came."""


class Spill:
    """The measures step's tables in the scratch database at ``path`` (which must exist)."""

    def __init__(self, path: Path, scores: Path | None = None) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = _connect(path)
        self.has_kept = kept.attach_kept(self.conn, path)
        """Whether the project task's reader kept form responses beside ``path``."""
        if scores is not None:  # a forked scorer's outcomes (:mod:`engine.measures.prescore`)
            self.conn.execute("ATTACH DATABASE ? AS scores", (f"file:{scores}?mode=ro",))
            self.conn.execute(f"PRAGMA scores.cache_size = -{kept.KEPT_CACHE_KIB}")  # read once, in order
        self.conn.executescript(SCHEMA)
        self.conn.execute("BEGIN")
        self._buf: dict[str, list[tuple[Any, ...]]] = {"scored": [], "rejects": [], "dups": [], "later": []}
        self.counts = {"scored": 0, "rejects": 0, "dups": 0}
        self._reader: tuple[int, sqlite3.Connection] | None = None

    def _w(self) -> sqlite3.Connection:
        assert self.conn is not None, "the spill is closed for writing"
        return self.conn

    # -- writing ---------------------------------------------------------------------------

    def seen(self, key: str, source_id: str) -> str | None:
        """The ``source_id`` that first gave ``key``; None (and ``key`` noted) when new."""
        first = self.first_copy(key, source_id, None, "")
        return None if first is None else first[0]

    def first_copy(self, key: str, source_id: str, client: str | None,
                   ref: str) -> tuple[str, str | None, str] | None:
        """The first copy that gave ``key``: (its measurement's ``source_id``, its client, its
        response); None (and this copy noted as the first) when new (one statement for a new
        key, the usual case; a second to name the first)."""
        conn = self._w()
        if conn.execute("INSERT OR IGNORE INTO m_seen VALUES (?, ?, ?, ?)",
                        (key, source_id, client, ref)).rowcount:
            return None
        row = conn.execute("SELECT source_id, client, ref FROM m_seen WHERE key = ?", (key,)).fetchone()
        return str(row[0]), row[1], str(row[2])

    def dispute(self, source_id: str, ref: str) -> None:
        """The measurement ``source_id`` (of the response ``ref``) has a copy linked to
        another client: settled by :meth:`disputes` before the files are written."""
        self._w().execute("INSERT OR IGNORE INTO m_disputed VALUES (?, ?)", (source_id, ref))

    def kept_count(self) -> int:
        """How many form responses the project task's reader kept in the scratch database."""
        return kept.kept_count(self._w()) if self.has_kept else 0

    def kept(self, scores: Path | None = None) -> Iterator[tuple[Any, ...]]:
        """Those responses with their clients, in scoring order
        (:func:`engine.clients.kept.kept_documents`): (source, account, entity_id, bytes,
        client); with ``scores`` (attached when the spill was opened) their e-mails and
        outcomes instead of their bytes."""
        if scores is None:
            return kept.kept_documents(self._w())
        return kept.kept_documents(self._w(), table="scores.scores", columns=("email", "outcomes"))

    def client_of(self, source: str, account: str, entity_id: str) -> str | None:
        """One form response's one client, from the scratch database's decisions."""
        return kept.kept_client(self._w(), source, account, entity_id)

    def overridden(self) -> set[tuple[str, str, str]]:
        """(source, account, entity_id) of every form response the overrides file links
        (``link:``, to a client or to no one), from the scratch database's decisions: a
        scan, asked only when copies of a response were linked to different clients."""
        return {tuple(r) for r in self._w().execute(
            "SELECT source, account, entity_id FROM links WHERE kind = 'form_response' AND rule = 'override' "
            "UNION SELECT source, account, entity_id FROM unlinked "
            "WHERE kind = 'form_response' AND reason = 'override'")}

    def later(self, row: tuple[str, str, str, str]) -> None:
        """A response to score in the second pass (source, account, entity_id, sha256)."""
        self._put("later", row)

    def measurement(self, m: dict[str, Any], copy_key: str | None = None) -> None:
        """One scored measure (the document of the published file; ``copy_key``: what the
        copies of its submission share, so a rejected copy of it is in no chart)."""
        self.counts["scored"] += 1
        self._put("scored", (str(m["source_id"]), m.get("client_id"), m.get("response_id") or "",
                             orjson.dumps(m, option=LINE), copy_key))

    def reject(self, r: dict[str, Any], client: str | None = None, effective_at: str | None = None,
               copy_key: str | None = None) -> None:
        """One line of the rejects file (``client``, ``effective_at`` and ``copy_key``, what
        the copies of one submission share, kept beside it for the chart of the client who
        answered: :meth:`settle_rejects`, :meth:`not_scored_of_client`)."""
        self.counts["rejects"] += 1
        self._put("rejects", (r["response"], str(r["measure"]), orjson.dumps(r, option=LINE), client or None,
                              effective_at, copy_key))

    def duplicate(self, r: dict[str, Any], client: str | None = None) -> None:
        """One line of the duplicates file (``client``: the copy's own client, kept beside it
        for :meth:`disputes`, never written to the file)."""
        self.counts["dups"] += 1
        self._put("dups", (r["response"], str(r["measure"]), orjson.dumps(r, option=LINE),
                           r.get("duplicate_of"), client))

    def _put(self, table: str, row: tuple[Any, ...]) -> None:
        buf = self._buf[table]
        buf.append(row)
        if len(buf) >= BATCH:
            self._flush(table)

    def _flush(self, table: str) -> None:
        buf = self._buf[table]
        if not buf:
            return
        sql = {"scored": "INSERT INTO m_scored (source_id, client_id, response_id, line, copy_key) VALUES (?,?,?,?,?)",
               "rejects": "INSERT INTO m_rejects (response, measure, line, client, effective_at, copy_key) "
                          "VALUES (?,?,?,?,?,?)",
               "dups": "INSERT INTO m_dups (response, measure, line, dup_of, client) VALUES (?,?,?,?,?)",
               "later": "INSERT INTO m_later (source, account, entity_id, sha256) VALUES (?,?,?,?)"}[table]
        self._w().executemany(sql, buf)
        buf.clear()

    def later_rows(self) -> Iterator[tuple[str, str, str, str]]:
        """The responses noted by :meth:`later`, in the order they were noted."""
        self._flush("later")
        last = 0
        while True:  # in batches: the writer inserts into other tables meanwhile
            rows = self._w().execute("SELECT seq, source, account, entity_id, sha256 FROM m_later "
                                     "WHERE seq > ? ORDER BY seq LIMIT ?", (last, BATCH)).fetchall()
            if not rows:
                return
            for seq, *row in rows:
                last = seq
                yield (row[0], row[1], row[2], row[3])

    def disputes(self) -> Iterator[Disputed]:
        """Each measurement whose copies were linked to different clients, with all its
        copies (call once every response is taken, before :meth:`finish`). Usually none: only
        an override on one copy of a response gives one."""
        for table in ("scored", "dups"):
            self._flush(table)
        conn = self._w()
        if conn.execute("SELECT 1 FROM m_disputed LIMIT 1").fetchone() is None:
            return
        conn.execute("CREATE INDEX IF NOT EXISTS m_scored_order ON m_scored (source_id, seq)")
        conn.execute("CREATE INDEX IF NOT EXISTS m_dups_of ON m_dups (dup_of)")
        for source_id, ref in conn.execute("SELECT source_id, ref FROM m_disputed ORDER BY source_id").fetchall():
            seq, client, line = conn.execute("SELECT seq, client_id, line FROM m_scored WHERE source_id = ? "
                                             "ORDER BY seq LIMIT 1", (source_id,)).fetchone()
            first = orjson.loads(line)
            copies = [Copy(ref, client, str(first["measure"]), first.get("binding"), seq)]
            for dseq, response, dclient, dline in conn.execute(
                    "SELECT seq, response, client, line FROM m_dups WHERE dup_of = ? ORDER BY seq",
                    (source_id,)).fetchall():
                d = orjson.loads(dline)
                copies.append(Copy(response, dclient, str(d["measure"]), d.get("binding"), dseq))
            yield Disputed(source_id, first, copies)

    def reassign(self, d: Disputed, client: str | None) -> None:
        """Give the disputed measurement to ``client`` (None: to no one); its copies stay
        duplicates of it."""
        m = dict(d.measurement)
        m.pop("client_id", None)
        if client:
            m["client_id"] = client
        self._w().execute("UPDATE m_scored SET client_id = ?, line = ? WHERE seq = ?",
                          (client or None, orjson.dumps(m, option=LINE), d.copies[0].seq))

    def unscore(self, d: Disputed, reason: str) -> None:
        """Score the disputed measurement for no one: it and its duplicates are removed and
        every copy becomes a reject with ``reason``."""
        conn = self._w()
        conn.execute("DELETE FROM m_scored WHERE seq = ?", (d.copies[0].seq,))
        conn.executemany("DELETE FROM m_dups WHERE seq = ?", [(c.seq,) for c in d.copies[1:]])
        self.counts["scored"] -= 1
        self.counts["dups"] -= len(d.copies) - 1
        for c in d.copies:
            self.reject({"response": c.response, "reason": reason, "measure": c.measure,
                         "binding": c.binding, "item": None})
        self._flush("rejects")

    def settle_rejects(self, owner: Callable[[list[tuple[str | None, str]]], str | None]) -> None:
        """The client whose chart lists each not-scored submission: ``owner`` of its copies'
        (client, response) pairs, as a measurement's copies are settled
        (:func:`engine.measures.copies.owner`; None: in no chart)."""
        self._flush("rejects")
        self._flush("scored")
        conn = self._w()
        # another copy of the submission was scored: the measure has its score, the copy that
        # could not be read is no "not scored" row in any chart
        conn.execute("UPDATE m_rejects SET client = NULL WHERE copy_key IN "
                     "(SELECT copy_key FROM m_scored WHERE copy_key IS NOT NULL)")
        rows = conn.execute("SELECT copy_key, seq, response, client FROM m_rejects WHERE copy_key IS NOT NULL "
                            "AND copy_key NOT IN (SELECT copy_key FROM m_scored WHERE copy_key IS NOT NULL) "
                            "ORDER BY copy_key, seq").fetchall()
        changes: list[tuple[str | None, int]] = []
        for _key, group in itertools.groupby(rows, key=lambda r: r[0]):
            copies = list(group)
            client = owner([(c[3], c[2]) for c in copies])
            changes += [(client, c[1]) for c in copies if c[3] != client]
        conn.executemany("UPDATE m_rejects SET client = ? WHERE seq = ?", changes)

    def critical_unlinked(self, raised: Callable[[object], list[str]]) -> int:
        """Measures whose critical item was answered above its threshold or is not known
        (``raised`` of the flags) in a response linked to no client: scored, or not scored with no copy scored.
        No chart shows them, so the task warns with their count."""
        r = self.reader()
        scored = sum(1 for (line,) in r.execute("SELECT line FROM m_scored WHERE client_id IS NULL")
                     if raised(orjson.loads(line).get("flags")))
        rejected = sum(1 for (line,) in r.execute(
            "SELECT line FROM m_rejects WHERE client IS NULL AND measure != 'None' AND (copy_key IS NULL OR "
            "copy_key NOT IN (SELECT copy_key FROM m_scored WHERE copy_key IS NOT NULL))")
            if raised(orjson.loads(line).get("flags")))
        return scored + rejected

    def finish(self) -> None:
        """Write what is buffered, index, commit and close the writer."""
        for table in self._buf:
            self._flush(table)
        conn = self._w()
        conn.execute("DELETE FROM m_seen")
        conn.execute("DELETE FROM m_later")
        conn.execute("DELETE FROM m_disputed")
        conn.execute("COMMIT")
        conn.executescript(INDEXES)
        conn.close()
        self.conn = None

    # -- reading (after finish) ------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This process's read connection (a forked chart writer opens its own)."""
        if self._reader is None or self._reader[0] != os.getpid():
            self._reader = (os.getpid(), _connect(self.path, readonly=True))
        return self._reader[1]

    def lines(self, what: str) -> Iterator[bytes]:
        """The lines of one published file (``scored``, ``rejects``, ``dups``), in order."""
        for (line,) in self.reader().execute(f"SELECT line FROM {ORDER[what]}"):  # noqa: S608
            yield bytes(line) + b"\n"

    def links(self) -> Iterator[tuple[Any, str, Any]]:
        """(client_id, source_id, response_id or "") of each linked measurement, in file order."""
        yield from self.reader().execute(
            "SELECT client_id, source_id, response_id FROM m_scored WHERE client_id IS NOT NULL "
            "ORDER BY source_id, seq")

    def of_client(self, client_id: str) -> list[dict[str, Any]]:
        """One client's measurements, in file order."""
        return [orjson.loads(line) for (line,) in self.reader().execute(
            "SELECT line FROM m_scored WHERE client_id = ? ORDER BY source_id, seq", (client_id,))]

    def not_scored_of_client(self, client_id: str) -> list[dict[str, Any]]:
        """One client's responses a measure could not be scored for, oldest first: the
        rejects-file line with ``effective_at`` (the chart lists them, critical items too)."""
        return [{**orjson.loads(line), "effective_at": at} for line, at in self.reader().execute(
            "SELECT line, effective_at FROM m_rejects WHERE client = ? AND measure != 'None' "
            "ORDER BY effective_at, response, measure, seq", (client_id,))]  # never the scoring order

    def close(self) -> None:
        """Close this process's connections (the file goes with the scratch database)."""
        for conn in (self.conn, self._reader[1] if self._reader and self._reader[0] == os.getpid() else None):
            if conn is not None:
                conn.close()
        self.conn = None
        self._reader = None
