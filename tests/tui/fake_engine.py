"""A fake engine for dashboard tests: the EngineFace surface, replaying scripted events.

It never spawns a process and never touches the workspace. ``start`` records the call and
replays a script of real :mod:`engine.events` models into the pending list from an asyncio
task, the way :class:`lorch_tui.engine_face.LiveEngine` receives them from the bus; the app
drains that list on its flush timer. A script is a list of events and two markers:
:class:`Pause` (sleep) and :class:`Hold` (wait until :meth:`FakeEngine.release`, so tests can
look at a run "mid-flight"). Cancelling emits ``TaskFinished(status="cancelled")`` like the
real runner, and a run always ends with a ``RunFinished`` computed from what was emitted
(its ``records`` by the engine's own rule, :func:`engine.store.history.counted_stage`).

A run whose task ended ``DISK_FULL`` ends with that run-level code, as the real engine's does
(:attr:`FakeEngine.run_error_code` sets one without a task). Every call is recorded in
:attr:`FakeEngine.calls`; :attr:`FakeEngine.start_error` makes
``start`` raise (``WorkspaceBusy`` when cron holds the lock); :meth:`FakeEngine.flood`
pours N events per second in for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.config.load import LoadedConfig
from engine.errors import LorchError
from engine.events import (
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskProgress,
    TaskQueued,
    TaskStarted,
)
from engine.store.history import counted_stage

STAGE_ORDER = ("extract", "canonize", "index", "project")


@dataclass(frozen=True)
class Pause:
    """Sleep this long before the next script item."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Wait here until the test calls :meth:`FakeEngine.release` (or the run is cancelled)."""


Item = Event | Pause | Hold
Script = list[Item]
ScriptFactory = Callable[["FakeEngine", list[str], list[str]], Script]


@dataclass(frozen=True)
class Call:
    """One call the app made on the engine."""

    name: str  # start | cancel | cancel_all | reconfigure
    stages: list[str] | None = None
    accounts: list[str] | None = None
    force: bool = False
    task_id: str | None = None
    loaded: LoadedConfig | None = None


@dataclass
class TaskPlan:
    """How one scripted task behaves."""

    stage: str
    extractor: str
    account: str
    records: int = 20
    status: str = "success"
    error_code: str | None = None
    hold: bool = False  # stay running until release()
    total: int | None = None

    @property
    def task_id(self) -> str:
        return f"{self.stage}:{self.extractor}"


