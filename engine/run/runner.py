"""The engine: runs a plan's per-account chains as worker subprocesses, with limits.

Each chain runs its stages in order and stops at the first failure; a per-stage
semaphore caps concurrency (``stages.extract.max_parallel`` for extract). Failed attempts
are retried with exponential backoff; cancellation (one task or all) is clean: SIGTERM,
grace period, SIGKILL, and every child is reaped. Events go to the bus and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field

from engine.config import PipelineConfig
from engine.events import (
    ErrorCode,
    RunFinished,
    RunStarted,
    Stage,
    TaskFinished,
    TaskQueued,
    TaskRetry,
    Trigger,
)
from engine.limits import task_limits
from engine.run.bus import EventBus
from engine.run.executor import Executor, LocalSubprocessExecutor
from engine.run.plan import PROJECT_TASK_ID, Chain, Plan, project_extractor
from engine.run.slots import WeightedSlots, input_weight
from engine.run.task import TaskProcess
from engine.stages.spec import TaskSpec
from engine.store.history import counted_stage
from engine.store.workspace import Workspace

NO_RETRY = frozenset({ErrorCode.WRITE_FAILED.value, "DISK_FULL", ErrorCode.TAP_LEFTOVER_KILLED.value})
"""Error codes a retry cannot fix: a full or failing workspace disk stays so for seconds, and
a tap that leaves processes holding its output does so every time; retrying only piles up
failed runs."""


@dataclass
class RunResult:
    """What a run did: every task's final event, and the run's summary event."""

    finished: dict[str, TaskFinished] = field(default_factory=dict)
    summary: RunFinished | None = None
    stages: tuple[str, ...] = ()
    """The stages the run planned (which stage's records its summary counts: ``counted_stage``)."""

    @property
    def ok(self) -> bool:
        """True when every task succeeded or was skipped."""
        return self.summary is not None and self.summary.status == "success"


def new_run_id() -> str:
    """A pipeline run id: UTC time plus a short random suffix."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


class Runner:
    """Runs plans against one workspace; one instance per process."""

    def __init__(self, cfg: PipelineConfig, ws: Workspace, bus: EventBus,
                 trigger: Trigger = "cli", *, force: bool = False,
                 executor: Executor | None = None) -> None:
        self.cfg = cfg
        self.executor: Executor = executor or LocalSubprocessExecutor()
        self.force = force
        self.ws = ws
        self.bus = bus
        self.trigger = trigger
        self._running: dict[str, TaskProcess] = {}
        self._cancelled: set[str] = set()
        self._cancel_all = False
        self._run_id: str | None = None
        self._started: float | None = None
        self._result: RunResult | None = None
        self.errors: list[BaseException] = []
        """Unexpected exceptions that ended a chain (its tasks were failed with INTERNAL_ERROR)."""
        limit = cfg.stages.extract.max_parallel
        cores = os.cpu_count() or 1
        self._slots: dict[Stage, WeightedSlots] = {  # heaviest waiting task first: engine/run/slots.py
            "extract": WeightedSlots(limit),
            "canonize": WeightedSlots(cfg.stages.canonize.workers or cores),
            "index": WeightedSlots(cfg.stages.index.workers or cores),
            "project": WeightedSlots(1),
        }

    async def run(self, plan: Plan) -> RunResult:
        """Run every chain of the plan; return when all have ended."""
        run_id = self._run_id = new_run_id()
        started = self._started = time.monotonic()
        result = self._result = RunResult(stages=tuple(plan.stages))
        self.bus.emit(RunStarted(run_id=run_id, trigger=self.trigger, pipeline=self.cfg.pipeline.name,
                                 stages=list(plan.stages), tasks=plan.task_count))
        for chain in plan.chains:
            for stage in chain.stages:
                self.bus.emit(TaskQueued(task_id=chain.task_id(stage), stage=stage,
                                         extractor=chain.extractor.name, account=chain.extractor.account))
        project = Chain(project_extractor(), ("project",))
        if plan.project:
            self.bus.emit(TaskQueued(task_id=PROJECT_TASK_ID, stage="project",
                                     extractor=project.extractor.name,
                                     account=project.extractor.account))
        outcomes = await asyncio.gather(*(self._run_chain(chain, result) for chain in plan.chains),
                                        return_exceptions=True)
        for chain, outcome in zip(plan.chains, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # a bug or an I/O error in the engine itself
                self.errors.append(outcome)
                self._fail_rest(chain, result, ErrorCode.INTERNAL_ERROR.value)
        if plan.project:  # once, after every index task of the run has ended (failed or not)
            try:
                await self._run_chain(project, result)
            except Exception as exc:  # a bug or an I/O error in the engine itself
                self.errors.append(exc)
                self._fail_rest(project, result, ErrorCode.INTERNAL_ERROR.value)
        result.summary = self._summary(run_id, plan, result, time.monotonic() - started)
        self.bus.emit(result.summary)
        return result

    def abandon(self, plan: Plan) -> RunResult:
        """After :meth:`run` raised: fail every task without a final event, emit the run's
        summary and return the result, so the run is still recorded and reported."""
        result = self._result or RunResult(stages=tuple(plan.stages))
        chains = plan.chains + ([Chain(project_extractor(), ("project",))] if plan.project else [])
        for chain in chains:
            self._fail_rest(chain, result, ErrorCode.INTERNAL_ERROR.value)
        result.summary = self._summary(self._run_id or new_run_id(), plan, result,
                                       time.monotonic() - (self._started or time.monotonic()))
        self.bus.emit(result.summary)
        return result

    def _fail_rest(self, chain: Chain, result: RunResult, code: str) -> None:
        """Give every task of ``chain`` that has no final event one (failed with ``code``),
        so the run is recorded and summarised whatever went wrong."""
        ex = chain.extractor
        for stage in chain.stages:
            task_id = chain.task_id(stage)
            if task_id not in result.finished:
                final = TaskFinished(task_id=task_id, stage=stage, extractor=ex.name, account=ex.account,
                                     status="failed", error_code=code)
                result.finished[task_id] = final
                self.bus.emit(final)

    def _summary(self, run_id: str, plan: Plan, result: RunResult, elapsed: float) -> RunFinished:
        done = list(result.finished.values())
        ok = sum(1 for f in done if f.status in ("success", "skipped"))
        failed = sum(1 for f in done if f.status in ("failed", "timeout"))
        cancelled = plan.task_count - ok - failed
        status = "success" if ok == plan.task_count else ("failed" if failed else "cancelled")
        counted = counted_stage(plan.stages)  # extracted; without an extract, the stage's own
        return RunFinished(run_id=run_id, status=status, tasks=plan.task_count, succeeded=ok,  # type: ignore[arg-type]
                           failed=failed, cancelled=cancelled,
                           records=sum(f.records for f in done if f.stage == counted),
                           duration_s=round(elapsed, 3),
                           error_code=ErrorCode.DISK_FULL.value if any(
                               f.error_code == ErrorCode.DISK_FULL.value for f in done) else None)

    async def _run_chain(self, chain: Chain, result: RunResult) -> None:
        blocked: str | None = None
        for stage in chain.stages:
            final = None if blocked else await self._run_task(chain, stage)
            if final is None:
                ex = chain.extractor
                final = TaskFinished(task_id=chain.task_id(stage), stage=stage, extractor=ex.name,
                                     account=ex.account, status="cancelled",
                                     error_code=blocked or ErrorCode.CANCELLED.value)
                self.bus.emit(final)
            result.finished[final.task_id] = final
            if final.status not in ("success", "skipped"):  # after a cancel, the rest is cancelled too
                blocked = blocked or (ErrorCode.CANCELLED.value if final.status == "cancelled"
                                      else ErrorCode.UPSTREAM_FAILED.value)

    async def _run_task(self, chain: Chain, stage: Stage) -> TaskFinished | None:
        ex = chain.extractor
        task_id = chain.task_id(stage)
        grace = self.cfg.stages.extract.cancel_grace_s
        weight = 0.0 if stage == "project" else input_weight(self.ws, ex, stage)
        async with self._slots[stage].take(weight):
            final: TaskFinished | None = None
            retries = ex.retries if stage == "extract" else 0
            for attempt in range(1, retries + 2):
                if self._is_cancelled(task_id):
                    if final is not None:  # cancelled while waiting to retry: the task ends cancelled,
                        final = TaskFinished(task_id=task_id, stage=stage, extractor=ex.name,  # said once more
                                             account=ex.account, attempt=attempt, status="cancelled",
                                             error_code=ErrorCode.CANCELLED.value)
                        self.bus.emit(final)
                    return final
                spec = TaskSpec(task_id=task_id, stage=stage, attempt=attempt, workspace=self.ws.root,
                                extractor=ex, extract=self.cfg.stages.extract,
                                canonize=self.cfg.stages.canonize, index=self.cfg.stages.index,
                                force=self.force, target=chain.target,
                                limits=task_limits(self.cfg, stage),
                                clients=self.cfg.clients if stage == "project" else None,
                                accounts=[(e.source, e.account) for e in self.cfg.extractors]
                                if stage == "project" else None)
                proc = TaskProcess(spec, self.bus, grace, self.executor)
                self._running[task_id] = proc
                try:
                    final = await proc.run()
                except OSError:  # the worker could not start (a full disk, no diagnostics file)
                    await proc.kill()
                    final = proc.not_started(ErrorCode.WRITE_FAILED)
                except BaseException:
                    await proc.kill()  # never leave a worker (and the lock it holds) behind
                    raise
                finally:
                    self._running.pop(task_id, None)
                if (final.status in ("success", "skipped", "cancelled") or attempt > retries
                        or final.error_code in NO_RETRY):
                    return final
                delay = ex.retry_backoff_s * (2 ** (attempt - 1))
                self.bus.emit(TaskRetry(task_id=task_id, stage=stage, extractor=ex.name, attempt=attempt,
                                        delay_s=delay, error_code=final.error_code))
                await self._sleep_unless_cancelled(task_id, delay)
            return final

    async def _sleep_unless_cancelled(self, task_id: str, delay: float) -> None:
        end = time.monotonic() + delay
        while time.monotonic() < end and not self._is_cancelled(task_id):
            await asyncio.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def _is_cancelled(self, task_id: str) -> bool:
        return self._cancel_all or task_id in self._cancelled

    async def cancel(self, task_id: str) -> bool:
        """Cancel one task (running or waiting); True if it was known."""
        self._cancelled.add(task_id)
        proc = self._running.get(task_id)
        if proc is not None:
            await proc.cancel()
            return True
        return False

    async def cancel_all(self) -> None:
        """Cancel every running and waiting task and wait until their workers are gone."""
        self._cancel_all = True
        await asyncio.gather(*(p.cancel() for p in list(self._running.values())))

    @property
    def cancelled_all(self) -> bool:
        """Whether :meth:`cancel_all` was called (the run was interrupted)."""
        return self._cancel_all

    @property
    def running(self) -> list[str]:
        """Task ids with a live worker."""
        return list(self._running)


__all__ = ["RunResult", "Runner"]
