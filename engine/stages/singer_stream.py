"""The Singer stream, read as a target reads it: every message type, in order, kept exactly.

Each line is validated once (:mod:`engine.vault.messages`: msgspec, the record left as raw
bytes) and written to the vault as the tap wrote it. SCHEMA (each version, schema and key,
recorded; a new version closes the part), RECORD (a SCHEMA must come first:
``SCHEMA_MISSING``), STATE (kept in order; persisted with the manifest, after the parts),
ACTIVATE_VERSION (kept in order and listed per stream), BATCH (the message line, then every
record of its local ``file://`` JSONL files, plain or gzip, streamed line by line), and any
other type kept and counted with a warning. A line that is not JSON or not UTF-8 fails the
run with ``TAP_OUTPUT_INVALID``, one that is JSON but not a valid Singer message with
``TAP_MESSAGE_INVALID``, both with the line number. Errors carry codes and numbers only,
never tap output.

The checks of each line (:class:`TapLines`: the repair of a lone surrogate escape,
``SCHEMA_MISSING``, whether the tap said anything at all), the run's ``bad-line.txt``, the
``TAP_OUTPUT_EMPTY`` rule and the warnings live here once: a vault run
(:mod:`engine.stages.extract`) and a tap piped into a loader (:mod:`engine.stages.to_target`,
``extract --target``) both use them, so neither imports the other.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import orjson

from engine.events import ErrorCode, TaskWarning
from engine.stages.progress import Emit
from engine.stages.spec import TaskSpec
from engine.store.fsutil import open_private
from engine.vault.messages import (
    ActivateVersion,
    Batch,
    LineInvalid,
    Message,
    Record,
    Schema,
    State,
    Unknown,
    json_object,
    lone_surrogates_replaced,
    parse,
    too_deep,
    with_newline,
)
from engine.vault.writer import RunWriter

Tick = Callable[[], None]
Warn = Callable[[int], None]
BATCH_READ_BYTES = 1 << 20


class StreamError(Exception):
    """The tap's output broke the Singer contract at a given line.

    ``detail`` holds numbers only (which BATCH file of the message, which line in it); it
    goes to the run's manifest inside the vault, never into events.
    """

    def __init__(self, code: ErrorCode, line: int, detail: dict[str, int] | None = None,
                 bad: bytes | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.line = line
        self.detail = detail
        self.bad = bad
        """The line that is not a Singer message, kept by the run folder (never an event)."""


class TapLines:
    """The tap's stdout as Singer messages, each line checked the one way both a vault run and a
    piped target run check it.

    Iterating gives ``(message, line)`` for every line that is not blank: the line as the tap
    wrote it, or, when its only fault is a lone UTF-16 surrogate escape, the line with that
    escape written ``\\ufffd`` (counted in :attr:`repaired`; the line the caller keeps or
    passes on, so every reader gets valid JSON and UTF-8). A RECORD or BATCH of a stream with
    no SCHEMA yet raises ``SCHEMA_MISSING``; a line that is not a Singer message raises its
    ``LineInvalid`` code with the line (:attr:`StreamError.bad`). :attr:`said_something`: a
    SCHEMA or a STATE came (a RECORD needs a SCHEMA first).
    """

    def __init__(self, stdout: IO[bytes]) -> None:
        self.stdout = stdout
        self.lineno = 0
        self.repaired = 0
        self.said_something = False
        self.schemas: set[str] = set()
        """The streams a SCHEMA was seen for (an ACTIVATE_VERSION alone does not count)."""

    def __iter__(self) -> Iterator[tuple[Message | Unknown, bytes]]:
        raw = b""
        schemas = self.schemas
        try:
            for lineno, raw in enumerate(self.stdout, start=1):
                self.lineno = lineno
                try:
                    msg = parse(raw)
                except LineInvalid as exc:
                    fixed = lone_surrogates_replaced(raw) if exc.code is ErrorCode.TAP_OUTPUT_INVALID else None
                    if fixed is None:
                        raise
                    msg, raw = parse(fixed), fixed
                    self.repaired += 1
                if msg is None:
                    continue
                kind = type(msg)
                if kind is Record or kind is Batch:
                    if msg.stream not in schemas:  # type: ignore[union-attr]
                        raise StreamError(ErrorCode.SCHEMA_MISSING, lineno)
                elif kind is Schema:
                    schemas.add(msg.stream)  # type: ignore[union-attr]
                    self.said_something = True
                elif kind is State:
                    self.said_something = True
                yield msg, raw
        except LineInvalid as exc:
            raise StreamError(exc.code, self.lineno, bad=raw) from None


def consume(stdout: IO[bytes], writer: RunWriter, tick: Tick, warn: Warn) -> TapLines:
    """Read Singer messages from the tap into the writer; raise StreamError on a breach.
    Returns the checked lines (what the tap said: :attr:`TapLines.said_something`)."""
    lines = TapLines(stdout)
    try:
        for msg, raw in lines:
            if type(msg) is Record:
                writer.record(msg.stream, with_newline(raw))
                if writer.records & 63 == 1:
                    tick()
            else:
                _other_message(msg, raw, writer, lines.lineno, tick, warn)
    finally:
        writer.repaired_lines += lines.repaired
    return lines


def _other_message(msg: Message | Unknown, raw: bytes, writer: RunWriter, lineno: int, tick: Tick,
                   warn: Warn) -> None:
    line = with_newline(raw)
    if isinstance(msg, Schema):
        writer.schema(msg.stream, bytes(msg.schema), msg.key_properties, line)
    elif isinstance(msg, State):
        writer.set_state(bytes(msg.value), line)
    elif isinstance(msg, ActivateVersion):
        writer.activate_version(msg.stream, msg.version, line)
    elif isinstance(msg, Batch):
        writer.batch(msg.stream, line)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:  # e.g. a number beyond a double in the message itself
            raise StreamError(ErrorCode.BATCH_INVALID, lineno) from None
        read_batch(body, writer, lineno, tick)
    else:
        writer.other(line)
        warn(lineno)


def read_batch(msg: dict[str, Any], writer: RunWriter, lineno: int, tick: Tick) -> None:
    """Write every record of a BATCH message's files into the vault, streaming each file.

    Each record is the file's line exactly (a JSON object in UTF-8, line ending dropped)."""
    stream = msg["stream"]
    encoding = msg.get("encoding")
    if not isinstance(encoding, dict) or encoding.get("format") != "jsonl":
        raise StreamError(ErrorCode.BATCH_UNSUPPORTED, lineno)
    compression = encoding.get("compression") or "none"
    if compression not in ("gzip", "none"):
        raise StreamError(ErrorCode.BATCH_UNSUPPORTED, lineno)
    files = msg.get("manifest")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise StreamError(ErrorCode.BATCH_INVALID, lineno)
    paths = [local_path(url, lineno, i) for i, url in enumerate(files)]
    for index, path in enumerate(paths):
        with _open_batch_file(path, compression == "gzip", lineno, index) as fh:
            _copy_records(fh, stream, writer, lineno, index, tick)


