"""Reading the vault: verify a part against its manifest, then stream its records.

Parts are decompressed in chunks of at most 1 MiB of output (whatever the compression
ratio) and split into lines, so a record of any size works and memory stays bounded by one
chunk plus the longest line.

Both line formats are read (the manifest's ``format``; a manifest without one is format 1):

* **format 1** (runs written before the lossless vault): ``{"stream": S, "record": R}``,
  re-encoded by orjson; the key of each record comes from the manifest's schema versions
  (``first_record``).
* **format 2**: every Singer message exactly as the tap wrote it; RECORD lines carry the
  records, SCHEMA lines set each stream's key from there on, the others are skipped here.

:func:`iter_part_records` gives each record's JSON text as stored (never re-encoded), with
its stream and the key in effect; parts of one run must be read in order through one
:class:`StreamKeys`.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson

from engine.vault.messages import LineInvalid, Record, Schema, parse
from engine.vault.storage import LOCAL, Storage

FORMATS = (1, 2)

CHUNK = 1 << 20
PART_NAME = re.compile(r"part-\d{3,}\.jsonl\.gz")


def part_sha256(path: Path, storage: Storage = LOCAL) -> str:
    """sha256 of a part file, read in chunks."""
    h = hashlib.sha256()
    with storage.open_read(path) as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_part(run_dir: Path, part: dict[str, Any], storage: Storage = LOCAL) -> str | None:
    """None when the part matches the manifest, else an error code.

    A part is named ``part-NNN.jsonl.gz`` inside its run folder; any other name in a
    manifest (``../x``, an absolute path) is MANIFEST_INVALID and is never opened.
    """
    name = str(part.get("file", ""))
    if not PART_NAME.fullmatch(name):
        return "MANIFEST_INVALID"
    path = run_dir / name
    size = storage.size(path)
    if size is None:
        return "PART_MISSING"
    if size != part.get("bytes") or part_sha256(path, storage) != part.get("sha256"):
        return "CHECKSUM_MISMATCH"
    return None


def iter_lines(path: Path, storage: Storage = LOCAL) -> Iterator[bytes]:
    """Every line of a gzip part (raises zlib.error / EOFError on a broken stream)."""
    dec = zlib.decompressobj(31)
    rest = b""
    with storage.open_read(path) as fh:
        while chunk := fh.read(CHUNK):
            data = rest + dec.decompress(chunk, CHUNK)  # at most CHUNK out: memory stays flat
            lines = data.split(b"\n")
            rest = lines.pop()
            yield from lines
            while dec.unconsumed_tail:
                data = rest + dec.decompress(dec.unconsumed_tail, CHUNK)
                lines = data.split(b"\n")
                rest = lines.pop()
                yield from lines
    tail = rest + dec.flush()
    if not dec.eof:
        raise EOFError("truncated gzip stream")
    if tail:
        yield from tail.split(b"\n")


def iter_records(path: Path, storage: Storage = LOCAL) -> Iterator[tuple[str, Any]]:
    """(stream, record parsed by orjson) for every record of a part, in either format."""
    for line in iter_lines(path, storage):
        if line:
            msg = orjson.loads(line)
            if "type" not in msg:
                yield msg["stream"], msg["record"]
            elif msg["type"] == "RECORD":
                yield msg["stream"], msg["record"]


class PartCorrupt(ValueError):
    """A part's line is not what its format allows (no content kept)."""


def manifest_format(manifest: dict[str, Any]) -> int:
    """The run's line format (1 when the manifest predates the field); ValueError if unknown."""
    fmt = manifest.get("format", 1)
    if fmt not in FORMATS:
        raise ValueError("unknown vault format")
    return int(fmt)


class StreamKeys:
    """The ``key_properties`` in effect for each record while a run's parts are read in order."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.format = manifest_format(manifest)
        self.current: dict[str, tuple[str, ...]] = {}
        self._v1: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        self._seen: dict[str, int] = {}
        if self.format == 1:
            for stream, info in (manifest.get("streams") or {}).items():
                self._v1[stream] = [(int(v.get("first_record") or 0),
                                     tuple(str(p) for p in v.get("key_properties") or []))
                                    for v in info.get("schemas") or []]

    def schema(self, stream: str, key: list[str] | None) -> None:
        """A SCHEMA line (format 2): its key holds from here on."""
        self.current[stream] = tuple(key or ())

    def next_record(self, stream: str) -> tuple[str, ...]:
        """The key of the stream's next record."""
        if self.format == 2:
            return self.current.get(stream, ())
        n = self._seen.get(stream, 0)
        self._seen[stream] = n + 1
        key: tuple[str, ...] = ()
        for first, props in self._v1.get(stream, ()):
            if first > n:
                break
            key = props
        return key


@dataclass(frozen=True)
class VaultRecord:
    """One record of a part: its stream, its JSON text as stored, its key, its line index and
    its RECORD message's ``version`` (format 2; None when absent)."""

    stream: str
    record: bytes
    key: tuple[str, ...]
    index: int
    version: int | None = None


class _V1Line(msgspec.Struct):
    stream: str
    record: msgspec.Raw


_V1 = msgspec.json.Decoder(_V1Line)


def iter_part_records(path: Path, keys: StreamKeys, storage: Storage = LOCAL) -> Iterator[VaultRecord]:
    """Every record of a part in order (PartCorrupt for a line its format does not allow)."""
    for index, line in enumerate(iter_lines(path, storage)):
        if not line:
            continue
        if keys.format == 1:
            try:
                old = _V1.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise PartCorrupt("not a format 1 line") from None
            yield VaultRecord(old.stream, bytes(old.record), keys.next_record(old.stream), index)
            continue
        try:
            msg = parse(line, depth_checked=True)
        except LineInvalid:
            raise PartCorrupt("not a Singer message") from None
        if isinstance(msg, Record):
            yield VaultRecord(msg.stream, bytes(msg.record), keys.next_record(msg.stream), index, msg.version)
        elif isinstance(msg, Schema):
            keys.schema(msg.stream, msg.key_properties)
