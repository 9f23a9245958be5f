"""The canonize worker: one account's LATEST run -> canonical records, atomically.

It reads only the run LATEST names, verifies every part's sha256 before using it,
transforms each record of a mapped stream with its JSONata transform, validates it, and
writes ``canonical/{source}/{account}.jsonl`` (keys sorted, so the same LATEST and
transforms give byte-identical output) plus the provenance ``.meta.json``, published together
as one generation behind a single pointer (:mod:`engine.canon.publish`,
:mod:`engine.store.fsgen`), so every reader sees the old version or the new one, never a mix. Rejected records go with their reason to
``.rejects.jsonl`` in the workspace; events carry counts.
When the provenance proves nothing changed, the task is ``skipped`` unless forced; when
only the run changed and its parts are byte for byte the previous run's, the output is
republished with the new provenance instead of transformed again (:mod:`engine.canon.reuse`).

Downstream a document is identified by (source, account, kind, source_id), without its
stream. When two mapped streams of the account have transforms of the same kind, the
source_ids they produce are kept as 16-byte digests (:mod:`engine.canon.collisions`); if two different
streams produced the same (kind, source_id), nothing is published (``SOURCE_ID_COLLISION``):
the index would keep one of the two and merge different entities. The same source_id
repeated within one stream is an update, as always.
"""

from __future__ import annotations

import hashlib
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import jsonatapy
import orjson

from engine import __version__
from engine.canon import publish, reuse
from engine.canon.collisions import SourceIds, collisions_path, shared_kinds
from engine.canon.compiled import CompiledTransform, RecordRejected, TransformLimits
from engine.canon.functions import helpers_sha256
from engine.canon.publish import AccountFiles
from engine.canon.registry import Registry, RegistryError
from engine.drift.checks import vanished_reads
from engine.errors import say_os_error
from engine.events import (
    ErrorCode,
    EventBase,
    TaskFinished,
    TaskProgress,
    TaskWarning,
    write_error_code,
)
from engine.stages.canonreading import CanonizeFailed, check_part, latest_run, part_stats
from engine.stages.chain import NewestWins, activated_versions
from engine.stages.markers import Markers
from engine.stages.spec import TaskSpec
from engine.store.fsutil import atomic_write_bytes, ensure_dir, open_private, section
from engine.store.workspace import Workspace
from engine.vault.chain import ChainBroken, ChainRun, incremental_chain
from engine.vault.deletions import is_deletion
from engine.vault.numbers import exact_loads, inexact
from engine.vault.reader import PartCorrupt, StreamKeys, VaultRecord, iter_part_records

Emit = Callable[[EventBase], None]
NUMBER_INEXACT = "NUMBER_INEXACT"
"""Reject code: the record holds a number a double (JSONata) cannot hold exactly."""


def outputs(ws: Workspace, source: str, account: str) -> dict[str, Path]:
    """The canonical files of one account."""
    base = ws.canonical / source
    return {"data": base / f"{account}.jsonl", "meta": base / f"{account}.meta.json",
            "rejects": base / f"{account}.rejects.jsonl"}