def local_path(url: str, lineno: int, index: int) -> Path:
    """The local file a BATCH manifest entry names (``file:///abs/path``), or BATCH_NOT_LOCAL."""
    parsed = urlparse(url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost") or not parsed.path:
        raise StreamError(ErrorCode.BATCH_NOT_LOCAL, lineno, {"batch_file": index})
    path = Path(unquote(parsed.path))
    if not path.is_absolute():
        raise StreamError(ErrorCode.BATCH_NOT_LOCAL, lineno, {"batch_file": index})
    return path


@contextmanager
def _open_batch_file(path: Path, gz: bool, lineno: int, index: int) -> Iterator[IO[bytes]]:
    try:
        raw = open(path, "rb", buffering=BATCH_READ_BYTES)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise StreamError(ErrorCode.BATCH_FILE_MISSING, lineno, {"batch_file": index}) from None
    except OSError:
        raise StreamError(ErrorCode.BATCH_INVALID, lineno, {"batch_file": index}) from None
    try:
        if gz:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield raw
    finally:
        raw.close()


def _copy_records(fh: IO[bytes], stream: str, writer: RunWriter, lineno: int, index: int,
                  tick: Tick) -> None:
    where = {"batch_file": index, "batch_line": 0}
    try:
        for n, line in enumerate(fh, start=1):
            where["batch_line"] = n
            if not line.strip():
                continue
            record = with_newline(line)[:-1]
            if too_deep(record):  # the one nesting limit of every line the vault keeps
                raise StreamError(ErrorCode.BATCH_INVALID, lineno, where)
            if not json_object(record):
                # text an API cut mid-emoji: repaired as on a RECORD line, whichever way it came
                fixed = lone_surrogates_replaced(record)
                if fixed is None or not json_object(fixed):
                    raise StreamError(ErrorCode.BATCH_INVALID, lineno, where)
                record = fixed
                writer.repaired_lines += 1
            writer.batch_record(stream, record)
            if writer.records & 63 == 1:
                tick()
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise StreamError(ErrorCode.BATCH_INVALID, lineno, where) from None


BAD_LINE = "bad-line.txt"
"""The file a run that failed on a line that is not a Singer message keeps it in (0600, with
why: :mod:`engine.vault.explain`): in the vault run's folder, or in a target run's
diagnostics folder. A vault run's event names it as ``detail_path``."""


def keep_bad_line(folder: Path, exc: StreamError) -> None:
    """Write the offending line and why it is refused into ``folder`` (best effort: a full
    disk must not hide the run's own error)."""
    if exc.bad is None:
        return
    from engine.vault.explain import bad_line_text

    try:
        with open_private(folder / BAD_LINE, "wb") as fh:
            fh.write(bad_line_text(exc.line, exc.bad))
    except OSError:
        (folder / BAD_LINE).unlink(missing_ok=True)


def quiet_tap(status: str, code: str | None, lines: TapLines | None) -> tuple[str, str | None]:
    """``TAP_OUTPUT_EMPTY`` for a run that would succeed though the tap sent not one SCHEMA,
    STATE or RECORD (nothing, or an API's error body as an unknown message): a tap that failed
    quietly (expired credentials), never "the source is empty" -- moving LATEST would empty
    the account, and a target would be told the same nothing."""
    if status == "success" and (lines is None or not lines.said_something):
        return "failed", ErrorCode.TAP_OUTPUT_EMPTY.value
    return status, code


def warn_repaired(spec: TaskSpec, emit: Emit, count: int) -> None:
    """One ``TAP_TEXT_REPAIRED`` warning with the number of lines repaired, when there were any."""
    if count:
        emit(TaskWarning(task_id=spec.task_id, stage="extract", extractor=spec.extractor.name,
                         code=ErrorCode.TAP_TEXT_REPAIRED.value, count=count))


class UnknownWarner:
    """Counts the unknown messages; one ``UNKNOWN_MESSAGE`` warning at the first (its line, count
    1) and one at the end with the total and the last line, when there were more. A tap that
    sends a METRIC after every record sent one warning per line: 100,000 lines on the
    terminal and in the log, and as many events to the dashboard."""

    def __init__(self, spec: TaskSpec, emit: Emit) -> None:
        self.spec = spec
        self.emit = emit
        self.count = 0
        self.last = 0

    def __call__(self, lineno: int) -> None:
        self.count += 1
        self.last = lineno
        if self.count == 1:
            self._warn()

    def finish(self) -> None:
        """The total, when it is more than the first warning said."""
        if self.count > 1:
            self._warn()

    def _warn(self) -> None:
        self.emit(TaskWarning(task_id=self.spec.task_id, stage="extract", extractor=self.spec.extractor.name,
                              code=ErrorCode.UNKNOWN_MESSAGE.value, count=self.count, line=self.last))
