"""Events: the only channel from stage workers to the engine and from the engine to faces.

Every event is a pydantic model with a closed field set (unknown fields are rejected), and
is PHI-free by construction: identifiers from the config, run ids, counts, bytes,
durations, checksums, workspace paths and a stable ``error_code`` (DESIGN.md section 5).
Workers write them as JSON lines on stdout; the engine validates each line with
:func:`parse_event` before it reaches any subscriber.
"""

from __future__ import annotations

import errno
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Stage = Literal["extract", "canonize", "index", "project"]
TaskStatus = Literal["success", "failed", "cancelled", "timeout", "skipped"]
Trigger = Literal["cli", "cron", "dashboard"]
Phase = Literal["read", "resolve", "measures", "index-measures", "tables", "charts"]
"""The steps of the project task, one after the other (docs/clients.md)."""


class ErrorCode(StrEnum):
    """Stable error codes; the only description of a failure that events carry."""

    TAP_NOT_FOUND = "TAP_NOT_FOUND"
    TAP_EXIT_NONZERO = "TAP_EXIT_NONZERO"
    TAP_OUTPUT_INVALID = "TAP_OUTPUT_INVALID"
    TAP_OUTPUT_EMPTY = "TAP_OUTPUT_EMPTY"
    TAP_MESSAGE_INVALID = "TAP_MESSAGE_INVALID"
    SCHEMA_MISSING = "SCHEMA_MISSING"
    UNKNOWN_MESSAGE = "UNKNOWN_MESSAGE"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    WRITE_FAILED = "WRITE_FAILED"
    WORKER_CRASHED = "WORKER_CRASHED"
    BAD_EVENT = "BAD_EVENT"
    NO_LATEST = "NO_LATEST"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    PART_MISSING = "PART_MISSING"
    PART_CORRUPT = "PART_CORRUPT"
    MANIFEST_MISSING = "MANIFEST_MISSING"
    RUN_MISSING = "RUN_MISSING"
    TRANSFORM_MISSING = "TRANSFORM_MISSING"
    TRANSFORM_INVALID = "TRANSFORM_INVALID"
    REJECTS_EXCEEDED = "REJECTS_EXCEEDED"
    UNMAPPED_STREAM = "UNMAPPED_STREAM"
    SOURCE_FIELD_VANISHED = "SOURCE_FIELD_VANISHED"
    NOTHING_MAPPED = "NOTHING_MAPPED"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    INCREMENTAL_CHAIN_BROKEN = "INCREMENTAL_CHAIN_BROKEN"
    DISCOVERY_FAILED = "DISCOVERY_FAILED"
    STATE_UNREADABLE = "STATE_UNREADABLE"
    BATCH_NOT_LOCAL = "BATCH_NOT_LOCAL"
    BATCH_FILE_MISSING = "BATCH_FILE_MISSING"
    BATCH_INVALID = "BATCH_INVALID"
    BATCH_UNSUPPORTED = "BATCH_UNSUPPORTED"
    TARGET_NOT_FOUND = "TARGET_NOT_FOUND"
    TARGET_EXIT_NONZERO = "TARGET_EXIT_NONZERO"
    NO_CANONICAL = "NO_CANONICAL"
    CANONICAL_INVALID = "CANONICAL_INVALID"
    DUPLICATE_ENTITY = "DUPLICATE_ENTITY"
    INDEX_DB_ERROR = "INDEX_DB_ERROR"
    INDEX_SCHEMA_MISMATCH = "INDEX_SCHEMA_MISMATCH"
    VECTORS_UNAVAILABLE = "VECTORS_UNAVAILABLE"
    LATEST_INVALID = "LATEST_INVALID"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    TRANSFORM_TIMEOUT = "TRANSFORM_TIMEOUT"
    TRANSFORM_TOO_DEEP = "TRANSFORM_TOO_DEEP"
    WORKER_OUT_OF_MEMORY = "WORKER_OUT_OF_MEMORY"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    INDEX_CORRUPT = "INDEX_CORRUPT"
    NO_INDEX = "NO_INDEX"
    NO_CLIENTS = "NO_CLIENTS"
    OVERRIDES_INVALID = "OVERRIDES_INVALID"
    CLIENT_CONFLICTS = "CLIENT_CONFLICTS"
    OVERRIDE_UNUSED = "OVERRIDE_UNUSED"
    TAP_TEXT_REPAIRED = "TAP_TEXT_REPAIRED"
    TAP_LEFTOVER_KILLED = "TAP_LEFTOVER_KILLED"
    OVERRIDE_STALE = "OVERRIDE_STALE"
    MEASURES_NOT_SCORED = "MEASURES_NOT_SCORED"
    MEASURES_CRITICAL_UNLINKED = "MEASURES_CRITICAL_UNLINKED"
    DELETION_NOT_APPLIED = "DELETION_NOT_APPLIED"
    MEASURES_INVALID = "MEASURES_INVALID"
    DISK_FULL = "DISK_FULL"
    OBJECT_CORRUPT = "OBJECT_CORRUPT"
    OBJECT_MISSING = "OBJECT_MISSING"
    LATEST_NOT_SUCCESS = "LATEST_NOT_SUCCESS"
    SOURCE_ID_COLLISION = "SOURCE_ID_COLLISION"
    LINKS_MOVED = "LINKS_MOVED"


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) says the disk or quota is full."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in NO_SPACE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def write_error_code(exc: BaseException) -> ErrorCode:
    """``DISK_FULL`` for a full disk or quota, else ``WRITE_FAILED``."""
    return ErrorCode.DISK_FULL if is_disk_full(exc) else ErrorCode.WRITE_FAILED


