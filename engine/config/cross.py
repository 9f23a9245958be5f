"""Config checks that span several keys (after each key was validated on its own).

Two extractors that would write one vault folder, or one set of canonical files, or an
engine-owned source; a job naming an unknown extractor; two mappings of one stream. Each problem comes with the key path
it is about, so ``engine.config.load`` can print it at its line.
"""

from __future__ import annotations

from engine.config.models import Extractor, Loc, PipelineConfig


def cross_check(cfg: PipelineConfig) -> list[tuple[Loc, str]]:
    """Checks that span several keys; each problem comes with the key path it is about."""
    problems: list[tuple[Loc, str]] = []
    names: dict[str, int] = {}
    places: dict[tuple[str, str, str], str] = {}
    for i, ex in enumerate(cfg.extractors):
        if ex.name in names:
            problems.append(((
                "extractors", i, "name"),
                f"extractor name {ex.name!r} is already used by extractors[{names[ex.name]}]; "
                "names must be unique",
            ))
        names.setdefault(ex.name, i)
        key = (ex.domain, ex.source, ex.account)
        if key in places:
            problems.append((
                ("extractors", i, "account"),
                f"extractors {places[key]!r} and {ex.name!r} would write to the same vault folder "
                f"{'/'.join(key)}; give them different accounts",
            ))
        places.setdefault(key, ex.name)
    problems += _canonical_clashes(cfg)
    for job, members in cfg.jobs.items():
        for j, member in enumerate(members):
            if member not in names:
                problems.append((("jobs", job, j), f"job {job!r} names an unknown extractor {member!r}"))
    loader_names: dict[str, int] = {}
    for i, lo in enumerate(cfg.loaders):
        if lo.name in loader_names:
            problems.append((("loaders", i, "name"),
                             f"loader name {lo.name!r} is already used by loaders[{loader_names[lo.name]}]; "
                             "names must be unique"))
        loader_names.setdefault(lo.name, i)
    job_name = cfg.stages.extract.job
    if job_name is not None and job_name not in cfg.jobs:
        problems.append((("stages", "extract", "job"), f"unknown job {job_name!r}"))
    problems += _duplicate_mappings(cfg)
    return problems


def _duplicate_mappings(cfg: PipelineConfig) -> list[tuple[Loc, str]]:
    """Two mappings of one source and stream: only one transform can canonize a stream, and
    the last one silently won (a ``_v2`` added beside ``_v1`` looked live and was not)."""
    problems: list[tuple[Loc, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, m in enumerate(cfg.stages.canonize.mappings):
        first = seen.setdefault((m.source, m.stream), i)
        if first != i:
            problems.append((("stages", "canonize", "mappings", i),
                             f"maps the same source and stream as stages.canonize.mappings[{first}]; "
                             "a stream has one transform: remove one (switching versions, replace "
                             "the transform id in place)"))
    return problems


RESERVED_SOURCES = ("measures",)
"""Sources the engine writes itself (``canonical/measures/``: the project stage's scored
questionnaires, ``engine.measures.score.MEASURES_SOURCE``): no extractor may use them."""


def _canonical_clashes(cfg: PipelineConfig) -> list[tuple[Loc, str]]:
    """Accounts whose canonical files would be one another's: ``canonical/{source}/`` has no
    domain (one account in two domains), and ``x.rejects`` would write ``x``'s rejects file."""
    problems: list[tuple[Loc, str]] = []
    first: dict[tuple[str, str], Extractor] = {}
    for ex in cfg.extractors:
        first.setdefault((ex.source, ex.account), ex)
    for i, ex in enumerate(cfg.extractors):
        if ex.source in RESERVED_SOURCES:
            problems.append((("extractors", i, "source"),
                             f"source {ex.source!r} is the engine's own (the scored questionnaires, "
                             "canonical/measures/); choose another source name"))
            continue
        other = first[(ex.source, ex.account)]
        base = ex.account.removesuffix(".rejects")
        if other.domain != ex.domain:  # the same domain: the vault folder check says it
            problems.append((("extractors", i, "account"),
                             f"extractors {other.name!r} and {ex.name!r} would write the same canonical "
                             f"files canonical/{ex.source}/{ex.account}.*; give them different accounts"))
        elif base != ex.account and (ex.source, base) in first:
            problems.append((("extractors", i, "account"),
                             f"account {ex.account!r} would write the rejects file of account {base!r} "
                             f"(canonical/{ex.source}/{ex.account}.jsonl); choose another account name"))
    return problems
