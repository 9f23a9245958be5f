"""The index worker: one account's canonical file -> the vector-store document index.

It wraps :class:`engine.index.load.AccountLoader` in the worker contract every stage keeps:
read the spec, do the work, emit PHI-free events (progress at most every 0.25 s, one
``task_finished`` whose ``records`` is the account's document count), return 0 or 1. The
events carry counts, byte sizes and stable error codes; never record content.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine import cancel
from engine.canon.publish import AccountFiles, read_meta, recover
from engine.canon.registry import Registry
from engine.errors import say_os_error
from engine.events import (
    ErrorCode,
    EventBase,
    TaskFinished,
    TaskProgress,
    TaskWarning,
    write_error_code,
)
from engine.index.load import AccountLoader
from engine.index.outcome import LoadFailed, canonical_paths
from engine.index.store import StoreError
from engine.stages.spec import TaskSpec
from engine.store.fsutil import section
from engine.store.workspace import Workspace

Emit = Callable[[EventBase], None]
PROGRESS_EVERY_S = 0.25


def transforms_by_kind(spec: TaskSpec) -> dict[str, str]:
    """Which transform id produced each kind of this account (from the canonical provenance).

    The meta names transforms per stream; the registry says which kind each one outputs. A
    transform the registry no longer knows is attributed only when it is the sole one.
    """
    ws = Workspace(spec.workspace)
    data_path, _ = canonical_paths(ws, spec.extractor.source, spec.extractor.account)
    meta = read_meta(AccountFiles(data_path.parent, spec.extractor.account)) or {}
    try:
        used: dict[str, Any] = meta.get("inputs", {}).get("transforms", {}) or {}
    except (OSError, ValueError, AttributeError):
        return {}
    ids = [str(t.get("id")) for t in used.values() if isinstance(t, dict) and t.get("id")]
    out: dict[str, str] = {}
    try:
        registry = Registry.load(spec.canonize.transforms_dir, spec.canonize.schemas_dir)
    except OSError:
        registry = None
    for tid in ids:
        t = registry.transforms.get(tid) if registry is not None else None
        if t is not None:
            out[t.kind] = tid
    if not out and len(set(ids)) == 1:
        kinds = section(meta, "output").get("kinds") or {}
        out = {str(k): ids[0] for k in kinds}
    return out


def _load(spec: TaskSpec, progress: Callable[[int, int | None], None]
          ) -> tuple[str, str | None, int | None, AccountLoader]:
    """The account's load: (status, error code, line, the loader with its result)."""
    ex = spec.extractor
    try:  # finish a canonical publish a killed canonize worker left half-done
        recover(AccountFiles(Workspace(spec.workspace).canonical / ex.source, ex.account))
    except OSError:
        pass  # the loader reports what it finds (CHECKSUM_MISMATCH, NO_CANONICAL)
    loader = AccountLoader(Workspace(spec.workspace), ex.source, ex.account, force=spec.force,
                           transforms=transforms_by_kind(spec), progress=progress,
                           vectors=spec.index.vectors)
    try:
        return loader.run().status, None, None, loader
    except LoadFailed as exc:
        return "failed", exc.code, exc.line, loader
    except StoreError as exc:
        return "failed", exc.code, None, loader
    except cancel.Cancelled:
        return "cancelled", ErrorCode.CANCELLED.value, None, loader
    except OSError as exc:
        say_os_error("index", exc)
        return "failed", write_error_code(exc).value, None, loader


def run_index(spec: TaskSpec, emit: Emit) -> int:
    """Run the index task; emit events; return the worker's exit code."""
    started = time.monotonic()
    ex = spec.extractor
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or (total is not None and done >= total):
            last[0] = now
            emit(TaskProgress(task_id=spec.task_id, stage="index", extractor=ex.name,
                              records=done, total=total))

    with cancel.on_sigterm():  # SIGTERM: the loader stops after its batch and rolls back
        status, code, line, loader = _load(spec, progress)
    result = loader.result
    if result.vectors_unavailable:
        emit(TaskWarning(task_id=spec.task_id, stage="index", extractor=ex.name,
                         code=ErrorCode.VECTORS_UNAVAILABLE.value, count=1))
    if result.duplicates:
        emit(TaskWarning(task_id=spec.task_id, stage="index", extractor=ex.name,
                         code=ErrorCode.DUPLICATE_ENTITY.value, count=result.duplicates))
    emit(TaskFinished(
        task_id=spec.task_id, stage="index", extractor=ex.name, account=ex.account,
        status=status, attempt=spec.attempt, records=result.documents,  # type: ignore[arg-type]
        bytes=result.object_bytes,
        uncompressed_bytes=result.object_bytes, duration_s=round(time.monotonic() - started, 3),
        error_code=code, line=line,
    ))
    return 0 if status in ("success", "skipped") else 1
