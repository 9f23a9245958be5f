"""Deletion markers in the canonize stage: which removed their record, and which could not.

A marker (:mod:`engine.vault.deletions`) removes its record by the stream's key: in an
incremental chain it supersedes the older runs' record of that key as any newer record does.
Key values are compared as :func:`engine.stages.chain.key_scalar` spells them: an integer
and its decimal string are one key (a full sync's ``"visit_no": 3`` and an incremental
marker's ``"visit_no": "3"``: the marker removed nothing, the record stayed in the chart
while the meta counted it deleted). ``deleted`` (the meta, per stream) counts the records
markers removed, one per key; a marker that could not remove a record that stays is counted
``not_applied`` (the task's ``DELETION_NOT_APPLIED`` warning):

* a marker that follows its own record in one run (a delta round in which an item was
  created and deleted, or a full sync that sends both): the record is written already;
* a marker on a stream without key properties, or without a value for one of them: there is
  no key to find its record by.

A marker whose key no record of the chain had (a lone full run has no older run: an item the
source created and deleted between two runs, a soft-deleted row a full sync sends again, or a
record whose key is written otherwise, ``"03"`` for ``3``, which stays) removed nothing: it
is counted ``unmatched`` (the meta's ``deletions_unmatched``), not warned, since nothing the
task can tell stays and a full sync resending soft-deleted rows would warn every night.
A marker that a record of its key follows in its run is undone by it (the item was
re-created): counted nowhere, as a marker a newer run superseded. Within a chain the run's
keys are tracked anyway (:class:`NewestWins`); a lone run does not track them (2 us and a
digest per record, for markers that are rare), so a lone run that held markers is read a
second time, its keys only (:meth:`Markers.settle`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from engine.stages.chain import NewestWins, key_digest, key_values
from engine.vault.deletions import is_deletion, keyed
from engine.vault.numbers import exact_loads, inexact
from engine.vault.reader import StreamKeys, VaultRecord, iter_part_records

Where = tuple[int, int]
"""(part number, line index): a record's place in its run."""


class Markers:
    """The deletion markers of one canonize task."""

    def __init__(self, newest: NewestWins) -> None:
        self.newest = newest
        self.deleted: dict[str, int] = {}
        """Records the markers removed, by stream (one per key): known after :meth:`settle`."""
        self.not_applied = 0
        """Markers that removed no record while one of their key stays (a warning): known
        after :meth:`settle`."""
        self.unmatched = 0
        """Markers of a key no record of the chain had (the meta's ``deletions_unmatched``; no
        warning: nothing stays): known after :meth:`settle`."""
        self._pending: dict[bytes, str] = {}
        """A chain's markers, by key, that neither were late nor were superseded."""
        self._lone: dict[bytes, tuple[str, list[Where]]] = {}

    def seen(self, rec: VaultRecord, record: dict[str, Any], part_no: int) -> None:
        """A marker read at ``(part_no, rec.index)`` of the run being read."""
        record = keyed(record, rec.key)
        values = key_values(rec.key, record)
        if values is None:  # no key to find the record by
            self.not_applied += 1
            return
        late = self.newest.earlier_in_run(rec.stream, rec.key, record)
        if not self.newest.keep(rec.stream, rec.key, record, marker=True):
            return  # a newer run gave this key again: that version stands
        if late:
            self.not_applied += 1
            return
        digest = key_digest(rec.stream, rec.key, values)
        if self.newest.enabled:  # decided by the older runs' records (`settle`)
            self._pending.setdefault(digest, rec.stream)
        else:  # a lone run: decided by `settle`, which reads the run's keys again
            self._lone.setdefault(digest, (rec.stream, []))[1].append((part_no, rec.index))

    def settle(self, run_dir: Path, manifest: dict[str, Any], active: Callable[[VaultRecord], bool]) -> None:
        """After the chain was read (``run_dir`` and ``manifest``: its newest run): count each
        marker. One whose key an older run's record had removed that record (``deleted``, one
        per key however many markers of it the run sent); one that a record of its key
        followed in its run was undone by it (the record is the key's newest version: counted
        nowhere, as a marker a newer run superseded); any other removed nothing (``unmatched``):
        no record of its key was sent before it (or one with a key written otherwise, which
        stays: the task cannot tell, and a full sync resending soft-deleted rows would warn
        every night)."""
        for digest, stream in sorted(self._pending.items()):
            if digest in self.newest.recreated:
                continue
            if digest in self.newest.removed:
                self.deleted[stream] = self.deleted.get(stream, 0) + 1
            else:
                self.unmatched += 1
        self._pending = {}
        self._recheck(run_dir, manifest, active)
        self.deleted = dict(sorted(self.deleted.items()))

    def _recheck(self, run_dir: Path, manifest: dict[str, Any], active: Callable[[VaultRecord], bool]) -> None:
        """A lone run with markers: read its records' keys (an ``active`` one's: a replaced
        table version's records are gone anyway) to find the markers that followed a record of
        their key (``not_applied``: that record is written already) and those a record
        followed (undone). The rest removed nothing (``unmatched``): a lone run has no older record."""
        if not self._lone:
            return
        first: dict[bytes, Where] = {}
        last: dict[bytes, Where] = {}
        keys = StreamKeys(manifest)
        for part_no, part in enumerate(manifest.get("parts", [])):
            for rec in iter_part_records(run_dir / part["file"], keys):
                digest = _digest(rec, active)
                if digest is not None and digest in self._lone:
                    first.setdefault(digest, (part_no, rec.index))
                    last[digest] = (part_no, rec.index)
        for digest, (_, places) in self._lone.items():
            late = sum(1 for w in places if digest in first and w > first[digest])
            unmatched = any(not (digest in first and w > first[digest]) and not (digest in last and last[digest] > w)
                            for w in places)
            self.not_applied += late
            self.unmatched += int(unmatched)
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