class Canonizer:
    """Canonizes one account; ``run`` returns the final event's fields."""

    def __init__(self, spec: TaskSpec, emit: Emit) -> None:
        self.spec, self.emit = spec, emit
        self.ex = spec.extractor
        self.ws = Workspace(spec.workspace)
        self.paths = outputs(self.ws, self.ex.source, self.ex.account)
        self.records = self.rejects = self.unmapped = 0
        self.counts: dict[str, int] = {}
        self.rejects_by_stream: dict[str, int] = {}
        self.unmapped_streams: dict[str, int] = {}
        self._last_progress = time.monotonic()
        self.total: int | None = None
        self.superseded = 0
        self.unkeyed: dict[str, int] = {}
        self.deactivated: dict[str, int] = {}
        self.markers: Markers | None = None
        """Deletion markers: removed records by stream, and those not applied (a warning)."""
        self._active: dict[str, int] = {}
        self.ids: SourceIds | None = None
        """The source_ids of streams that share a kind with another stream (else None)."""

    def prepare(self) -> tuple[list[ChainRun], dict[str, CompiledTransform]]:
        """Find the LATEST run (and, for incremental runs, the chain back to a full run),
        and compile the transforms of the account's mapped streams."""
        account_dir = self.ws.account_dir(self.ex.domain, self.ex.source, self.ex.account)
        latest = latest_run(account_dir)
        canon = self.spec.canonize
        registry = Registry.load(canon.transforms_dir, canon.schemas_dir)
        compiled: dict[str, CompiledTransform] = {}
        limits = TransformLimits(canon.transform_timeout_ms, canon.transform_max_depth)
        for m in canon.mappings:
            if m.source != self.ex.source:
                continue
            try:
                compiled[m.stream] = CompiledTransform(registry, registry.get(m.transform), limits)
                if m.timezone is not None:  # the zone of the stream's local times, as $timezone
                    compiled[m.stream].bindings = {"timezone": m.timezone}
            except RegistryError:
                raise CanonizeFailed(ErrorCode.TRANSFORM_MISSING) from None
            except (ValueError, OSError):
                raise CanonizeFailed(ErrorCode.TRANSFORM_INVALID) from None
        try:
            chain = incremental_chain(account_dir, latest)
        except ChainBroken:
            raise CanonizeFailed(ErrorCode.INCREMENTAL_CHAIN_BROKEN) from None
        self.ids = SourceIds.of(compiled)
        return chain, compiled

    def fingerprint(self, chain: list[ChainRun], compiled: dict[str, CompiledTransform]) -> dict[str, Any]:
        """Everything the output depends on (the provenance)."""
        manifest = chain[0].manifest
        fp: dict[str, Any] = {
            "run": {"dt": manifest.get("dt"), "run_id": manifest.get("run_id"),
                    "parts": [p["sha256"] for p in manifest.get("parts", [])]},
            "transforms": {s: {"id": c.transform.id, "sha256": c.transform.sha256,
                               "schema_sha256": c.schema_sha256} for s, c in sorted(compiled.items())},
            "max_rejects": {m.stream: m.max_rejects for m in self.spec.canonize.mappings
                            if m.source == self.ex.source},
            "engine": __version__,
            "helpers_sha256": helpers_sha256(),
            "jsonata_engine": f"jsonatapy {jsonatapy.__version__}",
        }
        zones = {s: c.bindings["timezone"] for s, c in sorted(compiled.items()) if c.bindings}
        if zones:  # only when set: the fingerprints of every other config stay as they were
            fp["timezones"] = zones
        if shared_kinds(compiled):  # built with the cross-stream source_id check (an output
            fp["source_id_check"] = 1  # built without it is not skipped or reused)
        if len(chain) > 1:  # incremental: the older runs it builds on are inputs too
            fp["incremental_chain"] = [{"run_id": r.manifest.get("run_id"),
                                        "parts": [p["sha256"] for p in r.manifest.get("parts", [])]}
                                       for r in chain[1:]]
        return fp

    def up_to_date(self, fp: dict[str, Any], chain: list[ChainRun]) -> bool:
        """Whether the current output was built from exactly ``fp`` and is intact (read as one
        generation), its plain names link to that generation, and the vault parts it read are
        still the files it verified (same size and mtime: a part truncated or rewritten since
        is read, and verified, again; no hashing here)."""
        current = publish.current_output(AccountFiles(self.paths["data"].parent, self.ex.account))
        if current is None:
            return False
        meta, sha = current
        return bool(meta.get("inputs") == fp and section(meta, "output").get("sha256") == sha
                    and meta.get("part_stats") == part_stats(chain))

    def transform_all(self, chain: list[ChainRun], compiled: dict[str, CompiledTransform],
                      out: IO[bytes], rej: IO[bytes]) -> str:
        """Stream every record of the chain (newest run first) through its transform;
        return the output's sha256."""
        sha = hashlib.sha256()
        self.total = sum(int(r.manifest.get("records") or 0) for r in chain) or None
        newest = NewestWins(enabled=len(chain) > 1)
        self.markers = markers = Markers(newest)
        self._active = activated_versions(chain)
        for run in chain:
            self._transform_run(run.path, run.manifest, compiled, out, rej, sha, newest)
            newest.end_run()
        try:  # a chain's markers are counted now; a lone run's keys are read again
            markers.settle(chain[0].path, chain[0].manifest, self._is_active)
        except (zlib.error, EOFError, orjson.JSONDecodeError, PartCorrupt, KeyError, TypeError, ValueError):
            raise CanonizeFailed(ErrorCode.PART_CORRUPT, str(chain[0].path)) from None
        self.superseded = newest.superseded
        self.unkeyed = dict(sorted(newest.unkeyed.items()))
        return sha.hexdigest()

    def _transform_run(self, run_dir: Path, manifest: dict[str, Any], compiled: dict[str, CompiledTransform],
                       out: IO[bytes], rej: IO[bytes], sha: Any, newest: NewestWins) -> None:
        envelope = {"source": self.ex.source, "account": self.ex.account}
        try:
            keys = StreamKeys(manifest)
        except ValueError:
            raise CanonizeFailed(ErrorCode.MANIFEST_INVALID, str(run_dir / "manifest.json")) from None
        assert self.markers is not None
        for part_no, part in enumerate(manifest.get("parts", [])):
            check_part(run_dir, part)
            part_path = str(run_dir / part["file"])  # a checked part-NNN.jsonl.gz name
            buf: list[bytes] = []
            try:
                for rec in iter_part_records(run_dir / part["file"], keys):
                    if not self._active_version(rec):
                        continue
                    exact = not inexact(rec.record)
                    record = orjson.loads(rec.record) if exact else exact_loads(rec.record)
                    if is_deletion(record):  # no document; it supersedes the key's older records
                        self.markers.seen(rec, record, part_no)
                        continue
                    if not newest.keep(rec.stream, rec.key, record):
                        continue
                    ct = compiled.get(rec.stream)
                    if ct is None:
                        self.unmapped += 1
                        self.unmapped_streams[rec.stream] = self.unmapped_streams.get(rec.stream, 0) + 1
                        continue
                    if not exact:  # JSONata holds doubles: never round a number silently
                        self._reject(rej, run_dir, part["file"], rec, RecordRejected(
                            NUMBER_INEXACT, "a number in the record cannot be held exactly by a double"),
                            ct.transform.id)
                        continue
                    try:
                        doc = ct.apply(record, envelope)
                    except RecordRejected as exc:
                        self._reject(rej, run_dir, part["file"], rec, exc, ct.transform.id)
                        if exc.fatal:  # out of time or stack: stop now, not after every record
                            raise CanonizeFailed(ErrorCode(exc.code), part_path) from None
                        continue
                    if not newest.keep_document(rec.stream, ct.kind, doc.get("source_id")):
                        continue
                    if self.ids is not None:
                        self.ids.add(rec.stream, doc)
                    line = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n"
                    buf.append(line)
                    self.records += 1
                    self.counts[ct.kind] = self.counts.get(ct.kind, 0) + 1
                    if len(buf) >= 512:
                        _flush(out, sha, buf)
                        self._progress()
            except (zlib.error, EOFError, orjson.JSONDecodeError, PartCorrupt, KeyError, TypeError, ValueError):
                raise CanonizeFailed(ErrorCode.PART_CORRUPT, part_path) from None
            _flush(out, sha, buf)

    def _active_version(self, rec: VaultRecord) -> bool:
        """False for a record of a table version an ACTIVATE_VERSION replaced (counted)."""
        if self._is_active(rec):
            return True
        self.deactivated[rec.stream] = self.deactivated.get(rec.stream, 0) + 1
        return False

    def _is_active(self, rec: VaultRecord) -> bool:
        active = self._active.get(rec.stream)
        return active is None or rec.version is None or rec.version >= active

    def _reject(self, rej: IO[bytes], run_dir: Path, part: str, rec: VaultRecord, exc: RecordRejected,
                transform: str) -> None:
        """Quarantine one record with its reason, its run (an incremental chain's parts share
        names) and its transform; the record goes as stored, byte for byte."""
        self.rejects += 1
        self.rejects_by_stream[rec.stream] = self.rejects_by_stream.get(rec.stream, 0) + 1
        rej.write(orjson.dumps({"run": run_dir.name.removeprefix("run_id="), "part": part, "index": rec.index,
                                "stream": rec.stream, "transform": transform, "code": exc.code,
                                "reason": exc.reason, "record": orjson.Fragment(rec.record)},
                               option=orjson.OPT_SORT_KEYS) + b"\n")

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= 0.25:
            self._last_progress = now
            self.emit(TaskProgress(task_id=self.spec.task_id, stage="canonize", extractor=self.ex.name,
                                   records=self.records + self.rejects + self.unmapped, total=self.total))

    def over_limit(self) -> bool:
        """Whether some stream has more rejects than its mapping allows."""
        limits = {m.stream: m.max_rejects for m in self.spec.canonize.mappings if m.source == self.ex.source}
        return any(n > limits.get(s, 0) for s, n in self.rejects_by_stream.items())


