"""Reading a file back in full to compare it with what was recorded when it was written.

Split from :mod:`engine.ops.verify`, whose checks compare these numbers with a manifest or a
name: a file's sha256, a gzip part's uncompressed size and line count, and a format 2 part's
size, Singer message count and RECORD count. Each reads in chunks of :data:`CHUNK` (flat
memory) and returns None, not an exception, when a part does not decompress or a line is not
a valid message; nothing read is ever returned. :func:`object_problem` names what is wrong
with an index object file by these rules.
"""

from __future__ import annotations

import hashlib
import stat
import zlib
from pathlib import Path

from engine.store.fsutil import open_regular
from engine.vault.messages import LineInvalid, Record, parse
from engine.vault.reader import iter_lines

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def gzip_counts(path: Path) -> tuple[int, int] | None:
    """(uncompressed bytes, lines) of a gzip part, or None when it does not decompress."""
    dec = zlib.decompressobj(31)
    size = lines = 0
    try:
        with open_regular(path) as fh:
            while chunk := fh.read(CHUNK):
                data = dec.decompress(chunk)
                size += len(data)
                lines += data.count(b"\n")
        data = dec.flush()
    except zlib.error:
        return None
    size += len(data)
    lines += data.count(b"\n")
    return (size, lines) if dec.eof and not dec.unused_data else None


def message_counts(path: Path) -> tuple[int, int, int] | None:
    """(uncompressed bytes, messages, RECORDs) of a format 2 part, or None when it does not
    decompress or a line is not a valid Singer message."""
    size = messages = records = 0
    try:
        for line in iter_lines(path):
            size += len(line) + 1
            if not line:
                return None  # the writer never stores a blank line
            msg = parse(line, depth_checked=True)
            messages += 1
            records += isinstance(msg, Record)
    except (zlib.error, EOFError, OSError, LineInvalid):
        return None
    return size, messages, records


def object_problem(path: Path, sha: str) -> str | None:
    """``OBJECT_MISSING`` (no regular file), ``OBJECT_CORRUPT`` (bytes that do not hash to
    its name, or cannot be read), or None."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return "OBJECT_MISSING"
    except OSError:
        return "OBJECT_MISSING"
    try:
        return None if file_sha256(path) == sha else "OBJECT_CORRUPT"
    except OSError:
        return "OBJECT_CORRUPT"
