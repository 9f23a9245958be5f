"""What a load of one account reports, and where its input lives: shared by the loader and the stage.

Why a module of its own: the index stage (:mod:`engine.stages.index`), the measures step and
the benchmarks name these (the result's counts, the stable failure codes, the canonical
file's path) without needing the loading machinery of :mod:`engine.index.load`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.errors import sqlite_full
from engine.events import is_disk_full
from engine.store.workspace import Workspace


def sqlite_code(exc: sqlite3.Error) -> str:
    """``DISK_FULL`` when SQLite ran out of space (:func:`engine.errors.sqlite_full`, or
    ENOSPC), else ``INDEX_DB_ERROR``."""
    if sqlite_full(exc) or is_disk_full(exc):
        return "DISK_FULL"
    return "INDEX_DB_ERROR"


def sqlite_failure(exc: sqlite3.Error) -> str:
    """The failure code of an index read or write that SQLite refused, the same in every stage:
    ``DISK_FULL``, ``INDEX_CORRUPT`` for a file that is not a database or a malformed one (a
    ``DatabaseError`` that is not an ``OperationalError``), else ``INDEX_DB_ERROR``. The index
    tasks said INDEX_CORRUPT for a garbage index.sqlite and the project task INDEX_DB_ERROR."""
    code = sqlite_code(exc)
    if code == "INDEX_DB_ERROR" and isinstance(exc, sqlite3.DatabaseError) \
            and not isinstance(exc, sqlite3.OperationalError):
        return "INDEX_CORRUPT"
    return code


class LoadFailed(Exception):
    """The account cannot be indexed; ``code`` is an ErrorCode value, ``line`` the input line."""

    def __init__(self, code: str, line: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.line = line


@dataclass
class LoadResult:
    """What one load did (counts only: safe for events)."""

    status: Literal["success", "skipped"] = "success"
    documents: int = 0
    inserted: int = 0
    deleted: int = 0
    duplicates: int = 0
    objects_written: int = 0
    object_bytes: int = 0
    objects_removed: int = 0
    mode: Literal["one-pass", "two-phase", ""] = ""
    """How the load reached its transaction (empty when skipped): two phases when another
    loader was running, else one pass (docs/index.md section 6)."""
    prepared_again: int = 0
    """Times phase A was redone because the account changed before the swap (then, after
    the last try, the one-pass load)."""
    vectors: int = 0
    """Documents embedded by this load (new ones, and unchanged ones whose vector was missing)."""
    vectors_unavailable: bool = False
    """The embedding model could not load: the documents indexed without vectors."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per phase: prepare (phase A's set-up), begin (waiting for the write lock),
    replay (phase B: the spill into the index), read (hash, diff, parse, hand
    over; the inserts run meanwhile in the insert thread), embed (waiting for the embedding
    thread's last vectors), insert (waiting for the insert thread's last statements),
    transaction (the diff's swap, the account row, the commit), objects (waiting for the object
    writes left + flush; flush alone is also given) and gc."""


def canonical_paths(ws: Workspace, source: str, account: str) -> tuple[Path, Path]:
    """The canonical data file and its meta file."""
    base = ws.canonical / source
    return base / f"{account}.jsonl", base / f"{account}.meta.json"


def vault_run_of(inputs: dict[str, Any]) -> str | None:
    """``dt=.../run_id=...`` of the LATEST run the canonical file came from."""
    run = inputs.get("run") or {}
    if run.get("dt") and run.get("run_id"):
        return f"dt={run['dt']}/run_id={run['run_id']}"
    return None
