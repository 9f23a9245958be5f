"""Which names from the data may be printed: the PHI rule for drift output (issue 20).

Stream names and field names come from the data (a sheet tab, a column header) and may
carry PHI. A name is printed only when the config declares it:

* a stream: when a mapping of the extractor's source names it;
* a field path: when the mapped transform reads it (or a path under it), or when every
  segment of it is a property name in a schema file of the config (the canonical schemas,
  and the extractor's own ``catalog:`` file).

Anything else is a stable placeholder, ``field #N (a1b2c3)`` / ``stream #N (a1b2c3)``: its
position in the sorted list and a short keyed hash (HMAC-SHA256 with a random key kept in
the workspace), so the same name gets the same placeholder run after run and nobody can
confirm a guessed name from the output. ``reveal=True`` (``--reveal``) prints every name;
that output is PHI and goes to the terminal only.

The project-wide rule lives with issue 20 (``engine/names.py``); this module is its stand-in
for drift and should be folded into it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from engine.fsutil import atomic_write_bytes
from engine.workspace import Workspace

KEY_FILE = "names.key"


def names_key(ws: Workspace) -> bytes:
    """The workspace's random key for placeholders (created 0600 on first use)."""
    path = ws.state / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 16:
            return key
    except OSError:
        pass
    key = os.urandom(32)
    if not path.parent.is_dir():  # no workspace yet: nothing to name, and nothing is created
        return key
    try:
        atomic_write_bytes(path, key)
    except OSError:  # a read-only workspace: placeholders are stable for this command only
        pass
    return key


def short_hash(key: bytes, name: str) -> str:
    """Six hex digits of HMAC-SHA256(key, name)."""
    return hmac.new(key, name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:6]


def schema_names(paths: Iterable[Path]) -> set[str]:
    """Every property name in some JSON (Schema) files: keys of any ``properties`` object;
    for a Singer catalog also every stream's ``tap_stream_id`` and ``stream``."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                names.update(k for k in props if isinstance(k, str))
            for key in ("tap_stream_id", "stream"):
                if isinstance(node.get(key), str):
                    names.add(node[key])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in paths:
        try:
            walk(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue
    return names


def _unquote(seg: str) -> str:
    return seg[1:-1].replace("``", "`") if len(seg) >= 2 and seg[0] == seg[-1] == "`" else seg


def split_path(path: str) -> list[str]:
    """A field path's raw key names (backticked segments unquoted)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in path:
        if ch == "`":
            quoted = not quoted
            cur.append(ch)
        elif ch == "." and not quoted:
            out.append(_unquote("".join(cur)))
            cur = []
        else:
            cur.append(ch)
    out.append(_unquote("".join(cur)))
    return out


class Names:
    """Shows declared names and placeholders for the rest (or everything with ``reveal``)."""

    def __init__(self, key: bytes, *, reveal: bool = False, streams: Iterable[str] = (),
                 reads: Iterable[str] = (), schema_words: Iterable[str] = ()) -> None:
        self.key = key
        self.reveal = reveal
        self.streams = set(streams)
        self.reads: set[str] = set()
        for r in reads:  # a read path declares itself and every path above it
            parts = r.split(".")
            self.reads.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        self.words = set(schema_words)

    def field_shown(self, path: str) -> bool:
        """Whether a field path may be printed by name."""
        return self.reveal or path in self.reads or all(s in self.words for s in split_path(path))

    def field(self, path: str, position: int) -> str:
        """The path, or ``field #position (hash)``."""
        if self.field_shown(path):
            return path
        return f"field #{position} ({short_hash(self.key, path)})"

    def stream(self, name: str, position: int) -> str:
        """The stream name, or ``stream #position (hash)``."""
        if self.reveal or name in self.streams:
            return name
        return f"stream #{position} ({short_hash(self.key, name)})"
