"""Names and pointers of the vault: run ids, run folders, manifests and ``LATEST.json``.

A run lives at ``{account}/dt=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/`` and is written under a
hidden temporary name first, so a reader listing runs never sees a half-written one.
``LATEST.json`` is replaced atomically and only for a run whose manifest says success.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.store.fsutil import atomic_write_json, read_json
from engine.vault.storage import LOCAL, Storage

RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"
RUN_DIR = re.compile(r"^run_id=(\d{8}T\d{6}Z)$")
DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
PARTIAL_DIR = re.compile(r"\.run_id=\d{8}T\d{6}Z\.partial")
"""A run being written, or left unfinished by a killed worker (match with ``fullmatch``)."""
MANIFEST = "manifest.json"
LATEST = "LATEST.json"
STDERR_LOG = "tap.stderr.log"


@dataclass(frozen=True)
class RunRef:
    """One run of one account: its date folder and run id."""

    dt: str
    run_id: str

    @property
    def rel(self) -> str:
        """The run folder relative to the account folder."""
        return f"dt={self.dt}/run_id={self.run_id}"

    def path(self, account_dir: Path) -> Path:
        """The final run folder."""
        return account_dir / f"dt={self.dt}" / f"run_id={self.run_id}"

    def temp_path(self, account_dir: Path) -> Path:
        """The hidden folder the run is written in before it is renamed."""
        return account_dir / f"dt={self.dt}" / f".run_id={self.run_id}.partial"


def new_run(account_dir: Path, now: datetime | None = None) -> RunRef:
    """A fresh run id for the account: the UTC time, bumped a second at a time past
    any run (final or partial) that already has it, so retries never collide."""
    t = (now or datetime.now(UTC)).replace(microsecond=0)
    while True:
        ref = RunRef(t.strftime("%Y-%m-%d"), t.strftime(RUN_ID_FORMAT))
        if not ref.path(account_dir).exists() and not ref.temp_path(account_dir).exists():
            return ref
        t += timedelta(seconds=1)


def list_runs(account_dir: Path, storage: Storage = LOCAL, limit: int | None = None) -> list[RunRef]:
    """Every completed run folder of the account (any status), newest first; with ``limit``,
    only the newest ``limit``.

    A run's ``dt=`` folder is its run id's date, so the newest runs live in the newest date
    folders: with a limit, date folders are read newest first and no further than needed,
    and the cost does not grow with the account's history.
    """
    runs: list[RunRef] = []
    for dt_name in reversed(storage.list(account_dir)):
        if limit is not None and len(runs) >= limit:
            break
        m = DT_DIR.fullmatch(dt_name)
        if not m or not storage.is_dir(account_dir / dt_name):
            continue
        for run_name in storage.list(account_dir / dt_name):
            r = RUN_DIR.fullmatch(run_name)
            if r and storage.is_dir(account_dir / dt_name / run_name):
                runs.append(RunRef(m.group(1), r.group(1)))
    newest = sorted(runs, key=lambda r: r.run_id, reverse=True)
    return newest if limit is None else newest[:limit]


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run folder (ValueError when it is not a JSON object)."""
    data = read_json(run_dir / MANIFEST)
    if not isinstance(data, dict):
        raise ValueError(f"{MANIFEST} is not a JSON object")
    return data


def read_latest(account_dir: Path) -> dict[str, Any] | None:
    """The account's LATEST pointer, or None when it has none yet (ValueError when it is not a
    pointer: not a JSON object, or ``dt``/``run_id`` missing or not run folder names, or
    ``updated_at``/``records`` of another type; every reader handles it as a damaged one)."""
    path = account_dir / LATEST
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{LATEST} is not a JSON object")
    dt, run_id = data.get("dt"), data.get("run_id")
    if not (isinstance(dt, str) and DT_DIR.fullmatch(f"dt={dt}")
            and isinstance(run_id, str) and RUN_DIR.fullmatch(f"run_id={run_id}")):
        raise ValueError(f"{LATEST} does not name a run (dt, run_id)")
    if not isinstance(data.get("updated_at"), str | None) or (
            data.get("records") is not None and (type(data["records"]) is not int)):
        raise ValueError(f"{LATEST} has an updated_at or records of another type")
    return data


def write_latest(account_dir: Path, ref: RunRef, records: int) -> None:
    """Point LATEST at ``ref`` atomically (the run's manifest must say success)."""
    manifest = read_manifest(ref.path(account_dir))
    if manifest.get("status") != "success":
        raise ValueError("LATEST may only point at a successful run")
    # imported here, not at the top: readers of the vault (`status`) skip the event models
    from engine.events import now_iso

    atomic_write_json(
        account_dir / LATEST,
        {"dt": ref.dt, "run_id": ref.run_id, "updated_at": now_iso(), "records": records},
    )
    # a temporary LATEST a killed worker left (one extract of an account at a time, under the
    # workspace lock: any other is stale); it stayed beside LATEST for good
    for stale in account_dir.glob(f".{LATEST}.tmp-*"):
        with contextlib.suppress(OSError):
            stale.unlink()