def _maps_a_stream(chain: list[ChainRun], compiled: dict[str, CompiledTransform]) -> bool:
    """Whether a mapped stream is in some run of the chain (its SCHEMA, records, deletion
    markers or an ACTIVATE_VERSION): then an empty output is the source's, not a typo's."""
    return any(stream in compiled for run in chain for stream in (run.manifest.get("streams") or {}))


def _had_records(files: AccountFiles) -> bool:
    """Whether the account's published canonical output holds records."""
    meta = publish.read_meta(files)
    output = meta.get("output") if meta else None
    return isinstance(output, dict) and isinstance(output.get("records"), int) and output["records"] > 0


def _flush(out: IO[bytes], sha: Any, buf: list[bytes]) -> None:
    if buf:
        data = b"".join(buf)
        out.write(data)
        sha.update(data)
        buf.clear()


def run_canonize(spec: TaskSpec, emit: Emit) -> int:
    """Run the canonize task; emit events; return the worker's exit code."""
    started = time.monotonic()
    c = Canonizer(spec, emit)
    status, code, detail = "success", None, None
    written = 0
    try:
        status = _canonize(c)
        if status == "success":  # the canonical file published (plain JSON lines: no compression)
            written = os.stat(c.paths["data"]).st_size
    except CanonizeFailed as exc:
        status, code, detail = "failed", exc.code.value, exc.detail
    except OSError as exc:
        status, code = "failed", write_error_code(exc).value
        say_os_error("canonize", exc)
    if c.unmapped:
        emit(TaskWarning(task_id=spec.task_id, stage="canonize", extractor=c.ex.name,
                         code=ErrorCode.UNMAPPED_STREAM.value, count=c.unmapped))
    if status in ("success", "skipped") and (vanished := vanished_reads(c.spec.canonize, c.ws, c.ex)):
        emit(TaskWarning(task_id=spec.task_id, stage="canonize", extractor=c.ex.name,
                         code=ErrorCode.SOURCE_FIELD_VANISHED.value, count=vanished))
    if c.markers is not None and c.markers.not_applied:
        emit(TaskWarning(task_id=spec.task_id, stage="canonize", extractor=c.ex.name,
                         code=ErrorCode.DELETION_NOT_APPLIED.value, count=c.markers.not_applied))
    emit(TaskFinished(
        task_id=spec.task_id, stage="canonize", extractor=c.ex.name, account=c.ex.account,
        status=status, attempt=spec.attempt, records=c.records, rejects=c.rejects,  # type: ignore[arg-type]
        unmapped=c.unmapped, duration_s=round(time.monotonic() - started, 3), error_code=code,
        detail_path=detail or (str(c.paths["rejects"]) if c.rejects else None),
        bytes=written, uncompressed_bytes=written,
    ))
    return 0 if status in ("success", "skipped") else 1


