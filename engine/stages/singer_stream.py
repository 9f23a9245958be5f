"""The Singer stream, read as a target reads it: every message type, in order.

SCHEMA (each version recorded; a changed schema closes the part), RECORD (a SCHEMA must
come first: ``SCHEMA_MISSING``), STATE (kept in order; persisted with the manifest, after
the parts), ACTIVATE_VERSION (recorded per stream), BATCH (local ``file://`` JSONL files,
plain or gzip, streamed line by line into the vault like records), and anything else
counted and skipped with a warning. A line that is not JSON, or not valid UTF-8, fails the
run with its line number. Errors carry codes and numbers only, never tap output.
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
from engine.vault.writer import RunWriter

Tick = Callable[[], None]
Warn = Callable[[int], None]
BATCH_READ_BYTES = 1 << 20


class StreamError(Exception):
    """The tap's output broke the Singer contract at a given line.

    ``detail`` holds numbers only (which BATCH file of the message, which line in it); it
    goes to the run's manifest inside the vault, never into events.
    """

    def __init__(self, code: ErrorCode, line: int, detail: dict[str, int] | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.line = line
        self.detail = detail


def consume(stdout: IO[bytes], writer: RunWriter, tick: Tick, warn: Warn) -> None:
    """Read Singer messages from the tap into the writer; raise StreamError on a breach."""
    for lineno, raw in enumerate(stdout, start=1):
        try:
            msg = orjson.loads(raw)  # also rejects invalid UTF-8
        except orjson.JSONDecodeError:
            if not raw.strip():  # a blank line (checked only here: strip() copies the line)
                continue
            raise StreamError(ErrorCode.TAP_OUTPUT_INVALID, lineno) from None
        if not isinstance(msg, dict):
            raise StreamError(ErrorCode.TAP_OUTPUT_INVALID, lineno)
        kind = msg.get("type")
        stream = msg.get("stream")
        if kind == "RECORD":
            writer.record(_require_schema(writer, stream, lineno), msg.get("record"))
            if writer.records & 63 == 1:
                tick()
        elif kind == "SCHEMA" and isinstance(stream, str):
            writer.schema(stream, msg.get("schema"), msg.get("key_properties"))
        elif kind == "STATE":
            writer.set_state(msg.get("value"))
        elif kind == "ACTIVATE_VERSION" and isinstance(stream, str):
            writer.activate_version(stream, msg.get("version"))
        elif kind == "BATCH":
            _require_schema(writer, stream, lineno)
            read_batch(msg, writer, lineno, tick)
        else:
            warn(lineno)


def _require_schema(writer: RunWriter, stream: Any, lineno: int) -> str:
    if not isinstance(stream, str) or not writer.has_schema(stream):
        raise StreamError(ErrorCode.SCHEMA_MISSING, lineno)
    return stream


def read_batch(msg: dict[str, Any], writer: RunWriter, lineno: int, tick: Tick) -> None:
    """Write every record of a BATCH message's files into the vault, streaming each file."""
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
    writer.batch(stream)


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
            record = orjson.loads(line)
            if not isinstance(record, dict):
                raise StreamError(ErrorCode.BATCH_INVALID, lineno, where)
            writer.record(stream, record)
            if writer.records & 63 == 1:
                tick()
    except (orjson.JSONDecodeError, gzip.BadGzipFile, EOFError, zlib.error):
        raise StreamError(ErrorCode.BATCH_INVALID, lineno, where) from None
