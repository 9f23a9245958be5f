"""A fixed, realistic workspace for screenshots: same pixels on every run.

Everything the dashboard shows is under control here: the workspace lives at a fixed path
(the path is in the header); vault runs are written in the real layout (engine.vault.layout)
under fixed run ids with fixed bytes; ``LATEST.json`` ages are whole hours or days before
*now* (so "3h" stays "3h"); the log lines carry fixed times; and the progress pane's clock is
frozen (:class:`FrozenClock`). The engine is the fake one: events are injected, never timed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import types
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from engine.config.load import LoadedConfig, load
from engine.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskProgress,
    TaskQueued,
    TaskStarted,
)
from engine.store.fsutil import atomic_write_json, ensure_dir, open_private
from engine.store.logsink import level_of, log_path
from engine.vault.layout import MANIFEST, RunRef, write_latest
from tests.tui.dash import MAPPINGS

ROOT = Path("/tmp/lorch-snapshot")
LOCK = Path("/tmp/lorch-snapshot.lock")
DT = "2026-01-05"
CRON_RUN = "20260105T021500Z-c7a1e2"
LIVE_RUN = "20260105T101500Z-d4b9f0"

# name, domain, source, account, tap, streams
ACCOUNTS = (
    ("tap-gmail--acct1-personal", "email", "gmail", "acct1-personal", "gmail", ("messages",)),
    ("tap-msgraph-mail--ben-mensio", "email", "exchange", "ben-mensio", "msgraph", ("messages",)),
    ("tap-dataverse--mensio", "clinical", "dataverse", "mensio", "dataverse", ("contacts", "cr123_sessions")),
    ("tap-sheets--intake-log", "ops", "sheets", "intake-log", "sheets", ("Clients", "Session_Log")),
    ("tap-quickbooks--mensio", "finance", "quickbooks", "mensio", "quickbooks", ("customers", "invoices")),
)
NAMES = [a[0] for a in ACCOUNTS]


@contextmanager
def exclusive() -> Iterator[None]:
    """Only one process at a time may use the fixed path (parallel test runs wait here)."""
    with open(LOCK, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_config(root: Path = ROOT) -> Path:
    """A config of the five accounts (demo taps) with its workspace at root/ws."""
    cfg = {
        "pipeline": {"name": "clinic-pipeline", "version": "1.0.0"},
        "workspace": str(root / "ws"),
        "extractors": [{"name": n, "domain": d, "source": s, "account": a, "kind": "demo",
                        "demo": {"tap": tap, "records": 200, "seed": i + 1}, "streams": list(streams)}
                       for i, (n, d, s, a, tap, streams) in enumerate(ACCOUNTS)],
        "stages": {"canonize": {"mappings": [m for m in MAPPINGS]}},
    }
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def fresh_root(root: Path = ROOT) -> LoadedConfig:
    """An empty scene: the config and no workspace yet."""
    shutil.rmtree(root, ignore_errors=True)
    old = os.umask(0o077)
    try:
        return load(write_config(root))
    finally:
        os.umask(old)


def _records(stream: str, n: int, seed: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"{stream[:3]}-{seed}-{i:05d}", "seq": i, "kind": stream, "note": "synthetic " * (i % 7)}


def _run(acct: Path, run_id: str, streams: tuple[str, ...], records: int, seed: int,
         status: str = "success", error_code: str | None = None) -> RunRef:
    """A finished run folder in the vault's layout: one gzip part and its manifest.

    Written here rather than by the engine's RunWriter so that the bytes (and the sizes and
    ratios on screen) do not depend on which compressor the writer picks."""
    ref = RunRef(DT, run_id)
    run = ensure_dir(ref.path(acct))
    counts: dict[str, int] = {}
    lines: list[bytes] = []
    for k, stream in enumerate(streams):
        share = records // len(streams) + (records % len(streams) if k == 0 else 0)
        counts[stream] = share
        lines += [orjson.dumps({"stream": stream, "record": rec}) + b"\n" for rec in _records(stream, share, seed)]
    parts: list[dict[str, Any]] = []
    if lines:
        raw = b"".join(lines)
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        data = packer.compress(raw) + packer.flush()
        with open_private(run / "part-000.jsonl.gz", "wb") as fh:
            fh.write(data)
        parts.append({"file": "part-000.jsonl.gz", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                      "uncompressed_bytes": len(raw), "records": len(lines), "streams": counts})
    total = sum(p["bytes"] for p in parts)
    raw_total = sum(p["uncompressed_bytes"] for p in parts)
    schema = {"type": "object", "properties": {"id": {"type": "string"}}}
    manifest: dict[str, Any] = {
        "format": 1, "status": status, "extractor": acct.name, "trigger": "cron", "dt": ref.dt,
        "run_id": ref.run_id, "started_at": f"{DT}T02:15:00.000Z", "finished_at": f"{DT}T02:15:04.000Z",
        "records": records, "bytes": total, "uncompressed_bytes": raw_total,
        "compression_ratio": round(raw_total / total, 3) if total else None,
        "streams": {st: {"records": n, "schemas": [{"sha256": "0" * 64, "schema": schema, "key_properties": ["id"],
                                                    "first_record": 0}]} for st, n in counts.items()},
        "parts": parts,
        "state": {"bookmarks": {st: {"seq": n} for st, n in counts.items()}} if status == "success" else None,
        "state_messages": 1 if status == "success" else 0,
    }
    if error_code:
        manifest["error_code"] = error_code
    atomic_write_json(run / MANIFEST, manifest)
    return ref


def _latest(acct: Path, ref: RunRef, records: int, age: timedelta, now: datetime) -> None:
    write_latest(acct, ref, records)
    when = (now - age).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    atomic_write_json(acct / "LATEST.json", {"dt": ref.dt, "run_id": ref.run_id, "updated_at": when,
                                             "records": records})


def _canonical(ws: Path, source: str, account: str, run_id: str, records: int) -> None:
    atomic_write_json(ws / "canonical" / source / f"{account}.meta.json",
                      {"inputs": {"run": {"run_id": run_id}}, "output": {"records": records, "sha256": "0" * 64}})


def cron_log() -> list[Event]:
    """The events of last night's cron run, as the log holds them (fixed times)."""
    t = "2026-01-05T02:15:{:02d}.000Z"
    evs: list[Event] = [RunStarted(ts=t.format(0), run_id=CRON_RUN, trigger="cron", pipeline="clinic-pipeline",
                                   stages=["extract"], tasks=4)]
    for k, (name, _, _, acct, _, _) in enumerate(ACCOUNTS[:4]):
        tid = f"extract:{name}"
        evs.append(TaskQueued(ts=t.format(0), task_id=tid, stage="extract", extractor=name, account=acct))
        evs.append(TaskStarted(ts=t.format(1), task_id=tid, stage="extract", extractor=name, account=acct,
                               attempt=1, pid=3100 + k))
    evs += [
        TaskFinished(ts=t.format(4), task_id="extract:tap-gmail--acct1-personal", stage="extract",
                     extractor="tap-gmail--acct1-personal", account="acct1-personal", status="success",
                     records=214, parts=1, duration_s=3.4),
        TaskFinished(ts=t.format(5), task_id="extract:tap-msgraph-mail--ben-mensio", stage="extract",
                     extractor="tap-msgraph-mail--ben-mensio", account="ben-mensio", status="success",
                     records=198, parts=1, duration_s=4.1),
        TaskFinished(ts=t.format(6), task_id="extract:tap-dataverse--mensio", stage="extract",
                     extractor="tap-dataverse--mensio", account="mensio", status="failed",
                     error_code="TAP_EXIT_NONZERO", exit_code=1, duration_s=1.2),
        TaskFinished(ts=t.format(7), task_id="extract:tap-sheets--intake-log", stage="extract",
                     extractor="tap-sheets--intake-log", account="intake-log", status="success",
                     records=150, parts=1, duration_s=2.2),
        RunFinished(ts=t.format(7), run_id=CRON_RUN, status="failed", tasks=4, succeeded=3, failed=1,
                    cancelled=0, records=562, duration_s=7.3),
    ]
    return evs


