"""What the dashboard reads from disk in a thread: accounts, runs, index state, lock holder,
and the run history's newest runs (the History screen, the last run said at start).

One :func:`scan` call gathers everything the vault tree and the LATEST table show, so the
app refreshes both from one consistent snapshot. Only metadata is read.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import PipelineConfig
from engine.ops.inspect import AccountView, RunInfo, account_runs, account_views
from engine.store.history import (
    HistoryCorrupt,
    HistoryUnreadable,
    as_abandoned,
    history,
    open_readonly,
)
from engine.store.lock import lock_owner
from engine.store.workspace import Workspace


@dataclass(frozen=True)
class Snapshot:
    """A consistent view of the workspace for the panes."""

    views: list[AccountView]
    runs: dict[str, list[RunInfo]]
    lock_holder: str | None
    durations: dict[str, dict[str, float]] = field(default_factory=dict)
    """extractor -> vault run (`dt=.../run_id=...`) -> extract seconds, from the run history."""
    clients: dict[str, int] | None = None
    """PHI-free counts of the client layer (clients, links, conflicts, unlinked), if projected."""


_COUNTS: dict[tuple[object, ...], dict[str, int] | None] = {}
"""The last client counts, keyed by the index database's files' sizes and times (one entry)."""


def index_stamp(path: Path) -> tuple[object, ...] | None:
    """(size, mtime) of the index database and its write-ahead log: changes whenever it does."""
    stamp: list[object] = [str(path)]
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
        except FileNotFoundError:
            stamp.append(None)
            continue
        stamp.append((st.st_size, st.st_mtime_ns))
    return tuple(stamp) if stamp[1] is not None else None


def client_counts(ws: Workspace) -> dict[str, int] | None:
    """The client layer's counts from the index database (numbers only), or None.

    Counting links reads a table as large as the linked documents, so the result is kept
    until the database changes: rescans after extract or canonize tasks cost nothing here.
    """
    path = ws.vector_store / "index.sqlite"
    stamp = index_stamp(path)
    if stamp is None:
        return None
    if stamp in _COUNTS:
        return _COUNTS[stamp]
    found = _count_clients(path)
    _COUNTS.clear()
    _COUNTS[stamp] = found
    return found


def _count_clients(path: Path) -> dict[str, int] | None:
    from engine.clients.tables import counts

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return counts(con)
        finally:
            con.close()
    except sqlite3.Error:
        return None


def index_shas(ws: Workspace) -> dict[tuple[str, str], str] | None:
    """(source, account) -> canonical sha256 the index was built from, if an index exists."""
    path = ws.vector_store / "index.sqlite"
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            cols = {r[1] for r in con.execute("PRAGMA table_info(accounts)")}
            sha_col = next((c for c in ("canonical_sha256", "canonical_sha", "source_sha256") if c in cols), None)
            if sha_col is None:
                return None
            rows = con.execute(f"SELECT source, account, {sha_col} FROM accounts").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return {(str(s), str(a)): str(h) for s, a, h in rows}


def lock_is_free(state_dir: Path) -> bool:
    """Whether no live process (this one included) holds the workspace lock, so a run the
    history still calls ``running`` was killed before it recorded its end."""
    owner = lock_owner(state_dir / "lock")
    return owner is None or (owner.pid != os.getpid() and not owner.alive)


def newest_runs(db: Path, limit: int) -> list[dict[str, Any]] | HistoryCorrupt:
    """The newest ``limit`` runs, newest first, as the history screen lists them: a newest run
    still ``running`` with no live lock holder is ``abandoned`` (as `status` says). A history
    that is damaged or cannot be read now comes back as the exception, never raised."""
    try:
        rows = history(db, limit)
        if rows and rows[0]["status"] == "running" and lock_is_free(db.parent):  # killed before its end
            rows[0] = as_abandoned(db, rows[0])
    except HistoryCorrupt as bad:
        return bad
    except sqlite3.DatabaseError as exc:  # locked or failing between the open and a query
        return HistoryUnreadable(db, str(exc))
    return rows


def lock_holder(ws: Workspace) -> str | None:
    """`pid 123 (lorch-tui --no-ui)` when another live process holds the workspace lock."""
    owner = lock_owner(ws.state / "lock")
    if owner is None or owner.pid == os.getpid() or not owner.alive:
        return None
    return f"pid {owner.pid} ({owner.command})"


def extract_durations(ws: Workspace, limit: int = 5000) -> dict[str, dict[str, float]]:
    """Seconds each extract took, per extractor and vault run, from the run history."""
    try:
        conn = open_readonly(ws.state_db)
    except HistoryCorrupt:  # `status` names it; the dashboard shows the vault without durations
        return {}
    if conn is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    try:
        rows = conn.execute("SELECT extractor, vault_run, duration_s FROM tasks WHERE stage = 'extract' "
                            "AND vault_run IS NOT NULL AND duration_s IS NOT NULL "
                            "ORDER BY started_at DESC LIMIT ?", (limit,)).fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    for ex, run, secs in rows:
        out.setdefault(str(ex), {}).setdefault(str(run), float(secs))
    return out


def scan(cfg: PipelineConfig, ws: Workspace, run_limit: int = 30) -> Snapshot:
    """Read every account's LATEST view and newest runs."""
    views = account_views(cfg, ws, index_shas(ws))
    runs = {ex.name: account_runs(cfg, ws, ex, run_limit) for ex in cfg.extractors}
    return Snapshot(views, runs, lock_holder(ws), extract_durations(ws), clients=client_counts(ws))
