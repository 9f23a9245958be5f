"""The vault run writer: Singer messages in, gzip parts, a manifest and a rename out.

Format 2 (``FORMAT``): every message of the tap (RECORD, SCHEMA, STATE, ACTIVATE_VERSION,
BATCH and unknown types) is one line of a part, byte for byte as the tap wrote it apart from
the line ending, in stream order; records read from BATCH files follow their BATCH line as
RECORD messages around the file's own record bytes. Nothing is re-encoded, so every key,
every number's digits and the record's key order survive (docs/architecture.md). Format 1
runs (``{"stream", "record"}`` lines re-encoded by orjson) stay readable
(:mod:`engine.vault.reader`).

Messages stream through: each part (:class:`~engine.vault.part.PartWriter`) is compressed as
it fills and hashed as it is written, so memory stays flat however long the run. A part closes
when it reaches the configured uncompressed size or when a stream's schema (or its key)
changes. ``finish`` fsyncs the parts, writes the manifest and renames the hidden temporary
folder to its final name; only then may LATEST move. Every file operation goes through a
:class:`~engine.vault.storage.Storage`. How parts are compressed (ISA-L, a background thread)
and what that buys is in :mod:`engine.vault.part`.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from engine.events import now_iso
from engine.store.fsutil import dump_json, json_bytes
from engine.vault.layout import MANIFEST, RunRef
from engine.vault.numbers import exact_value
from engine.vault.part import BACKENDS, DEFAULT_BACKEND, PartWriter
from engine.vault.paths import FIELDS_KEY, PathCollector
from engine.vault.storage import LOCAL, Storage

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "FORMAT", "PartWriter", "RunWriter"]
"""``BACKENDS``, ``DEFAULT_BACKEND`` and ``PartWriter`` live in :mod:`engine.vault.part`;
they stay importable from here, where callers (tests, the bench) have always found them."""

FORMAT = 2
"""The vault line format this writer produces (the manifest's ``format``)."""
Bytes = bytes
"""``bytes`` for annotations inside :class:`RunWriter`, whose ``bytes`` property shadows it."""


class RunWriter:
    """Writes one vault run under its temporary name and publishes it with ``finish``.

    ``storage`` is where the files go (the local workspace by default); ``backend`` the gzip
    implementation (``isal`` or ``zlib``; default :data:`DEFAULT_BACKEND`); ``pipelined``
    whether parts are compressed on a background thread (see :mod:`engine.vault.part`).
    """

    def __init__(self, account_dir: Path, ref: RunRef, meta: dict[str, Any],
                 part_max_bytes: int, level: int, *, storage: Storage = LOCAL,
                 backend: str | None = None, pipelined: bool = True) -> None:
        self.account_dir = account_dir
        self.ref = ref
        self.storage = storage
        self.backend = backend or DEFAULT_BACKEND
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vault-gzip") if pipelined else None
        self._prefixes: dict[str, bytes] = {}
        self.fields: dict[str, PathCollector] = {}
        """Per stream, the field paths of its records (source drift; names only)."""
        self.tmp = storage.make_dir(ref.temp_path(account_dir))
        self.final = ref.path(account_dir)
        self.meta = meta
        self.part_max_bytes = part_max_bytes
        self.level = level
        self.started_at = now_iso()
        self.parts: list[dict[str, Any]] = []
        self.streams: dict[str, dict[str, Any]] = {}
        self.state: Any = None
        self.state_text: str | None = None
        self.state_messages = 0
        self.unknown_messages = 0
        self.repaired_lines = 0
        """Lines kept with their lone surrogate escapes replaced (``messages.lone_surrogates_replaced``)."""
        self.state_after_records: int | None = None
        self.records = 0
        self._part: PartWriter | None = None
        self._closed_bytes = 0

    @property
    def bytes(self) -> int:
        """Compressed bytes written so far."""
        return self._closed_bytes + (self._part.bytes if self._part else 0)

    @property
    def part_count(self) -> int:
        """Parts started so far."""
        return len(self.parts) + (1 if self._part else 0)

    def schema(self, stream: str, schema: Bytes, key_properties: list[str] | None, line: Bytes) -> None:
        """Write a SCHEMA line; a new version (schema or key) of a stream closes the part first.

        ``schema`` is the schema's JSON text as the tap wrote it. Its version in the
        manifest holds the parsed schema (and ``schema_text``, the text, when a number in it
        would not survive a double), the key and ``first_record``.
        """
        value, text = exact_value(schema)
        canonical = dump_json(value) if text is None else schema
        digest = hashlib.sha256(canonical).hexdigest()
        key = list(key_properties or [])
        info = self.streams.setdefault(stream, {"records": 0, "schemas": []})
        versions = info["schemas"]
        if not versions or versions[-1]["sha256"] != digest or versions[-1]["key_properties"] != key:
            if versions and info["records"]:
                self._close_part()
            version = {"sha256": digest, "schema": value, "key_properties": key,
                       "first_record": info["records"]}
            if text is not None:
                version["schema_text"] = text
            versions.append(version)
        self._line(line)

    def record(self, stream: str, line: Bytes) -> None:
        """Write one RECORD line of ``stream`` (the tap's message, ending in a newline)."""
        collector = self.fields.get(stream)
        if collector is None:
            collector = self.fields[stream] = PathCollector()
        collector.observe_message(line)
        part = self._part or self._open_part()
        part.write_record(stream, line)
        self.streams[stream]["records"] += 1
        self.records += 1
        if part.uncompressed >= self.part_max_bytes:
            self._close_part()

    def batch_record(self, stream: str, record: Bytes) -> None:
        """Write one record of a BATCH file (its JSON object, exactly) as a RECORD line."""
        prefix = self._prefixes.get(stream)
        if prefix is None:
            prefix = self._prefixes[stream] = b'{"type":"RECORD","stream":' + orjson.dumps(stream) + b',"record":'
        self.record(stream, prefix + record + b"}\n")

    def activate_version(self, stream: str, version: int, line: Bytes) -> None:
        """Write an ACTIVATE_VERSION line and list the version for the stream."""
        info = self.streams.setdefault(stream, {"records": 0, "schemas": []})
        info.setdefault("activate_versions", []).append(version)
        self._line(line)

    def batch(self, stream: str, line: Bytes) -> None:
        """Write a BATCH line (its records follow through :meth:`batch_record`)."""
        info = self.streams[stream]
        info["batches"] = info.get("batches", 0) + 1
        self._line(line)

    def other(self, line: Bytes) -> None:
        """Write a message of a type the writer does not interpret (kept, in order)."""
        self.unknown_messages += 1
        self._line(line)

    def set_state(self, value: Bytes, line: Bytes) -> None:
        """Write a STATE line and keep its value (the JSON text as the tap wrote it).

        The last value is persisted with the manifest, which is written only after every
        part is fsynced, so the persisted STATE never runs ahead of the records before it
        (delivery is at-least-once: records after it are re-sent by the next incremental
        run). ``state_text`` keeps the text when a number in it would not survive a double.
        """
        self.state, self.state_text = exact_value(value)
        self.state_messages += 1
        self.state_after_records = self.records
        self._line(line)

    def _line(self, line: Bytes) -> None:
        part = self._part or self._open_part()
        part.write(line)
        if part.uncompressed >= self.part_max_bytes:
            self._close_part()

    def _open_part(self) -> PartWriter:
        self._part = PartWriter(self.tmp / f"part-{len(self.parts):03d}.jsonl.gz", self.level,
                                storage=self.storage, backend=self.backend, pool=self._pool)
        return self._part

    def _close_part(self) -> None:
        if self._part is not None:
            desc = self._part.close()
            self._closed_bytes += desc["bytes"]
            self.parts.append(desc)
            self._part = None

    def finish(self, status: str, **extra: Any) -> dict[str, Any]:
        """Close the parts, write the manifest and rename the run to its final name."""
        try:
            if status == "success":
                self._close_part()
            else:
                try:
                    self._close_part()
                except OSError:
                    if self._part is not None:
                        self._part.abort()
                    self._part = None
        finally:
            self._stop_pool()
        manifest = self._manifest(status, extra)
        self.storage.write_atomic(self.tmp / MANIFEST, json_bytes(manifest))
        self.storage.publish(self.tmp, self.final)
        return manifest

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _manifest(self, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        total = sum(p["bytes"] for p in self.parts)
        raw = sum(p["uncompressed_bytes"] for p in self.parts)
        return {
            "format": FORMAT,
            "status": status,
            **self.meta,
            "dt": self.ref.dt,
            "run_id": self.ref.run_id,
            "started_at": self.started_at,
            "finished_at": now_iso(),
            "records": self.records,
            "bytes": total,
            "uncompressed_bytes": raw,
            "compression_ratio": round(raw / total, 3) if total else None,
            "streams": self._streams_with_fields(),
            "parts": self.parts,
            "state": self.state,
            "state_messages": self.state_messages,
            "state_after_records": self.state_after_records,
            **({"state_text": self.state_text} if self.state_text is not None else {}),
            "messages": sum(p["messages"] for p in self.parts),
            "unknown_messages": self.unknown_messages,
            **({"repaired_lines": self.repaired_lines} if self.repaired_lines else {}),
            **extra,
        }

    def _streams_with_fields(self) -> dict[str, dict[str, Any]]:
        return {name: {**info, FIELDS_KEY: self.fields[name].paths()} if name in self.fields else info
                for name, info in self.streams.items()}

    def abort(self) -> None:
        """Abandon the part being written (used when the disk fails).

        Its records leave the counts, so the manifest's ``records`` (and each stream's) are
        what the listed parts hold; how many were dropped is ``records_dropped``.
        """
        if self._part is not None:
            dropped = self._part
            dropped.abort()
            self._part = None
            self.records = sum(p["records"] for p in self.parts)
            for stream, info in self.streams.items():
                info["records"] = sum(p["streams"].get(stream, 0) for p in self.parts)
            self.meta["records_dropped"] = int(self.meta.get("records_dropped", 0)) + dropped.records
        self._stop_pool()
