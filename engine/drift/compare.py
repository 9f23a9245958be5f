"""Comparing a run's field paths with the previous successful run and with the transforms.

For each stream of an account's LATEST run: the fields that appeared and vanished since the
previous successful run, and the paths its mapped transform reads that no record of LATEST
has (``missing_reads``); those that the previous run still had are ``vanished_reads``, the
case ``validate`` warns about and the dashboard marks. Only manifests are read, never a
record. A run written before field paths were collected gives ``known=False`` (no verdict).
An incremental run holds only changed records, so for it only appeared fields are judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.canon.registry import DEFAULT_TRANSFORMS as _DEFAULT_TRANSFORMS
from engine.canon.registry import Registry
from engine.config import Extractor, PipelineConfig
from engine.drift.reads import Reads, transform_reads
from engine.store.fsutil import read_regular
from engine.store.workspace import Workspace
from engine.vault.layout import list_runs, read_latest, read_manifest
from engine.vault.paths import manifest_capped, manifest_paths


@dataclass
class StreamDrift:
    """One stream of the LATEST run against the previous run and its transform."""

    stream: str
    transform: str | None
    known: bool
    """False when LATEST predates field paths (nothing can be said)."""
    current: set[str] = field(default_factory=set)
    previous: set[str] | None = None
    """None when there is no earlier successful run with paths for this stream."""
    reads: set[str] = field(default_factory=set)
    dynamic: bool = False
    """The transform also reads names built at run time (not checked)."""
    judged_vanished: bool = True
    """False for incremental runs and runs without records of the stream."""
    capped: bool = False

    @property
    def appeared(self) -> list[str]:
        """Paths LATEST has and the previous run had not."""
        return sorted(self.current - self.previous) if self.known and self.previous is not None else []

    @property
    def vanished(self) -> list[str]:
        """Paths the previous run had and LATEST has not."""
        if not (self.known and self.judged_vanished) or self.previous is None:
            return []
        return sorted(self.previous - self.current)

    @property
    def missing_reads(self) -> list[str]:
        """Paths the transform reads that no record of LATEST has."""
        if not (self.known and self.judged_vanished):
            return []
        return sorted(self.reads - self.current)

    @property
    def vanished_reads(self) -> list[str]:
        """Paths the transform reads that the previous run had and LATEST has not."""
        return [p for p in self.missing_reads if self.previous is not None and p in self.previous]


@dataclass
class AccountDrift:
    """Drift of one extractor's account."""

    extractor: str
    latest_run: str | None = None
    previous_run: str | None = None
    incremental: bool = False
    streams: list[StreamDrift] = field(default_factory=list)
    problem: str | None = None
    """``NO_LATEST`` or ``MANIFEST_INVALID`` when nothing could be compared."""

    @property
    def mark(self) -> str:
        """``!`` a transform reads a vanished field, ``Δ`` fields appeared or vanished, ``?`` a
        transform reads a field no record has (never had), ``✓`` none of these, ``-`` unknown
        (no LATEST, or it predates field paths)."""
        if self.problem or not any(s.known for s in self.streams):
            return "-"
        if any(s.vanished_reads for s in self.streams):
            return "!"
        if any(s.appeared or s.vanished for s in self.streams):
            return "Δ"
        if any(s.missing_reads for s in self.streams):
            return "?"
        return "✓"


@lru_cache(maxsize=256)
def _reads_cached(path: str, mtime_ns: int) -> Reads:
    return transform_reads(Path(path).read_text(encoding="utf-8"))


def reads_of(reg: Registry, transform_id: str) -> Reads | None:
    """The static reads of a registered transform (cached by file and mtime)."""
    t = reg.transforms.get(transform_id)
    if t is None:
        return None
    try:
        return _reads_cached(str(t.path), t.path.stat().st_mtime_ns)
    except OSError:
        return None


def _previous_success(account_dir: Path, latest_id: str) -> tuple[str | None, dict[str, Any] | None]:
    for ref in list_runs(account_dir):
        if ref.run_id >= latest_id:
            continue
        try:
            m = read_manifest(ref.path(account_dir))
        except (OSError, ValueError, AssertionError):
            continue
        if m.get("status") == "success":
            return ref.run_id, m
    return None, None


def _records(info: Any) -> int:
    records = info.get("records") if isinstance(info, dict) else 0
    return records if isinstance(records, int) else 0


def _streams(manifest: dict[str, Any] | None) -> dict[str, Any]:
    streams = (manifest or {}).get("streams")
    return {k: v for k, v in streams.items() if isinstance(k, str)} if isinstance(streams, dict) else {}