def populate(root: Path = ROOT, now: datetime | None = None) -> LoadedConfig:
    """The scene with history: runs of every kind, LATEST pointers of several ages, a log."""
    loaded = fresh_root(root)
    now = now or datetime.now(UTC)
    ws = loaded.workspace
    old = os.umask(0o077)
    try:
        vault = ensure_dir(ws / "vault")
        hours = timedelta(hours=3, minutes=10)
        for i, (name, domain, source, account, _, streams) in enumerate(ACCOUNTS):
            acct = vault / domain / source / account
            seed = i + 1
            if name == "tap-gmail--acct1-personal":
                _run(acct, "20260103T021500Z", streams, 180, seed)
                _run(acct, "20260104T021500Z", streams, 200, seed)
                ref = _run(acct, "20260105T021500Z", streams, 214, seed)
                _latest(acct, ref, 214, hours, now)
                _canonical(ws, source, account, ref.run_id, 214)
            elif name == "tap-msgraph-mail--ben-mensio":
                first = _run(acct, "20260104T021500Z", streams, 190, seed)
                ref = _run(acct, "20260105T021500Z", streams, 198, seed)
                _latest(acct, ref, 198, hours, now)
                _canonical(ws, source, account, first.run_id, 190)  # behind LATEST
            elif name == "tap-dataverse--mensio":
                ref = _run(acct, "20260103T021500Z", streams, 120, seed)
                _run(acct, "20260105T021500Z", streams, 0, seed, status="failed", error_code="TAP_EXIT_NONZERO")
                _latest(acct, ref, 120, timedelta(days=2, hours=8), now)  # stale
                _canonical(ws, source, account, ref.run_id, 120)
            elif name == "tap-sheets--intake-log":
                ref = _run(acct, "20260105T021500Z", streams, 150, seed)
                _latest(acct, ref, 150, hours, now)
            # quickbooks: never run
        logs = ensure_dir(ws / "logs")
        with open_private(log_path(logs), "ab") as fh:
            for ev in cron_log():
                line = {"level": level_of(ev), **ev.model_dump(mode="json", exclude_none=True)}
                fh.write(orjson.dumps(line) + b"\n")
    finally:
        os.umask(old)
    return load(loaded.path)