def now_iso() -> str:
    """UTC now as ISO-8601 with milliseconds and a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventBase(BaseModel):
    """Fields every event has.

    Field docstrings are not copied into descriptions at import (``use_attribute_docstrings``
    read each class's source: about 15 ms of every command's and every worker's start,
    issue 18); :func:`engine.config.fielddocs.document` reads them when a schema needs them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: str = Field(default_factory=now_iso)
    """When the event happened (UTC, ISO-8601)."""


class RunStarted(EventBase):
    """A pipeline run (one `run`, `extract` or dashboard action) began."""

    type: Literal["run_started"] = "run_started"
    run_id: str
    """The pipeline run id."""
    trigger: Trigger
    """What started it: cli, cron or dashboard."""
    pipeline: str
    """The pipeline name from the config."""
    stages: list[Stage]
    """The stages this run covers."""
    tasks: int
    """How many tasks were planned."""


class TaskQueued(EventBase):
    """A task is planned and waits for a slot."""

    type: Literal["task_queued"] = "task_queued"
    task_id: str
    """Unique within the pipeline run: `{stage}:{extractor}`."""
    stage: Stage
    """The stage."""
    extractor: str
    """The extractor name from the config."""
    account: str
    """The account from the config."""


class TaskStarted(EventBase):
    """A task's worker process started."""

    type: Literal["task_started"] = "task_started"
    task_id: str
    """The task."""
    stage: Stage
    """The stage."""
    extractor: str
    """The extractor name."""
    account: str
    """The account."""
    attempt: int
    """1 for the first try, 2 for the first retry, ..."""
    pid: int
    """The worker's process id."""


class TaskProgress(EventBase):
    """Periodic progress from a running worker (a few per second at most)."""

    type: Literal["task_progress"] = "task_progress"
    task_id: str
    """The task."""
    stage: Stage
    """The stage."""
    extractor: str
    """The extractor name."""
    records: int
    """Records handled so far."""
    bytes: int = 0
    """Compressed bytes written so far."""
    parts: int = 0
    """Parts started so far."""
    total: int | None = None
    """Records expected in all, when known (of the current ``phase`` when there is one)."""
    phase: Phase | None = None
    """The step a task of several steps is in (the project task: ``read`` documents,
    ``resolve`` them, score ``measures``, write the ``tables``, write the ``charts``, then
    ``index-measures``: what is left of the measurements' load into the index, which runs
    beside the tables and charts; without vectors it comes before ``tables``); ``records`` and
    ``total`` then count that step's items (documents, documents, form responses, none, chart
    folders, measurements), so a long step never looks stalled. None for a task of one step."""


class TaskWarning(EventBase):
    """Something a person should know about; counted, never described with data."""

    type: Literal["task_warning"] = "task_warning"
    task_id: str
    """The task."""
    stage: Stage
    """The stage."""
    extractor: str
    """The extractor name."""
    code: str
    """A stable warning code (an ErrorCode value)."""
    count: int = 1
    """How many times it happened so far."""
    line: int | None = None
    """A line number in the input stream, where it applies."""
    detail_path: str | None = None
    """A file inside the workspace with the details (may hold PHI)."""


