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

from engine.events import ErrorCode
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


def consume(stdout: IO[bytes], writer: RunWriter, tick: Tick, warn: Warn) -> None:
    """Read Singer messages from the tap into the writer; raise StreamError on a breach."""
    lineno = 0
    raw = b""
    try:
        for lineno, raw in enumerate(stdout, start=1):
            try:
                msg = parse(raw)
            except LineInvalid as exc:
                fixed = lone_surrogates_replaced(raw) if exc.code is ErrorCode.TAP_OUTPUT_INVALID else None
                if fixed is None:
                    raise
                msg, raw = parse(fixed), fixed
                writer.repaired_lines += 1
            if type(msg) is Record:
                writer.record(_require_schema(writer, msg.stream, lineno), with_newline(raw))
                if writer.records & 63 == 1:
                    tick()
            elif msg is not None:
                _other_message(msg, raw, writer, lineno, tick, warn)
    except LineInvalid as exc:
        raise StreamError(exc.code, lineno, bad=raw) from None


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
        _require_schema(writer, msg.stream, lineno)
        writer.batch(msg.stream, line)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:  # e.g. a number beyond a double in the message itself
            raise StreamError(ErrorCode.BATCH_INVALID, lineno) from None
        read_batch(body, writer, lineno, tick)
    else:
        writer.other(line)
        warn(lineno)


def _require_schema(writer: RunWriter, stream: str, lineno: int) -> str:
    if not writer.has_schema(stream):
        raise StreamError(ErrorCode.SCHEMA_MISSING, lineno)
    return stream


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
