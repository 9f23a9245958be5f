"""Collecting a stream's field paths while its records are written (names only).

A *field path* is how JSONata navigates to a key: object keys joined by ``.``, arrays
transparent (``payload.parts.mimeType`` covers every element of ``parts``), a key that is
not a plain identifier in backticks (`` `@odata.etag` ``). Every level is recorded
(``payload``, ``payload.parts``, ...). Values are never looked at beyond their type.

The writer keeps one :class:`PathCollector` per stream and calls :meth:`observe_message` (the
tap's RECORD line, kept as raw bytes by the writer); :meth:`observe` takes one record's JSON
bytes and :meth:`observe_value` a parsed record; its :meth:`paths`
go into the run's manifest under ``streams.<name>.fields``. Cost and memory are bounded:

* walking a nested 2 KB mail record costs about 8 us (more than gzip does per record), so
  every record of the first :data:`FULL_RECORDS` of a stream is walked, then one in
  :data:`STRIDE` (counted, deterministic): a field that only rare records carry may be missed
  in a large run, and the manifest says how many records were walked;
* at most ``cap`` distinct paths are kept per stream (objects keyed by ids would grow
  without end); past it ``capped`` is true and new paths are only counted;
* nesting deeper than :data:`MAX_DEPTH` levels is not followed.

Besides the paths, ``always`` lists those that every walked record carried (deletion
markers apart, counted as ``markers``): drift needs it to tell, in an incremental chain, a
field that every changed record lost (a rename) from an optional one that the few changed
records happen not to have (see :mod:`engine.drift.compare`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from engine.vault.deletions import is_deletion

DEFAULT_CAP = 2000
"""Distinct paths kept per stream; more are counted, not kept."""
FULL_RECORDS = 500
"""Every record of a stream is walked up to this many; then one in STRIDE."""
STRIDE = 16
MAX_DEPTH = 12
"""Nesting levels followed; deeper keys are not recorded."""
FIELDS_KEY = "fields"
"""The key under each stream of a manifest that holds :meth:`PathCollector.paths`."""
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def segment(name: str) -> str:
    """A key as one path segment: bare when it is an identifier, else in backticks."""
    if _PLAIN.fullmatch(name):
        return name
    return "`" + name.replace("`", "``") + "`"


def split_path(path: str) -> list[str]:
    """A field path's raw key names (backticked segments unquoted): the inverse of joining
    :func:`segment` results with ``.``."""
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


def _unquote(seg: str) -> str:
    return seg[1:-1].replace("``", "`") if len(seg) >= 2 and seg[0] == seg[-1] == "`" else seg


class PathCollector:
    """The distinct field paths of one stream's records."""

    __slots__ = ("cap", "found", "records", "walked", "capped", "overflow", "always", "markers", "_seg")

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self.found: set[str] = set()
        self.records = 0
        self.walked = 0
        self.capped = False
        self.overflow = 0
        self.always: set[str] | None = None
        """The paths every walked record (deletion markers apart) had; None before the first."""
        self.markers = 0
        """Walked records that were deletion markers (they carry a key, not the record's fields)."""
        self._seg: dict[str, str] = {}

    def wants(self) -> bool:
        """Count one record; True when it should be walked (call :meth:`walk_value` then)."""
        self.records += 1
        return self.records <= FULL_RECORDS or self.records % STRIDE == 0

    def observe(self, record_bytes: bytes) -> None:
        """One record given as JSON bytes (parsed only when it is walked)."""
        if self.wants():
            try:
                self.walk_value(orjson.loads(record_bytes))
            except orjson.JSONDecodeError:
                try:
                    self.walk_value(json.loads(record_bytes))
                except ValueError:
                    pass

    def observe_message(self, line: bytes) -> None:
        """One Singer RECORD message as the tap wrote it (its ``record`` is walked)."""
        if self.wants():
            try:
                msg = orjson.loads(line)
            except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits: Python's json reads it
                try:
                    msg = json.loads(line)
                except ValueError:
                    return
            if isinstance(msg, dict):
                self.walk_value(msg.get("record"))

    def observe_value(self, record: Any) -> None:
        """One already parsed record."""
        if self.wants():
            self.walk_value(record)

    def walk_value(self, record: Any) -> None:
        """Add every path of one record."""
        self.walked += 1
        mine: set[str] = set()
        if isinstance(record, dict):
            self._walk(record, "", 0, mine)
        elif isinstance(record, list):
            self._walk_list(record, "", 0, mine)
        if is_deletion(record):
            self.markers += 1
        elif self.always is None:
            self.always = mine
        else:
            self.always &= mine

    def _walk(self, obj: dict[str, Any], prefix: str, depth: int, mine: set[str]) -> None:
        paths, seg = self.found, self._seg
        for key, value in obj.items():
            s = seg.get(key)
            if s is None:
                s = segment(key)
                if len(seg) < 4 * self.cap:  # keys that are ids must not grow the cache forever
                    seg[key] = s
            path = prefix + s
            if path not in paths:
                if len(paths) >= self.cap:
                    self.capped = True
                    self.overflow += 1
                    continue
                paths.add(path)
            mine.add(path)
            if depth < MAX_DEPTH and value:
                t = type(value)
                if t is dict:
                    self._walk(value, path + ".", depth + 1, mine)
                elif t is list:
                    self._walk_list(value, path + ".", depth + 1, mine)

    def _walk_list(self, items: list[Any], prefix: str, depth: int, mine: set[str]) -> None:
        for item in items:
            t = type(item)
            if t is dict:
                self._walk(item, prefix, depth, mine)
            elif t is list:
                self._walk_list(item, prefix, depth, mine)

    def paths(self) -> dict[str, Any]:
        """The manifest entry (``streams.<name>.fields``): the paths, sorted, with the records
        seen and walked, whether the cap was hit, the paths every walked record had
        (``always``) and the walked deletion markers (``markers``)."""
        return {"paths": sorted(self.found), "records": self.records, "walked": self.walked,
                "capped": self.capped, "overflow": self.overflow,
                "always": sorted(self.always or ()), "markers": self.markers}


def manifest_paths(stream_info: Any) -> set[str] | None:
    """The paths a manifest recorded for a stream, or None for a run written before paths
    were collected (or whose entry is unreadable)."""
    if not isinstance(stream_info, dict):
        return None
    fields = stream_info.get(FIELDS_KEY)
    if not isinstance(fields, dict) or not isinstance(fields.get("paths"), list):
        return None
    return {p for p in fields["paths"] if isinstance(p, str)}


def manifest_capped(stream_info: Any) -> bool:
    """Whether the collector hit its cap for that stream (vanished fields are then unsure)."""
    fields = stream_info.get(FIELDS_KEY) if isinstance(stream_info, dict) else None
    return bool(isinstance(fields, dict) and fields.get("capped"))


def manifest_always(stream_info: Any) -> set[str] | None:
    """The paths every walked record of the stream had (deletion markers apart), or None for a
    run written before they were recorded."""
    fields = stream_info.get(FIELDS_KEY) if isinstance(stream_info, dict) else None
    always = fields.get("always") if isinstance(fields, dict) else None
    return {p for p in always if isinstance(p, str)} if isinstance(always, list) else None


def manifest_walked_records(stream_info: Any) -> int:
    """The walked records of the stream that were not deletion markers (0 when unknown)."""
    fields = stream_info.get(FIELDS_KEY) if isinstance(stream_info, dict) else None
    if not isinstance(fields, dict):
        return 0
    walked, markers = fields.get("walked"), fields.get("markers", 0)
    if not isinstance(walked, int) or not isinstance(markers, int):
        return 0
    return max(walked - markers, 0)
