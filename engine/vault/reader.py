"""Reading the vault: verify a part against its manifest, then stream its records.

Parts are decompressed in chunks of at most 1 MiB of output (whatever the compression
ratio) and split into lines, so a record of any size works and memory stays bounded by one
chunk plus the longest line.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from engine.vault.storage import LOCAL, Storage

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
    """(stream, record) for every line of a part."""
    for line in iter_lines(path, storage):
        if line:
            msg = orjson.loads(line)
            yield msg["stream"], msg["record"]