def mid_run_events() -> list[Event]:
    """A dashboard run caught in the middle: two extracts running, one done, two queued."""
    g, x, d, s, q = ACCOUNTS
    evs: list[Event] = [RunStarted(run_id=LIVE_RUN, trigger="dashboard", pipeline="clinic-pipeline",
                                   stages=["extract", "canonize"], tasks=6)]
    plan = [("extract", g), ("extract", x), ("extract", s), ("canonize", s), ("extract", q), ("canonize", g)]
    evs += [TaskQueued(task_id=f"{st}:{a[0]}", stage=st, extractor=a[0], account=a[3]) for st, a in plan]
    for st, a in plan[:2]:
        evs.append(TaskStarted(task_id=f"{st}:{a[0]}", stage=st, extractor=a[0], account=a[3], attempt=1, pid=5000))
    evs.append(TaskProgress(task_id=f"extract:{g[0]}", stage="extract", extractor=g[0], records=1408, total=2400))
    evs.append(TaskProgress(task_id=f"extract:{x[0]}", stage="extract", extractor=x[0], records=655))
    evs.append(TaskFinished(task_id=f"extract:{s[0]}", stage="extract", extractor=s[0], account=s[3],
                            status="success", records=150, parts=1, duration_s=2.4))
    evs.append(TaskFinished(task_id=f"canonize:{s[0]}", stage="canonize", extractor=s[0], account=s[3],
                            status="success", records=150, duration_s=0.9))
    return evs


def failed_run_events() -> list[Event]:
    """A dashboard rerun of one account whose tap exits 1."""
    _, _, d, _, _ = ACCOUNTS
    tid = f"extract:{d[0]}"
    return [
        RunStarted(run_id=LIVE_RUN, trigger="dashboard", pipeline="clinic-pipeline", stages=["extract"], tasks=1),
        TaskQueued(task_id=tid, stage="extract", extractor=d[0], account=d[3]),
        TaskStarted(task_id=tid, stage="extract", extractor=d[0], account=d[3], attempt=1, pid=5100),
        TaskFinished(task_id=tid, stage="extract", extractor=d[0], account=d[3], status="failed",
                     error_code="TAP_EXIT_NONZERO", exit_code=1, duration_s=1.3, records=40, parts=1,
                     vault_run=f"dt={DT}/run_id=20260105T101501Z", stderr_lines=3),
        RunFinished(run_id=LIVE_RUN, status="failed", tasks=1, succeeded=0, failed=1, cancelled=0,
                    records=0, duration_s=1.4),
    ]


class FrozenClock:
    """Stands in for ``time`` in lorch_tui.model: elapsed times and rates stop moving."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(monotonic=self.monotonic)
