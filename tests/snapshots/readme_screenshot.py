"""Write the README's screenshot: the real dashboard, mid-run, exported as SVG.

    python -m tests.snapshots.readme_screenshot [docs/dashboard.svg]

Same scene as the "running" snapshot test (tests/snapshots/scene.py): a populated workspace
at a fixed path, last night's cron run in the log, and a dashboard run caught in the middle
(injected into the tests' fake engine), with the clocks frozen.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from textual.widgets import DataTable, Header

from lorch_tui import model
from lorch_tui.app import LorchApp
from tests.snapshots import scene
from tests.tui.dash import cell
from tests.tui.fake_engine import FakeEngine

OUT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.svg"


async def shoot(out: Path) -> None:
    clock = scene.FrozenClock()
    real_time = model.time
    model.time = clock.module()  # type: ignore[assignment]
    try:
        with scene.exclusive():
            loaded = scene.populate()
            fake = FakeEngine(loaded)
            app = LorchApp(loaded, fake, watch=False)
            async with app.run_test(size=(120, 35)) as pilot:
                app.query_one(Header).time_format = "10:15:00"
                deadline = time.monotonic() + 30
                table = app.query_one("#latest-table", DataTable)
                while table.row_count < len(scene.NAMES) or app.model.run_id != scene.CRON_RUN:
                    assert time.monotonic() < deadline, "the dashboard did not load the scene"
                    await pilot.pause(0.02)
                fake.emit(*scene.mid_run_events())
                progress = app.query_one("#progress-table", DataTable)
                while progress.row_count < 6:
                    assert time.monotonic() < deadline, "the mid-run events did not show"
                    await pilot.pause(0.02)
                clock.now += 12.5
                while cell(progress, "extract:tap-gmail--acct1-personal", "elapsed") != " 12.5s":
                    assert time.monotonic() < deadline, "the progress pane did not refresh"
                    await pilot.pause(0.02)
                await pilot.pause()
                svg = app.export_screenshot(title="lorch-tui")
    finally:
        model.time = real_time  # type: ignore[assignment]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg)
    print(f"wrote {out} ({len(svg):,} bytes)")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    asyncio.run(shoot(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
