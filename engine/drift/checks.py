"""The drift items of ``lorchestra validate`` and of a canonize run: a transform reading a
field that vanished.

Only warnings (a source that dropped a column does not make the config wrong), printed with
names the config declares: the mapping's stream and the transform's own read paths.
"""

from __future__ import annotations

from engine.canon.registry import Registry
from engine.check import Check
from engine.config import CanonizeStage, Extractor, PipelineConfig
from engine.drift.compare import account_drift, canon_drift
from engine.store.workspace import Workspace


def check_drift(cfg: PipelineConfig, ws: Workspace) -> list[Check]:
    """One warning per mapped stream whose transform reads fields its LATEST run lost."""
    if not cfg.stages.canonize.mappings:
        return []
    reg = Registry.load(cfg.stages.canonize.transforms_dir, cfg.stages.canonize.schemas_dir)
    out: list[Check] = []
    judged = 0
    for ex in cfg.extractors:
        try:
            drift = account_drift(cfg, ws, ex, reg)
        except Exception:  # noqa: BLE001 - validate reports manifests elsewhere; never crash here
            continue
        for sd in drift.streams:
            if sd.transform is None or not sd.known:
                continue
            judged += 1
            if sd.vanished_reads:
                out.append(Check("drift", f"{ex.name} {sd.stream}", "warn",
                                 f"{sd.transform} reads {len(sd.vanished_reads)} field(s) that vanished "
                                 f"since the previous run: {', '.join(sd.vanished_reads[:10])} "
                                 f"(see `lorchestra drift {ex.name}`)"))
    if not out:
        out.append(Check("drift", "transforms", "ok" if judged else "skip",
                         f"no mapped transform reads a vanished field ({judged} stream(s) compared)"
                         if judged else "no LATEST run with field paths yet"))
    return out


def vanished_reads(canon: CanonizeStage, ws: Workspace, ex: Extractor) -> int:
    """How many fields the account's mapped transforms read that vanished from the source
    (drift's ``!``): a canonize run says it (``SOURCE_FIELD_VANISHED``), since the canonical
    records went on without them; counted from the manifests, 0 when unsure."""
    try:
        drift = canon_drift(canon, ws, ex)
    except Exception:  # noqa: BLE001 - advisory: an odd manifest must never fail the canonize task
        return 0
    return sum(len(s.vanished_reads) for s in drift.streams)
