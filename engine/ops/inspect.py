"""Read-only views of a workspace for faces: runs per account, LATEST freshness, currency.

Only metadata is read (LATEST.json, manifests, canonical provenance); never a record.
The dashboard calls these from thread workers; ``status`` calls them directly. Stream
names come from the tap and may carry PHI, so a run's streams are labelled here, before
any face sees them: declared names as they are, others as placeholders (:mod:`engine.names`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.canon.publish import AccountFiles, plain_names_agree, read_meta
from engine.config import Extractor, PipelineConfig
from engine.names import Namer, stream_namer
from engine.store.fsutil import section
from engine.store.workspace import Workspace
from engine.vault.layout import list_runs, read_latest, read_manifest


@dataclass(frozen=True)
class RunInfo:
    """A vault run's manifest summary (no record content)."""

    dt: str
    run_id: str
    path: Path
    status: str
    records: int
    parts: int
    bytes: int
    ratio: float | None
    error_code: str | None
    streams: dict[str, int] = field(default_factory=dict)
    """Records per stream, keyed by the stream's label: its name when the config declares it,
    else a placeholder such as ``stream #2 (a1b2c3)``."""
    has_state: bool = False
    hidden_streams: int = 0
    """How many stream names are shown as placeholders (not declared in the config)."""


@dataclass(frozen=True)
class AccountView:
    """One extractor's account: its LATEST and whether later stages are current."""

    extractor: Extractor
    latest_run: str | None
    latest_records: int | None
    latest_age_s: float | None
    canonical_current: bool | None
    canonical_records: int | None
    index_current: bool | None
    drift: str | None = None
    """Source drift mark of LATEST (``engine.drift.compare.AccountDrift.mark``), if computed."""
    canonical_rejects: int = 0
    """Records the last canonize rejected (within the mapping's ``max_rejects``)."""
    latest_damaged: bool = False
    """``LATEST.json`` exists but does not read as a pointer (``verify``: ``LATEST_INVALID``)."""

    def stale(self, stale_after_hours: float) -> bool:
        """True when there is no LATEST, it is older than the threshold, or it was written in
        the future (the clock went back: its age proves nothing)."""
        age = self.latest_age_s
        return age is None or age < 0 or age > stale_after_hours * 3600


def count(value: object) -> int:
    """A count read from a manifest: a hand-edited or damaged one (``"12x"``, a list, -3) is
    shown as 0, never a crash (``verify`` names the damage)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def run_info(run_dir: Path, namer: Namer) -> RunInfo:
    """Summarize one run folder from its manifest (stream names labelled by ``namer``)."""
    try:
        m: dict[str, Any] = read_manifest(run_dir)
    except (OSError, ValueError):
        m = {"status": "unreadable"}
    found = m.get("streams")
    raw: dict[str, Any] = found if isinstance(found, dict) else {}
    labels = namer.show_all(raw)
    streams = {label: count((raw[name] if isinstance(raw[name], dict) else {}).get("records"))
               for name, label in labels}
    dt = run_dir.parent.name.removeprefix("dt=")
    parts = m.get("parts")
    ratio = m.get("compression_ratio")
    error = m.get("error_code")
    return RunInfo(dt=dt, run_id=run_dir.name.removeprefix("run_id="), path=run_dir,
                   status=str(m.get("status")), records=count(m.get("records")),
                   parts=len(parts) if isinstance(parts, list) else 0, bytes=count(m.get("bytes")),
                   ratio=ratio if isinstance(ratio, int | float) and not isinstance(ratio, bool) else None,
                   error_code=error if isinstance(error, str) else None,
                   streams=streams, has_state=m.get("state") is not None,
                   hidden_streams=sum(1 for name, label in labels if name != label))


def account_runs(cfg: PipelineConfig, ws: Workspace, ex: Extractor, limit: int = 50) -> list[RunInfo]:
    """The account's newest runs (any status), newest first; undeclared streams as placeholders."""
    acct = ws.account_dir(ex.domain, ex.source, ex.account)
    namer = stream_namer(cfg, ex, ws, create_key=False)
    return [run_info(r.path(acct), namer) for r in list_runs(acct, limit=limit)]


def _age_s(updated_at: str | None) -> float | None:
    if not updated_at:
        return None
    try:
        when = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    age = (datetime.now(UTC) - when).total_seconds()
    # a LATEST written "in the future" (the clock was set back since) is kept negative: past
    # FUTURE_SLACK_S it is no proof of freshness (it said "0m fresh" while extracts failed)
    return age if age < -FUTURE_SLACK_S else max(0.0, age)


FUTURE_SLACK_S = 300.0
"""How far in the future a LATEST may be written before its age is distrusted (clock skew)."""


def canonical_meta(ws: Workspace, ex: Extractor) -> dict[str, Any] | None:
    """The account's canonical provenance, if built."""
    return read_meta(AccountFiles(ws.canonical / ex.source, ex.account))


def account_view(ws: Workspace, ex: Extractor, index_shas: dict[tuple[str, str], str] | None = None) -> AccountView:
    """Freshness and currency of one account."""
    acct = ws.account_dir(ex.domain, ex.source, ex.account)
    damaged = False
    try:
        latest = read_latest(acct)
    except (OSError, ValueError):
        latest, damaged = None, True
    meta = canonical_meta(ws, ex)
    run_id = latest.get("run_id") if latest else None
    canon_current = None if meta is None or run_id is None else (
        meta.get("inputs", {}).get("run", {}).get("run_id") == run_id
        # plain names still linking an older generation (a kill mid re-link): not current
        and plain_names_agree(AccountFiles(ws.canonical / ex.source, ex.account)))
    index_current = None
    if meta is not None and index_shas is not None:
        built = index_shas.get((ex.source, ex.account))
        index_current = built is not None and built == section(meta, "output").get("sha256") and bool(canon_current)
    return AccountView(
        extractor=ex, latest_run=run_id, latest_records=latest.get("records") if latest else None,
        latest_age_s=_age_s(latest.get("updated_at")) if latest else None,
        canonical_current=canon_current,
        canonical_records=section(meta, "output").get("records") if meta else None,
        index_current=index_current, latest_damaged=damaged,
        canonical_rejects=int(meta.get("rejects") or 0) if meta else 0,
    )


def account_views(cfg: PipelineConfig, ws: Workspace,
                  index_shas: dict[tuple[str, str], str] | None = None) -> list[AccountView]:
    """Views of every configured account, in config order, with their drift marks."""
    from dataclasses import replace

    from engine.drift.compare import drift_marks

    marks = drift_marks(cfg, ws)
    return [replace(account_view(ws, ex, index_shas), drift=marks.get(ex.name)) for ex in cfg.extractors]


def missing_charts(ws: Workspace) -> int | None:
    """How many clients of the index's client table have no chart folder under ``clients/``
    (removed by hand, or a restore that left some out); None without client tables.

    One read of the folder names and one listing of ``clients/``: no chart is opened. The
    next projection writes the missing ones again (it is not skipped while one is missing).
    """
    import os
    import sqlite3

    path = ws.vector_store / "index.sqlite"
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            folders = [f for (f,) in con.execute("SELECT folder FROM clients")]
        finally:
            con.close()
    except sqlite3.Error:
        return None
    try:
        present = set(os.listdir(ws.root / "clients"))
    except FileNotFoundError:
        present = set()
    except OSError:
        return None
    return sum(1 for f in folders if f not in present)