def _canonize(c: Canonizer) -> str:
    files = AccountFiles(c.paths["data"].parent, c.ex.account)
    publish.recover(files)  # drop what a killed publish left (the pointer is never half-moved)
    chain, compiled = c.prepare()
    fp = c.fingerprint(chain, compiled)
    if not c.spec.force and c.up_to_date(fp, chain):
        meta = publish.read_meta(files) or {}
        c.records = int(section(meta, "output").get("records") or 0)
        return "skipped"
    if not c.spec.force and (same := reuse.reusable(files, fp)) is not None:
        verified = part_stats(chain)  # every part is checked before its run is named, as when read
        for run in chain:
            for part in run.manifest.get("parts", []):
                check_part(run.path, part)
        reuse.republish(files, same, fp, [r.manifest.get("run_id") for r in chain], verified)
        c.records, c.rejects = int(same["output"].get("records", 0)), int(same.get("rejects") or 0)
        c.unmapped = sum(int(n) for n in (same.get("unmapped") or {}).values())  # warned as before
        return "success"  # the same records under a new run id: new provenance, same output
    ensure_dir(files.folder)
    verified = part_stats(chain)  # before reading: a part changed mid-read fails its checksum
    with files.store.stage() as gen:
        limit_hit: CanonizeFailed | None = None
        with open_private(gen.path(files.name("data")), "wb") as out, \
                open_private(gen.path(files.name("rejects")), "wb") as rej:
            try:
                digest = c.transform_all(chain, compiled, out, rej)
            except CanonizeFailed as exc:
                if exc.code not in (ErrorCode.TRANSFORM_TIMEOUT, ErrorCode.TRANSFORM_TOO_DEEP):
                    raise
                limit_hit = exc
            for fh in (out, rej):
                fh.flush()
                os.fsync(fh.fileno())
        if limit_hit is None and c.ids is not None and (found := c.ids.collisions()):
            # nothing is published (the staged generation is dropped): a merged output would
            # put one entity's records under another's identity
            diag = collisions_path(c.ws, c.ex.name)
            atomic_write_bytes(diag, c.ids.report(found, gen.path(files.name("data")), c.ex.name,
                                                  c.ex.source, c.ex.account))
            raise CanonizeFailed(ErrorCode.SOURCE_ID_COLLISION, str(diag))
        if (limit_hit is None and c.records == 0 and c.rejects == 0 and c.unmapped
                and not _maps_a_stream(chain, compiled) and _had_records(files)):
            raise CanonizeFailed(ErrorCode.NOTHING_MAPPED, None)  # a mapping typo: keep what is published
        if limit_hit is not None or c.over_limit():
            # the person needs the rejects of this attempt; data and meta stay as they were
            gen.path(files.name("data")).unlink()
            gen.carry(files.name("data"))
            gen.carry(files.name("meta"))
            gen.commit()
            raise CanonizeFailed(limit_hit.code if limit_hit else ErrorCode.REJECTS_EXCEEDED,
                                 str(c.paths["rejects"]))
        with open_private(gen.path(files.name("meta")), "wb") as fh:
            fh.write(publish.meta_bytes({
                "inputs": fp,
                "output": {"file": files.name("data"), "sha256": digest, "records": c.records,
                           "kinds": dict(sorted(c.counts.items()))},
                "rejects": c.rejects, "unmapped": dict(sorted(c.unmapped_streams.items())),
                "superseded": c.superseded, "unkeyed": c.unkeyed,
                "deactivated": dict(sorted(c.deactivated.items())),
                "deleted": dict(sorted(c.markers.deleted.items())) if c.markers else {},
                "deletions_unmatched": c.markers.unmatched if c.markers else 0,
                "runs": [r.manifest.get("run_id") for r in chain],
                "part_stats": verified,
                "account": c.ex.account, "source": c.ex.source, "extractor": c.ex.name,
            }))
        if not c.rejects:
            gen.path(files.name("rejects")).unlink()
        gen.commit()
    if c.ids is not None:  # the last collision report is no longer true
        collisions_path(c.ws, c.ex.name).unlink(missing_ok=True)
    return "success"
