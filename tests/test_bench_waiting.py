"""The dashboard benchmarks cannot hang silently: every wait has a deadline, and a watchdog
dumps the stacks and ends a process that is stuck anyway."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from bench.waiting import Stuck, until
from tests.helpers import REPO, clean_env


def test_until_returns_when_the_condition_holds() -> None:
    flag: list[int] = []

    async def go() -> float:
        asyncio.get_running_loop().call_later(0.05, flag.append, 1)
        return await until(lambda: flag, 5, "the flag")

    t0 = time.perf_counter()
    when = asyncio.run(go())
    assert flag and when >= t0 + 0.04


def test_until_raises_stuck_naming_what_it_waited_for() -> None:
    with pytest.raises(Stuck, match="the key's handler"):
        asyncio.run(until(lambda: False, 0.2, "the key's handler"))


def test_watchdog_dumps_stacks_and_ends_a_stuck_process() -> None:
    code = "from bench.waiting import watchdog; import time; watchdog(1); time.sleep(60)"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 1
    assert "Timeout" in res.stderr and "File \"<string>\", line 1" in res.stderr  # the stuck frame
    assert time.monotonic() - t0 < 20
