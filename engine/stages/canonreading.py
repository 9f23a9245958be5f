"""The vault side of canonize: finding the run LATEST names and checking its parts.

Split from :mod:`engine.stages.canonize` so the worker module keeps the transform loop and
the publish, and what it reads from the vault (and refuses, with a stable code) is in one
place: the LATEST pointer and its run's manifest, each part against its manifest entry,
and the parts' size and mtime that tell a later task whether they are still the files it
verified. :class:`CanonizeFailed` is here because the reading is the first to raise it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.events import ErrorCode
from engine.store.fsutil import NotRegularFile
from engine.vault.chain import ChainRun
from engine.vault.layout import DT_DIR, RUN_DIR, RunRef, read_latest, read_manifest
from engine.vault.reader import verify_part


class CanonizeFailed(Exception):
    """The account cannot be canonized; carries a stable code."""

    def __init__(self, code: ErrorCode, detail: str | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.detail = detail


def latest_run(account_dir: Path) -> ChainRun:
    """The successful run the account's LATEST names, with its manifest; CanonizeFailed
    with the code of the first thing that is missing or wrong."""
    try:
        latest = read_latest(account_dir)
    except NotRegularFile:  # a FIFO or the like planted as LATEST.json
        raise CanonizeFailed(ErrorCode.LATEST_INVALID) from None
    except OSError:
        raise CanonizeFailed(ErrorCode.NO_LATEST) from None
    except (ValueError, AssertionError):
        raise CanonizeFailed(ErrorCode.LATEST_INVALID) from None
    if latest is None:
        raise CanonizeFailed(ErrorCode.NO_LATEST)
    dt, run_id = str(latest.get("dt")), str(latest.get("run_id"))
    if not (DT_DIR.fullmatch(f"dt={dt}") and RUN_DIR.fullmatch(f"run_id={run_id}")):
        raise CanonizeFailed(ErrorCode.LATEST_INVALID)  # never build a path from an odd value
    run_dir = RunRef(dt, run_id).path(account_dir)
    if not run_dir.is_dir():
        raise CanonizeFailed(ErrorCode.RUN_MISSING)
    try:
        manifest = read_manifest(run_dir)
    except FileNotFoundError:
        raise CanonizeFailed(ErrorCode.MANIFEST_MISSING) from None
    except (OSError, ValueError, AssertionError):
        raise CanonizeFailed(ErrorCode.MANIFEST_INVALID) from None
    if manifest.get("status") != "success":  # LATEST may only name a successful run
        raise CanonizeFailed(ErrorCode.LATEST_NOT_SUCCESS)
    return ChainRun(run_dir, manifest)


def check_part(run_dir: Path, part: dict[str, Any]) -> None:
    """CanonizeFailed with the part's code unless it matches its manifest entry; its detail
    is the part's path (the manifest's for a name that is not a part's, never opened)."""
    problem = verify_part(run_dir, part)
    if problem is not None:
        bad_name = problem == ErrorCode.MANIFEST_INVALID.value
        raise CanonizeFailed(ErrorCode(problem), str(run_dir / ("manifest.json" if bad_name else part["file"])))


def part_stats(chain: list[ChainRun]) -> dict[str, list[int] | None]:
    """Every part of the chain -> [size, mtime_ns] now (None when it cannot be stat'ed);
    the size must also be the manifest's, or the entry is None."""
    stats: dict[str, list[int] | None] = {}
    for run in chain:
        for part in run.manifest.get("parts", []):
            name = str(part.get("file", ""))
            key = f"{run.path.parent.name}/{run.path.name}/{name}"
            try:
                st = os.stat(run.path / name)
            except (OSError, ValueError):
                stats[key] = None
                continue
            stats[key] = [st.st_size, st.st_mtime_ns] if st.st_size == part.get("bytes") else None
    return stats
