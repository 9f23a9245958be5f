"""Resource limits of task workers: wall clock, address space, and how a breach is named.

Nothing may hang the nightly run or take the machine down with it: every task attempt has
a wall-clock limit (extract per extractor, the other stages per stage section) enforced by
the engine, and every worker caps its own address space (``RLIMIT_AS``) before it touches
a record, so a transform that allocates without end fails one task with
``WORKER_OUT_OF_MEMORY`` instead of swapping the workstation to a halt. The per-record
transform limits live in :mod:`engine.canon.compiled`.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.config import PipelineConfig

OOM_MARKERS = (b"memory allocation of ", b"\nMemoryError")
"""What a worker's runtime prints when an allocation fails under its cap (Rust's abort
message, the last line of Python's traceback); fixed texts, never data."""
DIAG_TAIL_BYTES = 64 * 1024


class TaskLimits(BaseModel):
    """The limits of one task attempt, taken from its stage's config section."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    timeout_s: float | None = None
    """Wall-clock seconds the attempt may run (None: no limit; extract has its own per extractor)."""
    memory_limit_mb: int | None = None
    """The worker's address-space cap (RLIMIT_AS) in MiB (None: no cap)."""


def task_limits(cfg: PipelineConfig, stage: str) -> TaskLimits:
    """The limits of a task of ``stage``: its stage section's ``timeout_s`` and
    ``memory_limit_mb`` where that section has them (extract's time limit is per extractor)."""
    section: Any = getattr(cfg.stages, stage, None)
    timeout = getattr(section, "timeout_s", None) if stage != "extract" else None
    memory = getattr(section, "memory_limit_mb", None)
    return TaskLimits(timeout_s=timeout, memory_limit_mb=memory)


def cap_memory(limit_mb: int | None) -> None:
    """Set this process's soft ``RLIMIT_AS`` to ``limit_mb`` MiB (never above the hard limit).

    Only the soft limit moves, so a child that must not be capped (a tap) can raise it back
    with :func:`uncap_memory`.
    """
    if limit_mb is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = limit_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))


def uncap_memory() -> None:
    """In a child (a tap): lift the soft ``RLIMIT_AS`` back to the hard limit."""
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    except (ValueError, OSError):
        pass


def ran_out_of_memory(diagnostics: Path, since: int) -> bool:
    """Whether the worker's stderr, written from offset ``since`` on, says an allocation
    failed. Only fixed marker texts are looked for; nothing of the file is ever shown."""
    try:
        with open(diagnostics, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(since, size - DIAG_TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return False
    return any(marker in tail for marker in OOM_MARKERS)
