"""Stage slots that go to the heaviest waiting task first.

Why not a plain ``asyncio.Semaphore``: it wakes waiters first come, first served, so the
order of the config decides the order of the work. When the biggest accounts come last (the
demo's questionnaire accounts do: the costliest records, listed last), the run ends with one
or two long tasks while the other core has nothing left to do. Handing a freed slot to the
waiting task with the most input (longest processing time first, the classic rule for
filling identical machines) leaves the short tasks for the end, where they fill the gaps.
Ties keep the arrival order, so equal or unknown weights behave exactly like a semaphore.

:func:`input_weight` is how heavy a task looks before it starts, from what is already on
disk: the bytes of the LATEST run's parts for canonize, the canonical file's bytes for
index, the previous LATEST's record count for extract (0 on a first run: config order).
It reads a few ``stat`` results and one small JSON file; it never reads records.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

from engine.config import Extractor
from engine.events import Stage
from engine.store.workspace import Workspace


class WeightedSlots:
    """A counting semaphore whose freed slots go to the heaviest waiter (ties: first come)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._free = slots
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._dispatch_soon = False

    @property
    def free(self) -> int:
        """Slots nobody holds (0 while every slot is taken)."""
        return self._free

    @property
    def waiting(self) -> int:
        """Tasks waiting for a slot."""
        return sum(1 for _, _, fut in self._waiting if not fut.done())

    @contextlib.asynccontextmanager
    async def take(self, weight: float = 0.0) -> AsyncIterator[None]:
        """Hold one slot for the ``async with`` block; wait behind heavier waiters."""
        await self._acquire(weight)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, weight: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiting, (-weight, next(self._order), fut))
        if not self._dispatch_soon:  # tasks started in the same turn of the loop all queue first
            self._dispatch_soon = True
            loop.call_soon(self._dispatch)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot just as it was cancelled
                self._release()
            raise

    def _release(self) -> None:
        self._free += 1
        self._dispatch()

    def _dispatch(self) -> None:
        self._dispatch_soon = False
        while self._free > 0 and self._waiting:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():  # a waiter that was cancelled gives its turn away
                self._free -= 1
                fut.set_result(None)


def input_weight(ws: Workspace, ex: Extractor, stage: Stage) -> float:
    """How much input the task of ``stage`` for ``ex`` has, as far as the disk tells now
    (0 when it cannot tell: the task then keeps its place in the config's order)."""
    try:
        if stage == "index":
            return float((ws.canonical / ex.source / f"{ex.account}.jsonl").stat().st_size)
        if stage in ("canonize", "extract"):
            return _latest_weight(ws.account_dir(ex.domain, ex.source, ex.account), stage)
    except (OSError, ValueError, TypeError, KeyError, AssertionError):  # advisory only
        pass
    return 0.0


def _latest_weight(account_dir: Path, stage: Stage) -> float:
    from engine.vault.layout import read_latest

    latest = read_latest(account_dir)
    if latest is None:
        return 0.0
    if stage == "extract":  # the last run's size predicts this one's
        return float(int(latest.get("records") or 0))
    run = account_dir / f"dt={latest['dt']}" / f"run_id={latest['run_id']}"
    return float(sum(p.stat().st_size for p in run.glob("part-*")))


__all__ = ["WeightedSlots", "input_weight"]
