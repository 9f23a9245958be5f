"""The vault run writer: Singer messages in, gzip parts, a manifest and a rename out.

Records stream through: each part is compressed with zlib as it fills and hashed as it
is written, so memory stays flat however long the run. A part closes when it reaches the
configured uncompressed size or when a stream's schema changes. ``finish`` fsyncs the
parts, writes the manifest and renames the hidden temporary folder to its final name;
only then may LATEST move.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path
from typing import IO, Any

import orjson

from engine.events import now_iso
from engine.fsutil import atomic_write_json, ensure_dir, fsync_dir, open_private
from engine.vault.layout import MANIFEST, RunRef

FLUSH_BYTES = 1 << 20


class PartWriter:
    """One ``part-NNN.jsonl.gz``: gzip stream, sha256 of the compressed bytes, counts."""

    def __init__(self, path: Path, level: int) -> None:
        self.path = path
        self._fh: IO[bytes] = open_private(path, "wb")
        self._zip = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._sha = hashlib.sha256()
        self._buf: list[bytes] = []
        self._buffered = 0
        self.bytes = 0
        self.uncompressed = 0
        self.records = 0
        self.streams: dict[str, int] = {}

    def write(self, stream: str, line: bytes) -> None:
        """Append one record line (already JSON with its stream, ending in a newline)."""
        self._buf.append(line)
        self._buffered += len(line)
        self.uncompressed += len(line)
        self.records += 1
        self.streams[stream] = self.streams.get(stream, 0) + 1
        if self._buffered >= FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._emit(self._zip.compress(b"".join(self._buf)))
            self._buf.clear()
            self._buffered = 0

    def _emit(self, data: bytes) -> None:
        if data:
            self._fh.write(data)
            self._sha.update(data)
            self.bytes += len(data)

    def close(self) -> dict[str, Any]:
        """Finish the gzip stream, fsync, and describe the part for the manifest."""
        self._flush()
        self._emit(self._zip.flush())
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return {
            "file": self.path.name,
            "sha256": self._sha.hexdigest(),
            "bytes": self.bytes,
            "uncompressed_bytes": self.uncompressed,
            "records": self.records,
            "streams": dict(sorted(self.streams.items())),
        }

    def abort(self) -> None:
        """Close without finishing (the run failed while writing)."""
        try:
            self._fh.close()
        except OSError:
            pass


class RunWriter:
    """Writes one vault run under its temporary name and publishes it with ``finish``."""

    def __init__(self, account_dir: Path, ref: RunRef, meta: dict[str, Any],
                 part_max_bytes: int, level: int) -> None:
        self.account_dir = account_dir
        self.ref = ref
        self.tmp = ensure_dir(ref.temp_path(account_dir))
        self.final = ref.path(account_dir)
        self.meta = meta
        self.part_max_bytes = part_max_bytes
        self.level = level
        self.started_at = now_iso()
        self.parts: list[dict[str, Any]] = []
        self.streams: dict[str, dict[str, Any]] = {}
        self.state: Any = None
        self.state_messages = 0
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

    def schema(self, stream: str, schema: Any, key_properties: Any) -> None:
        """Record a SCHEMA message; a changed schema for a stream closes the current part."""
        digest = hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
        info = self.streams.setdefault(stream, {"records": 0, "schemas": []})
        versions = info["schemas"]
        if versions and versions[-1]["sha256"] == digest:
            return
        if versions and info["records"]:
            self._close_part()
        versions.append({"sha256": digest, "schema": schema, "key_properties": key_properties or [],
                         "first_record": info["records"]})

    def has_schema(self, stream: str) -> bool:
        """Whether a SCHEMA was seen for ``stream`` (an ACTIVATE_VERSION alone does not count)."""
        info = self.streams.get(stream)
        return bool(info and info["schemas"])

    def record(self, stream: str, record: Any) -> None:
        """Write one RECORD's record into the current part."""
        line = b'{"stream":' + orjson.dumps(stream) + b',"record":' + orjson.dumps(record) + b"}\n"
        if self._part is None:
            self._part = PartWriter(self.tmp / f"part-{len(self.parts):03d}.jsonl.gz", self.level)
        self._part.write(stream, line)
        self.streams[stream]["records"] += 1
        self.records += 1
        if self._part.uncompressed >= self.part_max_bytes:
            self._close_part()

    def activate_version(self, stream: str, version: Any) -> None:
        """Record an ACTIVATE_VERSION message for the stream."""
        info = self.streams.setdefault(stream, {"records": 0, "schemas": []})
        info.setdefault("activate_versions", []).append(version)

    def batch(self, stream: str) -> None:
        """Count a BATCH message of the stream (its records went through :meth:`record`)."""
        info = self.streams[stream]
        info["batches"] = info.get("batches", 0) + 1

    def set_state(self, value: Any) -> None:
        """Keep the latest STATE, in stream order; it is persisted with the manifest, which
        is written only after every part is fsynced, so the persisted STATE never runs ahead
        of the records before it (delivery is at-least-once: records after it are re-sent
        by the next incremental run)."""
        self.state = value
        self.state_messages += 1
        self.state_after_records = self.records

    def _close_part(self) -> None:
        if self._part is not None:
            desc = self._part.close()
            self._closed_bytes += desc["bytes"]
            self.parts.append(desc)
            self._part = None

    def finish(self, status: str, **extra: Any) -> dict[str, Any]:
        """Close the parts, write the manifest and rename the run to its final name."""
        if status == "success":
            self._close_part()
        else:
            try:
                self._close_part()
            except OSError:
                if self._part is not None:
                    self._part.abort()
                self._part = None
        manifest = self._manifest(status, extra)
        atomic_write_json(self.tmp / MANIFEST, manifest)
        fsync_dir(self.tmp)
        os.rename(self.tmp, self.final)
        fsync_dir(self.final.parent)
        return manifest

    def _manifest(self, status: str, extra: dict[str, Any]) -> dict[str, Any]:
        total = sum(p["bytes"] for p in self.parts)
        raw = sum(p["uncompressed_bytes"] for p in self.parts)
        return {
            "format": 1,
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
            "streams": self.streams,
            "parts": self.parts,
            "state": self.state,
            "state_messages": self.state_messages,
            "state_after_records": self.state_after_records,
            **extra,
        }

    def abort(self) -> None:
        """Abandon the part being written (used when the disk fails)."""
        if self._part is not None:
            self._part.abort()
            self._part = None
