"""Reading the client tables: find a client by id or name, its documents, the problem lists.

Used by ``lorchestra clients``, ``lorchestra query --client`` and tests. Read-only (the
index's reader connection): it works beside a running pipeline and takes no lock.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from engine.clients import keys as K
from engine.clients.tables import CLIENTS_SCHEMA_VERSION, read_meta, rows


class ClientLookupError(Exception):
    """No client, or several, match what the user typed; ``candidates`` lists the latter."""

    def __init__(self, message: str, candidates: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.candidates = candidates or []


@dataclass
class ClientTables:
    """The client tables of one index connection."""

    conn: sqlite3.Connection

    def ready(self) -> bool:
        """True once a project run has written the tables (in this schema version)."""
        return read_meta(self.conn).get("schema_version") == str(CLIENTS_SCHEMA_VERSION)

    def meta(self) -> dict[str, str]:
        """``clients_meta``."""
        return read_meta(self.conn)

    def clients(self) -> list[dict[str, Any]]:
        """Every client, by sort name."""
        return _clients(rows(self.conn, "SELECT * FROM clients ORDER BY sort_name COLLATE NOCASE, client_id"))

    def find(self, text: str) -> dict[str, Any]:
        """The one client whose id (or id prefix of 4+), folder or name is ``text``."""
        t = text.strip()
        exact = _clients(rows(self.conn, "SELECT * FROM clients WHERE client_id = ?", (t.lower(),)))
        if exact:
            return exact[0]
        folded = K.name_text(t)
        hits = [c for c in self.clients()
                if c["folder"] == t or (folded and folded in (K.name_text(c["name"]),
                                                              K.name_text(c["sort_name"])))]
        if len(t) >= 4 and re.fullmatch(r"[0-9a-f]+", t.lower()):  # a name can look like an id prefix:
            named = {c["client_id"] for c in hits}                  # both kinds of match are candidates
            hits += [c for c in _clients(rows(self.conn, "SELECT * FROM clients WHERE substr(client_id, 1, ?) = ?",
                                              (len(t), t.lower()))) if c["client_id"] not in named]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise ClientLookupError(f"no client matches {t!r}")
        raise ClientLookupError(f"{len(hits)} clients match {t!r}; give the client id", hits)

    def keys(self, client_id: str) -> list[dict[str, Any]]:
        """A client's keys."""
        keys = rows(self.conn, "SELECT key, kind, shared FROM client_keys WHERE client_id = ? "
                               "ORDER BY kind, key", (client_id,))
        return [{**k, "shared": bool(k["shared"])} for k in keys]

    def documents(self, client_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A client's linked documents, newest first, with rule, direction and title."""
        sql = ("SELECT l.source, l.account, l.kind, l.entity_id, l.rule, l.direction, l.via, "
               "d.time, d.title, d.sha256 FROM client_links l LEFT JOIN documents d ON d.entity_id = "
               "l.entity_id AND d.kind = l.kind AND d.source = l.source AND d.account = l.account "
               "WHERE l.client_id = ? ORDER BY d.time IS NULL, d.time DESC, l.source, l.account, "
               "l.kind, l.entity_id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return rows(self.conn, sql, (client_id,))

    def conflicts(self) -> list[dict[str, Any]]:
        """Keys several clients hold, open ones first."""
        return rows(self.conn, "SELECT * FROM client_conflicts ORDER BY reviewed, key")

    def unlinked(self, kind: str | None = None, reason: str | None = None) -> list[dict[str, Any]]:
        """Documents linked to no one, with the reason (optionally of one kind or reason)."""
        sql = ("SELECT u.*, d.time, d.title, d.sha256 FROM client_unlinked u LEFT JOIN documents d ON "
               "d.entity_id = u.entity_id AND d.kind = u.kind AND d.source = u.source AND "
               "d.account = u.account WHERE (? IS NULL OR u.kind = ?) AND (? IS NULL OR u.reason = ?) "
               "ORDER BY u.reason, u.kind, u.source, u.account, u.entity_id")
        return rows(self.conn, sql, (kind, kind, reason, reason))

    def names(self, ids: list[str]) -> dict[str, str]:
        """Client id -> sort name, for printing conflicts."""
        out: dict[str, str] = {}
        for cid in ids:
            r = self.conn.execute("SELECT sort_name FROM clients WHERE client_id = ?", (cid,)).fetchone()
            out[cid] = r[0] if r else "?"
        return out


def _clients(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Client rows as commands print them in JSON: ``merged`` a list of the client ids merged
    into this one (stored as one comma-separated text)."""
    return [{**c, "merged": [m for m in c["merged"].split(",") if m]} for c in found]
