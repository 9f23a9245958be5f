"""Comparing a run's field paths with the previous successful run and with the transforms.

What the transform sees is not one run but the runs LATEST's canonical output is built from:
LATEST alone for a full run, LATEST and the runs back to the last full one for an incremental
run (:mod:`engine.vault.chain`). So each side of the comparison is a *chain*: per stream, the
union of the paths of its runs. For each stream of an account's LATEST:

* a **full** LATEST is complete: its paths are compared with the union over the previous
  successful run's chain (``previous``). A field that some record of that chain had and no
  record of LATEST has *vanished*; a field LATEST has and that chain had not *appeared*.
* an **incremental** LATEST holds only the records that changed, so a field absent from it
  is not gone (the unchanged records of the older runs still carry it): its ``current`` is
  the union over its own chain, so only the fields of the changed records that the previous
  chain had not appear. What it can show is a field that every changed record *lost*: one
  that every (walked) record of an older run of the chain had and that no record of the
  newer runs has, though they have records of the stream (``lost``, deletion markers apart;
  ``always`` in the manifest, :mod:`engine.vault.paths`). An optional field the few changed
  records happen not to have is in no older run's ``always``: it is not lost. A field lost by
  this run and not yet by the previous run's chain has *vanished*; while it stays lost, a
  transform reading it is listed with ``missing_reads``, as a full run's field in no record.

The paths the mapped transform reads that no record of the chain has, and the lost ones it
reads, are ``missing_reads``; those that vanished are ``vanished_reads``, the case
``validate`` warns about and the dashboard marks. Only manifests are read, never a record. A
LATEST written before field paths were collected gives ``known=False`` (no verdict); a chain
with such a run, a broken chain or a capped stream is not judged for vanished fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.canon.registry import DEFAULT_TRANSFORMS as _DEFAULT_TRANSFORMS
from engine.canon.registry import Registry
from engine.config import CanonizeStage, Extractor, PipelineConfig
from engine.drift.reads import Reads, transform_reads
from engine.store.fsutil import read_regular
from engine.store.workspace import Workspace
from engine.vault.chain import ChainBroken, ChainRun, incremental_chain
from engine.vault.layout import list_runs, read_latest, read_manifest
from engine.vault.paths import (
    manifest_always,
    manifest_capped,
    manifest_paths,
    manifest_walked_records,
)


@dataclass
class StreamDrift:
    """One stream of the LATEST chain against the previous run's chain and its transform."""

    stream: str
    transform: str | None
    known: bool
    """False when LATEST predates field paths (nothing can be said)."""
    current: set[str] = field(default_factory=set)
    """The paths of LATEST's chain (LATEST alone when it is a full run)."""
    previous: set[str] | None = None
    """The paths of the previous successful run's chain; None when there is none with paths."""
    reads: set[str] = field(default_factory=set)
    dynamic: bool = False
    """The transform also reads names built at run time (not checked)."""
    judged_vanished: bool = True
    """False for a capped stream, a chain not fully known, and a stream without records."""
    capped: bool = False
    incremental: bool = False
    lost: set[str] = field(default_factory=set)
    """Incremental chain: paths every record of an older run had and no newer record has."""
    lost_before: set[str] = field(default_factory=set)
    """The same for the previous run's chain (lost then already: not news)."""

    @property
    def appeared(self) -> list[str]:
        """Paths LATEST's chain has and the previous run's chain had not."""
        return sorted(self.current - self.previous) if self.known and self.previous is not None else []

    @property
    def vanished(self) -> list[str]:
        """Paths the previous run's chain had and LATEST has not (full), or that every
        changed record lost since the previous run (incremental)."""
        if not (self.known and self.judged_vanished) or self.previous is None:
            return []
        if self.incremental:
            return sorted((self.lost - self.lost_before) & self.previous)
        return sorted(self.previous - self.current)

    @property
    def missing_reads(self) -> list[str]:
        """Paths the transform reads that no record of LATEST's chain has, or that every
        changed record of an incremental chain lost."""
        if not (self.known and self.judged_vanished):
            return []
        return sorted((self.reads - self.current) | (self.reads & self.lost))

    @property
    def vanished_reads(self) -> list[str]:
        """Paths the transform reads that vanished (see :attr:`vanished`)."""
        return [p for p in self.vanished if p in self.reads]


