"""Which runs an account's canonical output is built from: LATEST and, for incremental
extracts, the runs back to the last full one.

An ``incremental: true`` extract passes the previous run's STATE, so its run holds only what
changed; its manifest names that previous run (``incremental.from_run``). Canonize reads the
chain (``engine.stages.chain``), and ``lorchestra verify`` checks it: both follow it here, in
the vault's own layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.vault.layout import DT_DIR, RUN_DIR, RunRef, read_manifest

MAX_CHAIN = 10_000


class ChainBroken(Exception):
    """A run in the incremental chain is missing or unreadable."""


@dataclass(frozen=True)
class ChainRun:
    """One run of the chain: its folder and manifest."""

    path: Path
    manifest: dict[str, Any]


def incremental_chain(account_dir: Path, latest: ChainRun) -> list[ChainRun]:
    """LATEST and, for incremental runs, every earlier run back to a full one (newest first)."""
    chain = [latest]
    seen = {latest.path}
    current = latest
    while True:
        inc = current.manifest.get("incremental") or {}
        if not (isinstance(inc, dict) and inc.get("state_passed") and inc.get("from_run")):
            return chain
        dt_part, _, run_part = str(inc["from_run"]).partition("/")
        if not (DT_DIR.fullmatch(dt_part) and RUN_DIR.fullmatch(run_part)):
            raise ChainBroken("from_run is not a run folder name")
        ref = RunRef(dt_part.removeprefix("dt="), run_part.removeprefix("run_id="))
        path = ref.path(account_dir)
        if path in seen or len(chain) >= MAX_CHAIN:
            raise ChainBroken("the incremental chain loops or is too long")
        try:
            manifest = read_manifest(path)
        except (OSError, ValueError, AssertionError):
            raise ChainBroken("a run of the incremental chain is gone or unreadable") from None
        if manifest.get("status") != "success":
            raise ChainBroken("a run of the incremental chain did not succeed")
        current = ChainRun(path, manifest)
        chain.append(current)
        seen.add(path)