def account_drift(cfg: PipelineConfig, ws: Workspace, ex: Extractor,
                  reg: Registry | None = None) -> AccountDrift:
    """Compare the account's LATEST run with its previous successful run and transforms."""
    out = AccountDrift(ex.name)
    account_dir = ws.account_dir(ex.domain, ex.source, ex.account)
    try:
        latest = read_latest(account_dir)
        if latest is None:
            out.problem = "NO_LATEST"
            return out
        out.latest_run = str(latest["run_id"])
        manifest = read_manifest(account_dir / f"dt={latest['dt']}" / f"run_id={latest['run_id']}")
    except (OSError, ValueError, KeyError, AssertionError):
        out.problem = "MANIFEST_INVALID"
        return out
    out.previous_run, prev = _previous_success(account_dir, out.latest_run)
    out.incremental = bool((manifest.get("incremental") or {}).get("state_passed"))
    reg = reg or Registry.load(cfg.stages.canonize.transforms_dir, cfg.stages.canonize.schemas_dir)
    mapped = {m.stream: m.transform for m in cfg.stages.canonize.mappings if m.source == ex.source}
    streams = _streams(manifest)
    prev_streams = _streams(prev)
    prev_known = any(manifest_paths(i) is not None for i in prev_streams.values())
    latest_known = any(manifest_paths(i) is not None for i in streams.values())
    for name in sorted(set(streams) | set(mapped) | set(prev_streams)):
        info = streams.get(name)
        current = manifest_paths(info)
        if current is None and latest_known and _records(info) == 0:
            current = set()  # the stream sent no record this time: it has no fields
        previous = manifest_paths(prev_streams.get(name))
        if previous is None and prev_known and name not in prev_streams:
            previous = set()  # a stream the previous run did not have: every field is new
        sd = StreamDrift(stream=name, transform=mapped.get(name), known=current is not None,
                         current=current or set(), previous=previous, capped=manifest_capped(info))
        # vanished fields are judged on full runs only, and on a stream that has records now
        # or had some before (a stream gone from a full run lost every field)
        sd.judged_vanished = (not out.incremental and not sd.capped
                              and (_records(info) > 0 or bool(previous)))
        if sd.transform is not None:
            reads = reads_of(reg, sd.transform)
            if reads is not None:
                sd.reads, sd.dynamic = set(reads.paths), reads.dynamic
        out.streams.append(sd)
    return out


_MARKS: dict[tuple[Any, ...], str] = {}
"""Marks by everything they depend on, so a dashboard rescan reads two tiny files per account."""


def _registry_key(cfg: PipelineConfig) -> tuple[Any, ...]:
    canon = cfg.stages.canonize
    reg_dir = canon.transforms_dir
    files = sorted((p, p.stat().st_mtime_ns) for p in (reg_dir or _DEFAULT_TRANSFORMS).glob("*/*")
                   if p.is_file())
    return (str(reg_dir), str(canon.schemas_dir), tuple((str(p), m) for p, m in files),
            tuple((m.source, m.stream, m.transform) for m in canon.mappings))


def drift_marks(cfg: PipelineConfig, ws: Workspace) -> dict[str, str]:
    """Each extractor's drift mark (see :attr:`AccountDrift.mark`); never raises on data.

    A mark depends only on the registry's files, the mappings and the account's LATEST
    pointer (the previous successful run is older than LATEST, so later failed runs do not
    change it); it is cached on those, and recomputed when one changes.
    """
    try:
        reg_key = _registry_key(cfg)
    except OSError:
        return {}
    reg: Registry | None = None
    marks: dict[str, str] = {}
    for ex in cfg.extractors:
        account_dir = ws.account_dir(ex.domain, ex.source, ex.account)
        try:
            latest = read_regular(account_dir / "LATEST.json")  # a FIFO planted there never blocks
        except OSError:
            latest = b""
        key = (reg_key, str(account_dir), latest)
        if key in _MARKS:
            marks[ex.name] = _MARKS[key]
            continue
        try:
            if reg is None:
                reg = Registry.load(cfg.stages.canonize.transforms_dir, cfg.stages.canonize.schemas_dir)
            marks[ex.name] = account_drift(cfg, ws, ex, reg).mark
        except Exception:  # noqa: BLE001 - a malformed manifest or registry must not break a face
            marks[ex.name] = "-"
            continue
        if len(_MARKS) > 1024:
            _MARKS.clear()
        _MARKS[key] = marks[ex.name]
    return marks