@dataclass
class AccountDrift:
    """Drift of one extractor's account."""

    extractor: str
    latest_run: str | None = None
    previous_run: str | None = None
    incremental: bool = False
    chain: list[str] = field(default_factory=list)
    """The run ids LATEST's canonical output is built from, newest first."""
    previous_chain: list[str] = field(default_factory=list)
    """The same for the previous successful run."""
    chain_broken: bool = False
    """A run of either chain is missing or unreadable (vanished fields are then not judged)."""
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


def _previous_success(account_dir: Path, latest_id: str) -> tuple[ChainRun | None, str | None]:
    for ref in list_runs(account_dir):
        if ref.run_id >= latest_id:
            continue
        try:
            m = read_manifest(ref.path(account_dir))
        except (OSError, ValueError, AssertionError):
            continue
        if m.get("status") == "success":
            return ChainRun(ref.path(account_dir), m), ref.run_id
    return None, None


def _records(info: Any) -> int:
    records = info.get("records") if isinstance(info, dict) else 0
    return records if isinstance(records, int) else 0


def _streams(manifest: dict[str, Any] | None) -> dict[str, Any]:
    streams = (manifest or {}).get("streams")
    return {k: v for k, v in streams.items() if isinstance(k, str)} if isinstance(streams, dict) else {}


def _chain(account_dir: Path, run: ChainRun) -> tuple[list[ChainRun], bool]:
    """The run and the runs it builds on (newest first), and whether that chain is broken
    (then the run alone)."""
    try:
        return incremental_chain(account_dir, run), False
    except ChainBroken:
        return [run], True


def _is_incremental(manifest: dict[str, Any]) -> bool:
    inc = manifest.get("incremental")
    return bool(isinstance(inc, dict) and inc.get("state_passed"))


@dataclass
class ChainFields:
    """One stream's paths over a chain of runs (see the module's docstring)."""

    paths: set[str] | None
    """The union over the chain; None when its newest run predates field paths."""
    lost: set[str] = field(default_factory=set)
    capped: bool = False
    complete: bool = True
    """Every run of the chain that has records of the stream recorded its paths."""
    records: int = 0


BASE_MIN_RECORDS = 5
"""Walked records the chain's full run needs before the fields every one of them had are
taken as the stream's required ones (:func:`_required`)."""


def _required(base: ChainRun, stream: str) -> set[str]:
    """The fields every walked record of the chain's full (oldest) run had: only such a field
    can be lost. A delta is a handful of records: last night's one mail with a Cc made `cc`
    a field 'every record had', and tonight's mail without one read as `cc` lost."""
    info = _streams(base.manifest).get(stream)
    always = manifest_always(info)
    return set(always) if always and manifest_walked_records(info) >= BASE_MIN_RECORDS else set()


def chain_fields(chain: list[ChainRun], stream: str) -> ChainFields:
    """The paths of ``stream`` over ``chain`` (newest first), and the fields it lost: those
    that every walked record of an older run had and no record of a newer run has, while
    those newer runs had records of the stream that were not deletion markers, and only among
    the fields every record of the chain's full run had (:func:`_required`)."""
    out = ChainFields(paths=None)
    newer: set[str] = set()
    newer_records = 0
    required = _required(chain[-1], stream) if chain else set()
    # the oldest run that recorded field paths: every run newer than it was written by a
    # writer that records them, so one without any (a quiet night's empty delta) sent no record
    recorded = [i for i, run in enumerate(chain)
                if any(manifest_paths(x) is not None for x in _streams(run.manifest).values())]
    era = max(recorded, default=-1)
    for i, run in enumerate(chain):
        streams = _streams(run.manifest)
        info = streams.get(stream)
        paths = manifest_paths(info)
        if paths is None and _records(info) == 0 and i <= era:
            paths = set()  # the run sent no record of the stream: it has no fields
        if paths is None:
            if i == 0:
                return out  # LATEST predates field paths: nothing can be said
            out.complete = out.complete and _records(info) == 0
            continue
        always = manifest_always(info)
        if newer_records and out.complete and not out.capped and always and required:
            out.lost |= (always & required) - newer
        newer |= paths
        newer_records += manifest_walked_records(info)
        out.capped = out.capped or manifest_capped(info)
        out.records += _records(info)
        out.paths = newer
    return out