def task_script(run_id: str, tasks: Sequence[TaskPlan], *, trigger: str = "dashboard",
                step_s: float = 0.0, progress_steps: int = 2) -> Script:
    """The events of a run: RunStarted, every task queued, then each task's life in order.

    A task with ``hold`` starts, reports progress and waits at a :class:`Hold` before it
    finishes; tasks after it are not started until the test releases it.
    """
    stages = sorted({t.stage for t in tasks}, key=STAGE_ORDER.index)
    script: Script = [RunStarted(run_id=run_id, trigger=trigger, pipeline="test",
                                 stages=stages, tasks=len(tasks))]
    script += [TaskQueued(task_id=t.task_id, stage=t.stage, extractor=t.extractor,
                          account=t.account) for t in tasks]
    held = [t for t in tasks if t.hold]
    for t in tasks:  # held tasks start first, so they are running while the test looks
        if t.hold:
            script.append(TaskStarted(task_id=t.task_id, stage=t.stage, extractor=t.extractor,
                                      account=t.account, attempt=1, pid=4242))
            script.append(TaskProgress(task_id=t.task_id, stage=t.stage, extractor=t.extractor,
                                       records=t.records // 2, total=t.total))
    if held:
        script.append(Hold())
    for t in tasks:
        if not t.hold:
            script.append(TaskStarted(task_id=t.task_id, stage=t.stage, extractor=t.extractor,
                                      account=t.account, attempt=1, pid=4243))
            for k in range(1, progress_steps + 1):
                script.append(TaskProgress(task_id=t.task_id, stage=t.stage, extractor=t.extractor,
                                           records=t.records * k // (progress_steps + 1), total=t.total))
                if step_s:
                    script.append(Pause(step_s))
        script.append(finished(t))
        if step_s:
            script.append(Pause(step_s))
    return script


def finished(t: TaskPlan, *, status: str | None = None, duration_s: float = 0.5) -> TaskFinished:
    """The TaskFinished event of a scripted task."""
    st = status or t.status
    return TaskFinished(task_id=t.task_id, stage=t.stage, extractor=t.extractor,
                        account=t.account, status=st, records=t.records if st == "success" else 0,
                        duration_s=duration_s, error_code=t.error_code if st != "success" else None)


class FakeEngine:
    """EngineFace for tests: records calls, replays scripts, floods on demand."""

    def __init__(self, loaded: LoadedConfig | None = None, *, script: ScriptFactory | None = None,
                 hold: bool = False, step_s: float = 0.0) -> None:
        self.loaded = loaded
        self.calls: list[Call] = []
        self.start_error: LorchError | None = None
        self.script_factory = script
        self.hold = hold
        self.step_s = step_s
        self._pending: list[Event] = []
        self._running: set[str] = set()
        self._cancelled: set[str] = set()
        self._release = asyncio.Event()
        self._abort = False
        self._task: asyncio.Task[None] | None = None
        self._statuses: dict[str, str] = {}
        self._codes: dict[str, str | None] = {}
        self._finals: dict[str, TaskFinished] = {}
        self._stages: list[str] = []
        self.run_error_code: str | None = None
        """A run-level code for the next RunFinished (a writer outside the tasks failed)."""
        self._run_id: str | None = None
        self._runs = 0
        self.emitted = 0
        self.drained = 0
        self.flood_sent = 0
        self.flood_task: asyncio.Task[None] | None = None

    # -- the EngineFace surface -------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def running_tasks(self) -> list[str]:
        return sorted(self._running)

    def drain(self) -> list[Event]:
        batch, self._pending = self._pending, []
        self.drained += len(batch)
        return batch

    def notes(self) -> list[str]:
        return []

    @property
    def alarm_running(self) -> bool:
        return False

    async def start(self, stages: list[str] | None, accounts: list[str] | None, *, force: bool = False) -> None:
        self.calls.append(Call("start", stages, accounts, force))
        if self.start_error is not None:
            raise self.start_error
        if self.busy:
            raise LorchError("a run is already in progress; wait for it or cancel it (x)")
        want_stages = list(stages) if stages else ["extract", "canonize"]
        want_accounts = list(accounts) if accounts else self.extractor_names()
        factory = self.script_factory or FakeEngine.default_script
        script = factory(self, want_stages, want_accounts)
        self._release = asyncio.Event()
        self._abort = False
        self._cancelled.clear()
        self._statuses.clear()
        self._codes.clear()
        self._finals.clear()
        self._task = asyncio.get_running_loop().create_task(self._replay(script))

    async def cancel(self, task_id: str) -> bool:
        self.calls.append(Call("cancel", task_id=task_id))
        if task_id not in self._running:
            return False
        self._cancel_one(task_id)
        if not self._running:
            self._release.set()  # nothing left to hold for
        return True

    async def cancel_all(self) -> None:
        self.calls.append(Call("cancel_all"))
        self._abort = True
        for task_id in sorted(self._running):
            self._cancel_one(task_id)
        self._release.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def reconfigure(self, loaded: LoadedConfig) -> None:
        self.calls.append(Call("reconfigure", loaded=loaded))
        self.loaded = loaded

    # -- for tests ------------------------------------------------------------------------------
    def starts(self) -> list[Call]:
        """The recorded start calls, oldest first."""
        return [c for c in self.calls if c.name == "start"]

    def called(self, name: str) -> list[Call]:
        """The recorded calls of one kind."""
        return [c for c in self.calls if c.name == name]

    def release(self) -> None:
        """Let a script waiting at a Hold go on."""
        self._release.set()

    def emit(self, *events: Event) -> None:
        """Append events as if the engine had received them (always to the current list)."""
        for ev in events:
            if isinstance(ev, TaskStarted):
                self._running.add(ev.task_id)
            elif isinstance(ev, TaskFinished):
                self._running.discard(ev.task_id)
                self._statuses[ev.task_id] = ev.status
                self._codes[ev.task_id] = ev.error_code
                self._finals[ev.task_id] = ev
            elif isinstance(ev, RunStarted):
                self._stages = list(ev.stages)
            self._pending.append(ev)
            self.emitted += 1

    def extractor_names(self) -> list[str]:
        """Extractor names of the config the fake was given."""
        return [e.name for e in self.loaded.config.extractors] if self.loaded else []

    def account_of(self, extractor: str) -> str:
        """The account of an extractor (its name when the fake has no config)."""
        if self.loaded is not None:
            for e in self.loaded.config.extractors:
                if e.name == extractor:
                    return e.account
        return extractor

    def new_run_id(self) -> str:
        """A fresh run id for a script (``run_id`` is then the latest one)."""
        self._runs += 1
        return self.run_id

    @property
    def run_id(self) -> str | None:
        """The run id of the latest script or flood, if any."""
        return f"20260101T000000Z-fake{self._runs:02d}" if self._runs else None

    def default_script(self, stages: list[str], accounts: list[str]) -> Script:
        """Every asked stage for every asked account, succeeding; with ``hold``, each
        account's first stage starts and stays running until :meth:`release`."""
        ordered = [s for s in STAGE_ORDER if s in stages]
        tasks = [TaskPlan(s, a, self.account_of(a), hold=self.hold and s == ordered[0])
                 for a in accounts for s in ordered]
        return task_script(self.new_run_id(), tasks, step_s=self.step_s)

    def flood(self, rate: float, seconds: float, extractors: Sequence[str], *,
              tick_s: float = 0.005) -> asyncio.Task[None]:
        """Pour ``rate`` events per second in for ``seconds`` (or until :meth:`stop_flood`):
        TaskProgress of running tasks.

        The tasks are started first (TaskQueued/TaskStarted, counted too); then each tick
        adds however many events keep the rate; records count up, so the last event of a task
        carries its highest count. ``flood_sent`` counts every event emitted.
        """

        async def pour() -> None:
            run_id = self.new_run_id()
            names = list(extractors)
            head: list[Event] = [RunStarted(run_id=run_id, trigger="dashboard", pipeline="flood",
                                            stages=["extract"], tasks=len(names))]
            for name in names:
                tid = f"extract:{name}"
                head.append(TaskQueued(task_id=tid, stage="extract", extractor=name, account=self.account_of(name)))
                head.append(TaskStarted(task_id=tid, stage="extract", extractor=name,
                                        account=self.account_of(name), attempt=1, pid=1))
            self.emit(*head)
            self.flood_sent += len(head)
            counts = dict.fromkeys(names, 0)
            target_total = int(rate * seconds)
            sent = 0
            t0 = time.perf_counter()
            while sent < target_total and not self._stop_flood:
                await asyncio.sleep(tick_s)
                due = min(target_total, int((time.perf_counter() - t0) * rate))
                batch: list[Event] = []
                for k in range(sent, due):
                    name = names[k % len(names)]
                    counts[name] += 1
                    batch.append(TaskProgress(task_id=f"extract:{name}", stage="extract", extractor=name,
                                              records=counts[name], total=target_total // len(names) + 1))
                self.emit(*batch)
                self.flood_sent += len(batch)
                sent = due
            self.flood_counts = counts

        self.flood_counts: dict[str, int] = {}
        self._stop_flood = False
        self.flood_task = asyncio.get_running_loop().create_task(pour())
        return self.flood_task

    async def stop_flood(self) -> None:
        """End the flood now (after the events of the current tick) and wait for it."""
        self._stop_flood = True
        if self.flood_task is not None:
            await self.flood_task

    # -- the replay --------------------------------------------------------------------------
    async def _replay(self, script: Script) -> None:
        started = time.monotonic()
        self._run_id = None
        try:
            for item in script:
                if self._abort:
                    break
                if isinstance(item, Pause):
                    await asyncio.sleep(item.seconds)
                elif isinstance(item, Hold):
                    await self._release.wait()
                elif getattr(item, "task_id", None) in self._cancelled:
                    continue  # a cancelled task says nothing more
                else:
                    if isinstance(item, RunStarted):
                        self._run_id = item.run_id
                    self.emit(item)
                    await asyncio.sleep(0)
        finally:
            self._finish_run(time.monotonic() - started)

    def _cancel_one(self, task_id: str) -> None:
        self._cancelled.add(task_id)
        stage, _, extractor = task_id.partition(":")
        self.emit(TaskFinished(task_id=task_id, stage=stage, extractor=extractor,
                               account=self.account_of(extractor), status="cancelled",
                               error_code="CANCELLED"))

    def _finish_run(self, duration: float) -> None:
        if self._run_id is None:
            return
        st = list(self._statuses.values())
        failed = sum(s in ("failed", "timeout") for s in st)
        cancelled = sum(s == "cancelled" for s in st)
        status = "failed" if failed or self.run_error_code else "cancelled" if cancelled else "success"
        # like the real engine: a task that ran out of space makes DISK_FULL the run's code
        code = self.run_error_code or ("DISK_FULL" if "DISK_FULL" in self._codes.values() else None)
        counted = counted_stage(self._stages)
        records = sum(f.records for f in self._finals.values() if f.stage == counted)
        self.emit(RunFinished(run_id=self._run_id, status=status, tasks=len(st),
                              succeeded=sum(s in ("success", "skipped") for s in st), failed=failed,
                              cancelled=cancelled, records=records, duration_s=duration, error_code=code))

