"""Planning a run: which extractors, which stages, in which order.

A plan is a list of per-account chains (extract -> canonize -> index, or the stages
asked for). Selection is by job, by ``--account`` patterns (globs matched against the
extractor name and its account) or by name; an empty selection is a usage error.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.config import STAGES, Extractor, Loader, PipelineConfig
from engine.errors import UsageError

if TYPE_CHECKING:  # a type only: `run --dry-run` does not load the event models
    from engine.events import Stage

IMPLEMENTED_STAGES: tuple[Stage, ...] = ("extract", "canonize", "index")
"""The stages of a per-account chain; project runs once per run, after every chain."""
RUN_STAGES: tuple[Stage, ...] = (*IMPLEMENTED_STAGES, "project")
"""Every stage `run --stage` accepts, in order."""
PROJECT_TASK_ID = "project:clients"


def project_extractor() -> Extractor:
    """The identifiers the project task's events carry (it is no extractor: it reads every
    account's documents). The name ``clients`` and account ``*`` show in progress and logs."""
    return Extractor(name="clients", domain="clients", source="clients", account="all",
                     kind="singer", command=["(project stage)"])


@dataclass(frozen=True)
class Chain:
    """The stages one account runs, in order."""

    extractor: Extractor
    stages: tuple[Stage, ...]
    target: Loader | None = None
    """`extract --target`: the loader the tap is piped into instead of the vault."""

    def task_id(self, stage: Stage) -> str:
        """The task id of one stage of this chain."""
        return f"{stage}:{self.extractor.name}"


@dataclass(frozen=True)
class Plan:
    """What a run will do."""

    chains: list[Chain]
    stages: tuple[Stage, ...]
    notes: list[str] = field(default_factory=list)
    project: bool = False
    """Run the project stage once, after every chain has ended."""

    @property
    def task_count(self) -> int:
        """Tasks in the plan."""
        return sum(len(c.stages) for c in self.chains) + int(self.project)


def select_extractors(cfg: PipelineConfig, accounts: list[str] | None = None,
                      job: str | None = None) -> list[Extractor]:
    """Extractors chosen by job and account patterns (all, or the default job, if none)."""
    if job is None and not accounts:
        job = cfg.stages.extract.job
    pool = cfg.extractors
    if job is not None:
        if job not in cfg.jobs:
            known = ", ".join(sorted(cfg.jobs)) or "none"
            raise UsageError(f"unknown job {job!r} (jobs in the config: {known})",
                             hint="run `lorchestra list jobs`")
        members = set(cfg.jobs[job])
        pool = [e for e in pool if e.name in members]
    if not accounts:
        return list(pool)
    chosen: list[Extractor] = []
    for pattern in accounts:
        hits = [e for e in pool if fnmatch.fnmatchcase(e.name, pattern)
                or fnmatch.fnmatchcase(e.account, pattern)]
        if not hits:
            raise UsageError(f"--account {pattern!r} matches no extractor",
                             hint="run `lorchestra list extractors` to see names and accounts")
        chosen += [e for e in hits if e not in chosen]
    return chosen


def build_plan(cfg: PipelineConfig, stages: list[str] | None = None,
               accounts: list[str] | None = None, job: str | None = None) -> Plan:
    """Plan the stages asked for (all implemented stages if none) over the selection."""
    default = RUN_STAGES if cfg.clients is not None else IMPLEMENTED_STAGES
    wanted = tuple(stages) if stages else default
    for s in wanted:
        if s not in STAGES:
            raise UsageError(f"unknown stage {s!r}; stages are {', '.join(STAGES)}")
        if s not in RUN_STAGES:
            raise UsageError(f"the {s} stage is not available in this version",
                             hint=f"stages available: {', '.join(RUN_STAGES)}")
    if "project" in wanted and cfg.clients is None:
        raise UsageError("the project stage needs a `clients` section in the config",
                         hint="add `clients: {sources: [...]}` (see docs/clients.md)")
    ordered: tuple[Stage, ...] = tuple(s for s in RUN_STAGES if s in wanted)
    per_account = tuple(s for s in ordered if s in IMPLEMENTED_STAGES)
    chains = [Chain(e, per_account) for e in select_extractors(cfg, accounts, job)]
    if not per_account:
        chains = []
    if "canonize" in ordered:
        from engine.ops.checks import preflight_canonize

        preflight_canonize(cfg)
    return Plan(chains, ordered, project="project" in ordered)
