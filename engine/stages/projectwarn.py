"""The project task's warnings: what a person should act on after a projection.

Kept apart from :mod:`engine.stages.project` (which does the work) because the same warnings
come from two places: a projection that ran says what it found, and a skipped one (nothing
changed since) says again what the last one stored, since open conflicts, unscored responses,
a positive critical item in no chart and overrides not applied stay true until someone acts.
Counts and codes only, never a name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.clients.model import Projection
from engine.events import ErrorCode, Event, TaskWarning
from engine.measures.step import MeasuresResult
from engine.stages.spec import TaskSpec

Emit = Callable[[Event], None]

STORED = ((ErrorCode.CLIENT_CONFLICTS, "count_conflicts"),
          (ErrorCode.MEASURES_NOT_SCORED, "measures_not_scored"),
          (ErrorCode.MEASURES_CRITICAL_UNLINKED, "measures_critical_unlinked"),
          (ErrorCode.OVERRIDE_UNUSED, "overrides_unused"),
          (ErrorCode.OVERRIDE_STALE, "overrides_stale"))
"""Each warning said again by a skipped projection, and the ``clients_meta`` key of its count."""


def count(value: object) -> int:
    """A stored count (``clients_meta`` holds text); 0 when missing or damaged."""
    try:
        return max(0, int(str(value)))
    except ValueError:
        return 0


def _warn(spec: TaskSpec, emit: Emit, code: ErrorCode, n: int, detail: str | None = None) -> None:
    if n:
        emit(TaskWarning(task_id=spec.task_id, stage="project", extractor=spec.extractor.name,
                         code=code.value, count=n, detail_path=detail))


def projected(spec: TaskSpec, p: Projection, m: MeasuresResult | None, stale_overrides: int, emit: Emit,
              moved: int = 0) -> None:
    """The warnings of a projection that ran (``moved``: :mod:`engine.clients.moved`; said by
    the projection that moved them only, since it is a change, not a state)."""
    _warn(spec, emit, ErrorCode.CLIENT_CONFLICTS, p.counts()["conflicts"])
    if m is not None:
        _warn(spec, emit, ErrorCode.MEASURES_NOT_SCORED, m.not_scored, m.rejects_path)
        _warn(spec, emit, ErrorCode.MEASURES_CRITICAL_UNLINKED, m.critical_unlinked)  # a positive item 9, no chart
    _warn(spec, emit, ErrorCode.OVERRIDE_UNUSED, p.unused_overrides)
    _warn(spec, emit, ErrorCode.OVERRIDE_STALE, stale_overrides)
    _warn(spec, emit, ErrorCode.LINKS_MOVED, moved)


def stored(spec: TaskSpec, meta: dict[str, str], emit: Emit, rejects: Path) -> None:
    """A skipped projection's warnings, from the counts the last one stored (a nightly run with
    nothing new said none of them)."""
    for code, key in STORED:
        detail = str(rejects) if code == ErrorCode.MEASURES_NOT_SCORED and rejects.is_file() else None
        _warn(spec, emit, code, count(meta.get(key)), detail)
