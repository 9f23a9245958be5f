"""The dashboard freezes what is alive after its first full screen out of the garbage
collector's full passes (they scanned about 130,000 start-up objects on the event loop, 20-160
ms each) and releases it when the app ends, so many apps in one process (tests) leak nothing."""

from __future__ import annotations

import gc

from lorch_tui.app import LorchApp
from tests.tui.conftest import Setup
from tests.tui.dash import until
from tests.tui.fake_engine import FakeEngine


async def test_start_up_objects_are_frozen_after_the_first_screen_and_released_at_the_end(
        populated: Setup) -> None:
    loaded = populated.load()
    gc.unfreeze()
    app = LorchApp(loaded, FakeEngine(loaded), watch=False)
    async with app.run_test(size=(120, 35)) as pilot:
        await until(pilot, lambda: app.snapshot is not None, what="the first scan")
        await until(pilot, lambda: gc.get_freeze_count() > 10_000, what="the freeze after the first screen")
        frozen = gc.get_freeze_count()
        assert len(gc.get_objects()) < frozen  # the collector now scans only what came after
    assert gc.get_freeze_count() == 0
