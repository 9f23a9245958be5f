"""The runs an account's canonical output is built from: LATEST alone, or an incremental chain.

A full extract makes LATEST complete on its own. An ``incremental: true`` extract passes the
previous run's STATE, so its run holds only what changed; its manifest names that previous
run (``incremental.from_run``). Canonize follows those links (:mod:`engine.vault.chain`) back
to the last full run and
reads the runs newest first, keeping the newest version of each record (by the stream's
``key_properties``), so the canonical file is the same as if one full run had been made.

Each record is compared by the key its own run declared for it (a key change opens a new
schema version in the vault, and a key is part of what is compared), and a record whose
key is missing or null is never superseded: it cannot be compared, so it is kept and
counted apart (``unkeyed``); its canonical document is still compared by kind and
``source_id`` (:meth:`NewestWins.keep_document`). ACTIVATE_VERSION is applied as a Singer target applies it: a
record whose RECORD message carries a ``version`` older than the stream's activated version
(:func:`activated_versions`) belongs to a replaced table version and is dropped (counted as
``deactivated``); a record without a ``version`` is kept.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from engine.vault.chain import ChainRun


class NewestWins:
    """Drops records that a newer run of the chain replaced (keys kept as 16-byte digests).

    Runs are read newest first; within one run every record is kept in order, as for a
    full run. A record is dropped only when a NEWER run carried the same stream, the same
    key properties and the same values for them (as :func:`key_scalar` spells them).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._newer: set[bytes] = set()
        self._this_run: set[bytes] = set()
        self.superseded = 0
        self.unkeyed: dict[str, int] = {}
        self._marked: set[bytes] = set()
        """Keys whose newest version in the newer runs is a deletion marker."""
        self._marked_this_run: set[bytes] = set()
        """Keys of this run's markers that no record of this run has followed (yet)."""
        self.removed: set[bytes] = set()
        """Marked keys of which an older run's record was dropped: records a marker removed."""
        self.recreated: set[bytes] = set()
        """Keys that a record of the marker's own run gave again after the marker."""

    def keep(self, stream: str, key: tuple[str, ...], record: Any, *, marker: bool = False) -> bool:
        """False when a newer run already had this record's key (always True when off).
        ``marker``: the record is a deletion marker (:mod:`engine.stages.markers`)."""
        if not key or not isinstance(record, dict):
            return True
        values = [record.get(p) for p in key]
        if any(v is None for v in values):
            self.unkeyed[stream] = self.unkeyed.get(stream, 0) + 1
            return True
        if not self.enabled:
            return True
        digest = key_digest(stream, key, values)
        if digest in self._newer:
            self.superseded += 1
            if not marker and digest in self._marked:
                self.removed.add(digest)
            return False
        if marker:
            if digest not in self._this_run:
                self._marked_this_run.add(digest)
        elif digest in self._marked_this_run:
            self._marked_this_run.discard(digest)
            self.recreated.add(digest)
        self._this_run.add(digest)
        return True

    def earlier_in_run(self, stream: str, key: tuple[str, ...], record: Any) -> bool:
        """Whether this run already kept a record (not a marker) of this key (a deletion
        marker that follows its own record: that record is written already; only tracked
        when enabled)."""
        if not self.enabled or not key or not isinstance(record, dict):
            return False
        values = key_values(key, record)
        if values is None:
            return False
        digest = key_digest(stream, key, values)
        return digest in self._this_run and digest not in self._marked_this_run

    def keep_document(self, stream: str, kind: str, source_id: object) -> bool:
        """False when a newer run already gave, from the same stream, a canonical document of
        this kind and ``source_id`` (always True when off; another stream's document with the
        same id is a collision, which canonize reports, never a newer version). The tap's key cannot tell a record's versions
        apart when the stream declares none or changed it between runs; the document's own id
        can, and without this the index, which keeps a duplicate's last line, would keep the
        oldest version (the chain is written newest run first)."""
        if not self.enabled or not isinstance(source_id, str):
            return True
        parts = (stream, kind, source_id)
        digest = hashlib.blake2b(b"\0".join([b"\0doc", *(p.encode("utf-8", "surrogatepass") for p in parts)]),
                                 digest_size=16).digest()
        if digest in self._newer:
            self.superseded += 1
            return False
        self._this_run.add(digest)
        return True

    def end_run(self) -> None:
        """The current run is done: its keys now shadow every older run."""
        self._newer |= self._this_run
        self._this_run = set()
        self._marked |= self._marked_this_run
        self._marked_this_run = set()


def key_values(key: tuple[str, ...], record: Any) -> list[Any] | None:
    """The record's values of its stream's key, None when it has no key or a value is missing."""
    if not key or not isinstance(record, dict):
        return None
    values = [record.get(p) for p in key]
    return None if any(v is None for v in values) else values


def key_digest(stream: str, key: tuple[str, ...], values: list[Any]) -> bytes:
    """16 bytes that stand for (stream, key properties, their values), each value as
    :func:`key_scalar` spells it."""
    return hashlib.blake2b(_key_bytes(stream, key, [key_scalar(v) for v in values]), digest_size=16).digest()


def key_scalar(value: Any) -> Any:
    """A key value as compared: a JSON integer as its decimal string, so ``3`` and ``"3"``
    are one key (a tap's full sync may send the number and its incremental deletion marker
    the string, and the marker then removed nothing). Only that spelling is one: ``"03"``,
    ``"+3"``, ``"3.0"``, ``3.0``, ``true`` and ``"true"`` each stay a key of their own
    (``str`` of an integer is always its canonical spelling: no sign but ``-``, no leading
    zero)."""
    return str(value) if type(value) is int else value


def _key_bytes(stream: str, key: tuple[str, ...], values: list[Any]) -> bytes:
    try:
        return orjson.dumps([stream, key, values], default=str)
    except TypeError:  # an integer beyond 64 bits (parsed exactly): spell it the same way
        return json.dumps([stream, key, values], default=str, separators=(",", ":")).encode()


def activated_versions(chain: list[ChainRun]) -> dict[str, int]:
    """Each stream's table version in force: the last ACTIVATE_VERSION of the newest run of
    the chain that sent one for it (Singer SDK semantics: a target then drops every record of
    the stream whose ``version`` is older)."""
    active: dict[str, int] = {}
    for run in chain:  # newest first: the first run that activated a stream wins
        for stream, info in (run.manifest.get("streams") or {}).items():
            versions = info.get("activate_versions") or []
            last = versions[-1] if versions else None
            if stream not in active and isinstance(last, int) and not isinstance(last, bool):
                active[stream] = last
    return active