def account_drift(cfg: PipelineConfig, ws: Workspace, ex: Extractor,
                  reg: Registry | None = None) -> AccountDrift:
    """Compare the account's LATEST chain with its previous successful run's chain and with
    the mapped transforms."""
    return canon_drift(cfg.stages.canonize, ws, ex, reg)


def canon_drift(canon: CanonizeStage, ws: Workspace, ex: Extractor, reg: Registry | None = None) -> AccountDrift:
    """:func:`account_drift` given the canonize settings alone (a canonize worker has no
    more of the config)."""
    out = AccountDrift(ex.name)
    account_dir = ws.account_dir(ex.domain, ex.source, ex.account)
    try:
        latest = read_latest(account_dir)
        if latest is None:
            out.problem = "NO_LATEST"
            return out
        out.latest_run = str(latest["run_id"])
        path = account_dir / f"dt={latest['dt']}" / f"run_id={latest['run_id']}"
        manifest = read_manifest(path)
    except (OSError, ValueError, KeyError, AssertionError):
        out.problem = "MANIFEST_INVALID"
        return out
    chain, broken = _chain(account_dir, ChainRun(path, manifest))
    prev_run, out.previous_run = _previous_success(account_dir, out.latest_run)
    if prev_run is not None and len(chain) > 1 and chain[1].path == prev_run.path:
        prev_chain, prev_broken = chain[1:], broken  # the usual delta: built on the previous run
    elif prev_run is not None:
        prev_chain, prev_broken = _chain(account_dir, prev_run)
    else:
        prev_chain, prev_broken = [], False
    out.chain_broken = broken or prev_broken
    out.chain = [_run_id(r) for r in chain]
    out.previous_chain = [_run_id(r) for r in prev_chain]
    out.incremental = _is_incremental(manifest)
    reg = reg or Registry.load(canon.transforms_dir, canon.schemas_dir)
    mapped = {m.stream: m.transform for m in canon.mappings if m.source == ex.source}
    streams = _streams(manifest)
    names = set(streams) | set(mapped)
    for run in chain[1:] + prev_chain:
        names |= set(_streams(run.manifest))
    prev_known = any(manifest_paths(i) is not None for r in prev_chain for i in _streams(r.manifest).values())
    for name in sorted(names):
        now = chain_fields(chain, name)
        before = chain_fields(prev_chain, name) if prev_known else ChainFields(paths=None)
        previous = before.paths
        if previous is None and prev_known:
            previous = set()  # a stream the previous chain did not have: every field is new
        sd = StreamDrift(stream=name, transform=mapped.get(name), known=now.paths is not None,
                         current=now.paths or set(), previous=previous, capped=now.capped,
                         incremental=out.incremental, lost=now.lost,
                         lost_before=before.lost if previous is not None else set())
        if out.incremental:
            # records absent from a delta are not fields gone: judged on the whole chain, when
            # every run of it is known
            sd.judged_vanished = (not broken and now.complete and not sd.capped
                                  and (now.records > 0 or bool(previous)))
        else:
            # a full run is judged on a stream that has records now or had some before (a
            # stream gone from a full run lost every field)
            sd.judged_vanished = (not sd.capped and not prev_broken
                                  and (_records(streams.get(name)) > 0 or bool(previous)))
        if sd.transform is not None:
            reads = reads_of(reg, sd.transform)
            if reads is not None:
                sd.reads, sd.dynamic = set(reads.paths), reads.dynamic
        out.streams.append(sd)
    return out


def _run_id(run: ChainRun) -> str:
    return run.path.name.removeprefix("run_id=")


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