class TaskRetry(EventBase):
    """A failed task will be tried again after a delay."""

    type: Literal["task_retry"] = "task_retry"
    task_id: str
    """The task."""
    stage: Stage
    """The stage."""
    extractor: str
    """The extractor name."""
    attempt: int
    """The attempt that failed."""
    delay_s: float
    """Seconds until the next attempt."""
    error_code: str | None
    """Why the attempt failed."""


class TaskFinished(EventBase):
    """A task ended, for good or ill."""

    type: Literal["task_finished"] = "task_finished"
    task_id: str
    """The task."""
    stage: Stage
    """The stage."""
    extractor: str
    """The extractor name."""
    account: str
    """The account."""
    status: TaskStatus
    """success, failed, cancelled, timeout or skipped."""
    attempt: int = 1
    """Which attempt this was."""
    records: int = 0
    """Records written."""
    parts: int = 0
    """Parts written."""
    bytes: int = 0
    """Bytes written: extract, the vault parts (compressed); canonize, the canonical file it
    published (0 when skipped)."""
    uncompressed_bytes: int = 0
    """Uncompressed bytes written (canonize: the same as ``bytes``)."""
    duration_s: float = 0.0
    """Wall time of the attempt."""
    error_code: str | None = None
    """Why it failed, as a stable code."""
    exit_code: int | None = None
    """The tap's or worker's exit code, where one is known."""
    line: int | None = None
    """The input line at fault, where it applies."""
    vault_run: str | None = None
    """The run folder written, relative to the account folder (dt=.../run_id=...)."""
    latest_moved: bool = False
    """Whether LATEST.json now points at this run."""
    stderr_lines: int = 0
    """Lines the tap wrote to stderr (the text stays in the run folder)."""
    rejects: int = 0
    """Records that failed their transform or schema (details in the rejects file); project: measures not scored."""
    duplicates: int = 0
    """Project: measures of a form response already scored from another copy of it (the Forms API and its linked sheet); not rejects."""
    unmapped: int = 0
    """Records of streams that no mapping covers (not transformed, counted)."""
    detail_path: str | None = None
    """A file inside the workspace with the details (may hold PHI)."""
    target: str | None = None
    """The loader the tap was piped into (`extract --target`); the vault and LATEST were not touched."""
    cpu_s: float | None = None
    """CPU seconds (user + system) of the worker and every child it reaped (the tap of an
    extract), from getrusage; set by the worker, None when the worker sent no final event."""
    sys_s: float | None = None
    """The system (kernel) part of ``cpu_s``: file creation, syncs and reads show here,
    so a benchmark can tell the file system's cost from the stage's own work."""
    peak_rss_kb: int | None = None
    """Peak resident memory in KiB (getrusage ``ru_maxrss``) of the worker process or of the
    largest process it forked for its own work (the project's reader and chart writer);
    an extract's tap is not included."""


class RunFinished(EventBase):
    """A pipeline run ended."""

    type: Literal["run_finished"] = "run_finished"
    run_id: str
    """The pipeline run id."""
    status: Literal["success", "failed", "cancelled"]
    """success when every task succeeded or was skipped."""
    tasks: int
    """Tasks planned."""
    succeeded: int
    """Tasks that succeeded or were skipped."""
    failed: int
    """Tasks that failed or timed out."""
    cancelled: int
    """Tasks cancelled or never started."""
    records: int
    """The records of the run: extracted when it had an extract stage; else those of its
    index tasks (documents indexed), else of its canonize tasks (records canonized), else
    the project task's links (``engine.store.history.counted_stage``)."""
    duration_s: float
    """Wall time of the run."""
    error_code: str | None = None
    """``DISK_FULL`` when a task ran out of space (the one run-level code); else None."""


Event = Annotated[
    RunStarted | TaskQueued | TaskStarted | TaskProgress | TaskWarning | TaskRetry | TaskFinished | RunFinished,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(line: bytes | str) -> Event:
    """Validate one JSON line as an event (raises pydantic.ValidationError)."""
    return _ADAPTER.validate_json(line)


def dump_event(event: EventBase) -> bytes:
    """One event as a compact JSON line (with the trailing newline)."""
    return orjson.dumps(event.model_dump(mode="json")) + b"\n"


def monotonic() -> float:
    """The clock used for durations."""
    return time.monotonic()
