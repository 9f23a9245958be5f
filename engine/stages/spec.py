"""The task spec the engine hands a stage worker on its stdin.

It carries only config identifiers, paths and limits, so it can be logged or inspected
without risk; the worker validates it like any other input.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.config import (
    CanonizeStage,
    ClientsConfig,
    Extractor,
    ExtractStage,
    IndexStage,
    Loader,
)
from engine.events import Stage
from engine.limits import TaskLimits


class TaskSpec(BaseModel):
    """Everything a worker needs to run one task."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    task_id: str
    """The task id used in every event."""
    stage: Stage
    """Which stage to run."""
    attempt: int = 1
    """Which attempt this is."""
    workspace: Path
    """The workspace root."""
    extractor: Extractor
    """The extractor (account) the task is about."""
    extract: ExtractStage = ExtractStage()
    """Extract stage settings (part size, compression, grace period)."""
    canonize: CanonizeStage = CanonizeStage()
    """Canonize stage settings (mappings, registry folders)."""
    index: IndexStage = IndexStage()
    """Index stage settings (whether documents are embedded)."""
    force: bool = False
    """Rebuild even when the provenance proves nothing changed."""
    limits: TaskLimits = TaskLimits()
    """Wall-clock and memory limits of the attempt (see :func:`engine.limits.task_limits`)."""
    target: Loader | None = None
    """Extract only: pipe the tap into this Singer target instead of writing the vault."""
    clients: ClientsConfig | None = None
    """Project only: the config's `clients` section."""
    accounts: list[tuple[str, str]] | None = None
    """Project only: (source, account) of every extractor of the config; the index's other
    accounts (an extractor since removed) are not projected."""
