"""Old vault runs a practice may let go: ``lorchestra clean --older-than DAYS``.

Every extract keeps a whole run in the vault, so a nightly full refresh of a mailbox grows it
by gigabytes a year, and deleting old ``dt=`` folders by hand broke incremental accounts (a
run of LATEST's chain gone: ``INCREMENTAL_CHAIN_BROKEN`` until a full extract). This picks
the run folders that can go without changing anything a stage reads:

* runs that started more than ``days`` days ago (by their run id, UTC), of any status;
* never LATEST's run, nor any run of its incremental chain back to the last full run
  (canonize reads all of them);
* nothing of an account whose LATEST is missing or unreadable, or whose chain is broken:
  what canonize would read cannot be told, so the account is left as it is.

Hidden ``.run_id=*.partial`` folders are ``clean --partials``'s, not this.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.ops.cleanup import Target, _measure
from engine.store.workspace import Workspace
from engine.vault.chain import ChainBroken, ChainRun, incremental_chain
from engine.vault.layout import DT_DIR, RUN_DIR, RunRef, read_latest, read_manifest


def old_run_targets(ws: Workspace, days: int, now: datetime | None = None) -> list[Target]:
    """The vault run folders older than ``days`` that no stage reads (see the module)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    out: list[Target] = []
    for account in sorted(ws.vault.glob("*/*/*")):
        if account.is_dir() and not account.is_symlink():
            out += _account_targets(account, cutoff)
    return out


def _account_targets(account: Path, cutoff: datetime) -> list[Target]:
    keep = _kept(account)
    if keep is None:
        return []
    out: list[Target] = []
    for dt in sorted(account.iterdir()):
        if not (DT_DIR.fullmatch(dt.name) and dt.is_dir() and not dt.is_symlink()):
            continue
        for run in sorted(dt.iterdir()):
            started = _started(run.name)
            if (RUN_DIR.fullmatch(run.name) and run.is_dir() and not run.is_symlink()
                    and started is not None and started < cutoff and run not in keep):
                files, size = _measure(run)
                out.append(Target("old runs", run, files, size, runs=1, vault=True))
    return out


def _kept(account: Path) -> set[Path] | None:
    """LATEST's run and its incremental chain; None when they cannot be told (keep all)."""
    try:
        latest = read_latest(account)
    except (OSError, ValueError):
        return None
    if latest is None:
        return None
    ref = RunRef(str(latest["dt"]), str(latest["run_id"]))
    path = ref.path(account)
    try:
        chain = incremental_chain(account, ChainRun(path, read_manifest(path)))
    except (OSError, ValueError, AssertionError, ChainBroken):
        return None
    return {r.path for r in chain}


def _started(name: str) -> datetime | None:
    """The start time a ``run_id=YYYYMMDDTHHMMSSZ`` folder name gives (UTC)."""
    try:
        return datetime.strptime(name.removeprefix("run_id=")[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
