"""Deletion markers in the canonize stage: which removed their record, and which could not.

A marker (:mod:`engine.canon.deletions`) removes its record by the stream's key: in an
incremental chain it supersedes the older runs' record of that key as any newer record does.
Two kinds of marker cannot remove anything, and a count of "deleted" for them hid a record
that stays in the canonical file, the index and the charts:

* a marker that follows its own record in one run (a delta round in which an item was
  created and deleted, or a full sync that sends both): the record is written already;
* a marker on a stream without key properties, or without a value for one of them: there is
  no key to find its record by.

Both are counted ``not_applied`` (the task's ``DELETION_NOT_APPLIED`` warning). Within a
chain the run's keys are tracked anyway (:class:`NewestWins`); a lone run does not track
them (2 us and a digest per record, for markers that are rare), so a lone run that held
markers is read a second time, its keys only, to find the markers that came after their
record (:meth:`Markers.recheck`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from engine.canon.deletions import is_deletion, keyed
from engine.stages.chain import NewestWins, key_digest, key_values
from engine.vault.numbers import exact_loads, inexact
from engine.vault.reader import StreamKeys, VaultRecord, iter_part_records

Where = tuple[int, int]
"""(part number, line index): a record's place in its run."""


class Markers:
    """The deletion markers of one canonize task."""

    def __init__(self, newest: NewestWins) -> None:
        self.newest = newest
        self.deleted: dict[str, int] = {}
        """Markers that removed (or would have removed) their key's record, by stream."""
        self.not_applied = 0
        """Markers that could not remove their record (a warning)."""
        self._lone: dict[bytes, tuple[str, list[Where]]] = {}

    def seen(self, rec: VaultRecord, record: dict[str, Any], part_no: int) -> None:
        """A marker read at ``(part_no, rec.index)`` of the run being read."""
        record = keyed(record, rec.key)
        values = key_values(rec.key, record)
        if values is None:  # no key to find the record by
            self.not_applied += 1
            return
        late = self.newest.earlier_in_run(rec.stream, rec.key, record)
        if not self.newest.keep(rec.stream, rec.key, record):
            return  # a newer run gave this key again: that version stands
        if late:
            self.not_applied += 1
            return
        self.deleted[rec.stream] = self.deleted.get(rec.stream, 0) + 1
        if not self.newest.enabled:  # a lone run: found late or not by `recheck`
            digest = key_digest(rec.stream, rec.key, values)
            self._lone.setdefault(digest, (rec.stream, []))[1].append((part_no, rec.index))

    def recheck(self, run_dir: Path, manifest: dict[str, Any], active: Callable[[VaultRecord], bool]) -> None:
        """After a lone run with markers: move those that followed a record of their key in
        the run (an ``active`` one: a replaced table version's records are gone anyway) from
        ``deleted`` to ``not_applied``."""
        if not self._lone:
            return
        last = max(w for _, places in self._lone.values() for w in places)
        first: dict[bytes, Where] = {}
        keys = StreamKeys(manifest)
        for part_no, part in enumerate(manifest.get("parts", [])):
            if (part_no, 0) > last:
                break
            for rec in iter_part_records(run_dir / part["file"], keys):
                if (part_no, rec.index) >= last:
                    break
                digest = _digest(rec, active)
                if digest is not None and digest in self._lone:
                    first.setdefault(digest, (part_no, rec.index))
        for digest, seen_at in first.items():
            stream, places = self._lone[digest]
            late = sum(1 for w in places if w > seen_at)
            self.deleted[stream] -= late
            self.not_applied += late
            if not self.deleted[stream]:
                del self.deleted[stream]
        self._lone = {}


def _digest(rec: VaultRecord, active: Callable[[VaultRecord], bool]) -> bytes | None:
    """The key digest of a record (not of a marker) of an active table version, else None."""
    if not rec.key or not active(rec):
        return None
    record = orjson.loads(rec.record) if not inexact(rec.record) else exact_loads(rec.record)
    if is_deletion(record):
        return None
    values = key_values(rec.key, record)
    return None if values is None else key_digest(rec.stream, rec.key, values)
