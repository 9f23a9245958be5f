"""Stage slots go to the heaviest waiting task first (engine/run/slots.py).

The slot object is plain asyncio, so it is driven directly here; the order it gives is then
checked end to end: a real `lorchestra run --stage index` with one index worker starts the
index tasks by the size of their canonical files, not in the config's order.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml

from engine.config.load import load_file
from engine.run.slots import WeightedSlots, input_weight
from engine.store.workspace import Workspace
from tests.helpers import REPO, demo_extractor, run_cli, write_config

MAPPINGS = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["stages"]["canonize"]["mappings"]


async def _order(slots: WeightedSlots, weights: list[float]) -> list[int]:
    """Start one task per weight in the same turn of the loop; return the order they got a slot."""
    got: list[int] = []

    async def task(i: int, w: float) -> None:
        async with slots.take(w):
            got.append(i)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(task(i, w) for i, w in enumerate(weights)))
    return got


def test_heaviest_waiter_first_and_ties_keep_arrival_order() -> None:
    got = asyncio.run(_order(WeightedSlots(1), [1, 5, 3, 5, 0, 3]))
    assert got == [1, 3, 2, 5, 0, 4]


def test_all_equal_weights_behave_like_a_semaphore() -> None:
    assert asyncio.run(_order(WeightedSlots(2), [0.0] * 7)) == list(range(7))


def test_never_more_holders_than_slots() -> None:
    async def main() -> int:
        slots, inside, most = WeightedSlots(3), 0, 0

        async def task(w: float) -> None:
            nonlocal inside, most
            async with slots.take(w):
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.002)
                inside -= 1

        await asyncio.gather(*(task(w % 5) for w in range(20)))
        assert slots.free == 3 and slots.waiting == 0
        return most

    assert asyncio.run(main()) == 3


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    async def main() -> list[str]:
        slots, got = WeightedSlots(1), []
        release = asyncio.Event()

        async def holder() -> None:
            async with slots.take(0):
                got.append("holder")
                await release.wait()

        async def waiter(name: str, w: float) -> None:
            async with slots.take(w):
                got.append(name)

        h = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        heavy = asyncio.create_task(waiter("heavy", 10))
        light = asyncio.create_task(waiter("light", 1))
        await asyncio.sleep(0.01)
        assert slots.waiting == 2
        heavy.cancel()
        await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(h, light)
        assert heavy.cancelled() and slots.free == 1
        return got

    assert asyncio.run(main()) == ["holder", "light"]


def test_cancelled_after_being_handed_a_slot_releases_it() -> None:
    async def main() -> int:
        slots = WeightedSlots(1)
        first = asyncio.create_task(_hold(slots, 0.02))
        await asyncio.sleep(0.005)
        second = asyncio.create_task(_hold(slots, 0.0))
        await asyncio.sleep(0.03)  # first ended: second was handed the slot ...
        second.cancel()  # ... and is cancelled before it resumed, or while holding it
        await asyncio.gather(first, second, return_exceptions=True)
        return slots.free

    assert asyncio.run(main()) == 1


async def _hold(slots: WeightedSlots, seconds: float) -> None:
    async with slots.take(0):
        await asyncio.sleep(seconds)


def _config(tmp: Path) -> Path:
    exs = [demo_extractor("small", "sheets", records=10), demo_extractor("big", "gmail", records=120),
           demo_extractor("middle", "quickbooks", records=40)]
    return write_config(tmp, exs, stages={"canonize": {"mappings": MAPPINGS}, "index": {"workers": 1}})


def test_index_tasks_start_biggest_canonical_file_first(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    for stage in ("extract", "canonize"):
        res = run_cli("run", "--stage", stage, "--config", str(cfg))
        assert res.returncode == 0, res.stderr
    ws = Workspace(tmp_path / "ws")
    sizes = {name: (ws.canonical / src / f"{name}.jsonl").stat().st_size
             for name, src in (("small", "sheets"), ("big", "gmail"), ("middle", "quickbooks"))}
    assert sizes["big"] > sizes["middle"] > sizes["small"]

    res = run_cli("run", "--stage", "index", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    started = [e["extractor"] for e in map(json.loads, res.stdout.splitlines())
               if e.get("type") == "task_started" and e.get("stage") == "index"]
    assert started == ["big", "middle", "small"]  # the config says small, big, middle


def test_input_weight_reads_what_each_stage_will_read(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    cfg = load_file(cfg_path)
    ws = Workspace(tmp_path / "ws")
    ex = {e.name: e for e in cfg.extractors}
    assert [input_weight(ws, ex[n], s) for n in ex for s in ("extract", "canonize", "index")] == [0.0] * 9

    assert run_cli("run", "--stage", "extract", "--config", str(cfg_path)).returncode == 0
    big = ex["big"]
    acct = ws.account_dir(big.domain, big.source, big.account)
    latest = json.loads((acct / "LATEST.json").read_text())
    parts = sorted((acct / f"dt={latest['dt']}" / f"run_id={latest['run_id']}").glob("part-*"))
    assert parts and input_weight(ws, big, "canonize") == sum(p.stat().st_size for p in parts)
    assert input_weight(ws, big, "extract") == latest["records"] == 120
    assert input_weight(ws, big, "index") == 0.0  # not canonized yet

    (acct / "LATEST.json").write_text("{not json")  # a damaged pointer only loses the hint
    assert input_weight(ws, big, "canonize") == 0.0
