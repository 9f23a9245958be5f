"""The dashboard and the client layer: `p` runs the project stage; counts, never names.

A real workspace (the bundled demo, 30 records per tap, built by the real CLI) and the
real engine inside the app under Pilot: pressing `p` runs the project task alone, the Stage
progress pane shows it, and the pane's title shows the client counts and the measures scored
and not scored. The screen must
never show a client's name.
"""

from __future__ import annotations

import os
import re
import time
from html import unescape
from pathlib import Path

import orjson

from engine.config.load import load
from engine.demo_taps.canary import CANARY_NAME
from lorch_tui.app import LorchApp
from lorch_tui.widgets.progress import ProgressPane
from tests.helpers import REPO, clean_env, run_cli
from tests.tui.test_dashboard import ready


def screen_text(svg: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def test_p_runs_the_project_stage_and_shows_counts_only(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    env = clean_env(LORCH_DEMO_RECORDS="30")
    res = run_cli("run", "--demo", "--workspace", str(ws), "--stage", "extract", "--stage", "canonize",
                  "--stage", "index", env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    os.environ["LORCH_DEMO_RECORDS"] = "30"
    umask = os.umask(0o077)
    try:
        app = LorchApp(load(str(REPO / "config" / "demo.yaml"), str(ws)), watch=False)
        async with app.run_test(size=(160, 50)) as pilot:
            # the first scan done and today's CLI run replayed from the log, so the run we
            # wait for below is the one `p` starts, not the replay
            await ready(pilot, rows=len(app.loaded.config.extractors))
            replayed = app.model.run_id
            await pilot.press("p")
            deadline = time.monotonic() + 120
            while (app.engine.busy or app.model.run_id == replayed
                   or app.model.status in ("idle", "running")) and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert app.model.status == "success", app.model.status
            assert list(app.model.tasks) == ["project:clients"]
            while "clients" not in str(app.query_one(ProgressPane).border_title) \
                    and time.monotonic() < deadline:
                await pilot.pause(0.1)
            title = str(app.query_one(ProgressPane).border_title)
            found = re.fullmatch(r"(?:CRITICAL UNLINKED ([\d,]+) · )?Stage progress · clients 12 · links [\d,]+ · "
                                 r"conflicts \d+ · unlinked [\d,]+ · measures scored ([\d,]+) · "
                                 r"not scored ([\d,]+)(?: · duplicates ([\d,]+))?", title)
            assert found, title
            measures = ws / "canonical" / "measures"
            critical = [m for m in map(orjson.loads, (measures / "scored.jsonl").read_bytes().splitlines())
                        if "client_id" not in m and any(f.endswith("_positive") for f in m.get("flags") or [])]
            assert int((found[1] or "0").replace(",", "")) == len(critical)  # a positive item 9 in no chart
            assert int(found[2].replace(",", "")) == len(
                (measures / "scored.jsonl").read_bytes().splitlines())
            assert int(found[3].replace(",", "")) == len(
                (measures / "scored.rejects.jsonl").read_bytes().splitlines())
            # the linked sheets' copies of the Forms API responses: their own figure
            assert int((found[4] or "0").replace(",", "")) == len(
                (measures / "scored.duplicates.jsonl").read_bytes().splitlines()) > 0
            screen = screen_text(app.export_screenshot())
            if found[1]:  # the alarm is at the title's start: never the part a narrow pane cuts
                assert f"CRITICAL UNLINKED {found[1]}" in screen
            assert "clients 12" in screen and "project" in screen
            assert CANARY_NAME not in screen and "Canarywhistle" not in screen
    finally:
        os.umask(umask)
        os.environ.pop("LORCH_DEMO_RECORDS", None)
    assert (ws / "clients").is_dir() and len(list((ws / "clients").iterdir())) == 12
