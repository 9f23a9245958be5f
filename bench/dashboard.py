"""Benchmark of the dashboard under a flood of events, beside the naive way of doing the same.

    python -m bench.dashboard [--rate 10000] [--seconds 6] [--naive-seconds 3] [--check]
                              [--flood-on-workspace]
                              [--docs 20000 --dir DIR --repeat 3] [--timeout 1800]

It runs the real :class:`lorch_tui.app.LorchApp` headless (``run_test``, 120x35) on a
populated workspace in a private temporary folder, with the tests' fake engine pouring
``--rate`` TaskProgress events per second into it, and meanwhile presses ``e`` (extract the
selected account; the fake engine records the call) every 50 ms. It reports:

* key-press-to-handler latency p50/p95/max: from the moment the key event is put in the
  app's queue (as ``pilot.press`` does) to the moment the app's ``action_run_stage`` starts
  (a subclass timestamps it); the goal of the dashboard issue is p95 <= 50 ms while 10k
  events/s flow;
* key-press-to-screen latency p50/p95/max: to the first screen refresh after the handler
  (``call_after_refresh``), i.e. when the key's answer ("starting ...") is painted; a second
  goal line, the same 50 ms budget;
* time to first paint: from ``run_test`` to the first screen refresh after mount;
* the flush timer's cost per tick (p50/p95) and the events applied per second.

Then it runs a naive variant in the same process: the same app whose flush updates the
progress pane once per event instead of once per batch (what NOTES.md warns against), and
prints the ratio of the two p95 latencies. The goal is printed as a ``ratio ...`` line (p95
over the 50 ms budget, goal <= 1x) like every benchmark's (bench/common.py). Figures depend
on the machine and its load: the load average and this process's share of a core are
printed so a starved run can be told apart from a slow dashboard.

``--flood-on-workspace`` floods the dashboard opened on the cached ``--docs`` workspace of
:mod:`bench.workspace` instead (its extractors are the flood's tasks; the app scans it and
watches it as ``lorch-tui`` does), without the naive app: the issue's "on a workspace of
1,000,000 documents" with ``--docs 1000000``.

Last, unless ``--docs 0``, :mod:`bench.dashboard_start` times the first paint and a run's
start on a cached large workspace (``--docs`` documents; see there). Every wait has a
deadline (:mod:`bench.waiting`) and a watchdog ends the process after ``--timeout`` seconds
with every thread's stack, so the benchmark can fail but never hang silently.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from textual import events
from textual.widgets import Static

from bench import dashboard_start
from bench.common import goal, header
from bench.waiting import Stuck, until, watchdog
from engine.config.load import LoadedConfig
from engine.store.logsink import log_path
from lorch_tui.app import LorchApp
from lorch_tui.widgets.logtail import LogTail
from lorch_tui.widgets.progress import ProgressPane, totals_text
from tests.snapshots import scene
from tests.tui.fake_engine import FakeEngine

GOAL_P95_S = 0.050
GAP_S = 0.05  # between key presses: a fast typist
SIZE = (120, 35)
KEY_TIMEOUT_S = 30.0  # a key not handled within this is a bug, not a slow machine


class TimedApp(LorchApp):
    """The dashboard, timestamping the stage action, the first paint and each flush."""

    def __init__(self, loaded: LoadedConfig, engine: FakeEngine, *, watch: bool = False) -> None:
        super().__init__(loaded, engine, watch=watch)
        self.fake = engine
        self.handled: list[float] = []
        self.shown: list[float] = []
        self.first_paint: float | None = None
        self.flush_s: list[float] = []
        self.applied = 0

    def on_mount(self) -> None:
        super().on_mount()
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        if self.first_paint is None:
            self.first_paint = time.perf_counter()

    def action_run_stage(self, stage: str) -> None:
        self.handled.append(time.perf_counter())
        super().action_run_stage(stage)
        self.call_after_refresh(lambda: self.shown.append(time.perf_counter()))

    def flush(self) -> None:
        t0 = time.perf_counter()
        before = self.fake.drained
        super().flush()
        self.applied += self.fake.drained - before
        self.flush_s.append(time.perf_counter() - t0)


class NaiveApp(TimedApp):
    """The same dashboard, but the progress pane is updated once per event (every cell, and the
    totals line with a layout pass, as the dashboard did before issue 18)."""

    def flush(self) -> None:
        t0 = time.perf_counter()
        if not self.query(LogTail):  # shutting down
            return
        batch = self.engine.drain()
        self.applied += len(batch)
        log = self.query_one(LogTail)
        log.follow(log_path(self.ws.logs))
        log.poll()
        pane = self.query_one(ProgressPane)
        for ev in batch:
            self.model.apply([ev])
            pane._show_rows(self.model)  # every cell, no 4 Hz limit for counters
            pane.query_one("#progress-totals", Static).update(totals_text(self.model))
        self.flush_s.append(time.perf_counter() - t0)


def press(app: LorchApp, key: str, char: str) -> None:
    """Deliver a key press the way Pilot.press does (a Key event into the app's queue), minus
    Pilot's wait-for-idle afterwards, which under a flood waits up to a second per key."""
    event = events.Key(key, char)
    event.set_sender(app)
    app.post_message(event)


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(cls: type[TimedApp], loaded: LoadedConfig, rate: int, seconds: float,
                  max_samples: int, *, watch: bool = False) -> dict[str, Any]:
    """Run one app under the flood; return its figures (every wait has a deadline).

    The flood's tasks are the config's extractors; ``watch`` also watches the workspace as
    ``lorch-tui`` does (the large-workspace run)."""
    names = [ex.name for ex in loaded.config.extractors]
    fake = FakeEngine(loaded, script=lambda eng, stages, accounts: [])  # e starts nothing visible
    app = cls(loaded, fake, watch=watch)
    t_start = time.perf_counter()
    latencies: list[float] = []
    shown: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: app.first_paint is not None and alive(app)
                    and app.query_one("#latest-table").row_count >= len(names), 120,
                    "the first paint and the LATEST table")
        assert app.first_paint is not None
        paint = app.first_paint - t_start
        await pilot.pause(0.3)  # the log replay settles
        applied0, t0, cpu0 = app.applied, time.perf_counter(), time.process_time()
        flood = fake.flood(rate, seconds, names)
        await pilot.pause(0.2)
        while not flood.done() and len(latencies) < max_samples:
            n = len(app.handled)
            pressed = time.perf_counter()
            press(app, "e", "e")
            await until(lambda n=n: len(app.handled) > n or not alive(app), KEY_TIMEOUT_S, "the key's handler")
            if not alive(app):
                raise Stuck("the app stopped while keys were being pressed (see its error above)")
            latencies.append(app.handled[n] - pressed)
            await until(lambda n=n: len(app.shown) > n or not alive(app), KEY_TIMEOUT_S, "the key's answer on screen")
            if alive(app):
                shown.append(app.shown[n] - pressed)
            await asyncio.sleep(GAP_S)
        await until(lambda: flood.done() and fake.drained >= fake.flood_sent, seconds * 10 + 60,
                    "the flood to be applied")
        took = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        applied = app.applied - applied0
        flush = app.flush_s[-max(1, int(took * 15)):]
    return {"paint": paint, "latencies": latencies, "shown": shown, "applied": applied, "took": took,
            "sent": fake.flood_sent, "flush": flush, "cpu": cpu}


def alive(app: LorchApp) -> bool:
    """True while the app runs (an exception in a handler stops it; waiting on would hang)."""
    return app.is_running and app._exception is None


def report(name: str, r: dict[str, Any]) -> None:
    lat = r["latencies"]
    print(f"{name}:", flush=True)
    print(f"  time to first paint     {r['paint'] * 1000:8.1f} ms")
    if lat:
        print(f"  key -> handler (n={len(lat):3d})  p50 {pct(lat, .5) * 1000:7.1f} ms   "
              f"p95 {pct(lat, .95) * 1000:7.1f} ms   max {max(lat) * 1000:7.1f} ms")
    if r["shown"]:
        sh = r["shown"]
        print(f"  key -> on screen (n={len(sh):3d}) p50 {pct(sh, .5) * 1000:7.1f} ms   "
              f"p95 {pct(sh, .95) * 1000:7.1f} ms   max {max(sh) * 1000:7.1f} ms")
    print(f"  events applied          {r['applied']:8,d} of {r['sent']:,d} in {r['took']:.1f} s "
          f"({r['applied'] / r['took']:,.0f}/s)")
    print(f"  CPU of this process     {r['cpu'] / r['took']:8.0%} of one core while it ran")
    if r["flush"]:
        print(f"  flush per tick          p50 {pct(r['flush'], .5) * 1000:7.2f} ms   "
              f"p95 {pct(r['flush'], .95) * 1000:7.2f} ms")


def flood_on_workspace(ns: argparse.Namespace) -> tuple[dict[str, Any], None]:
    """The flood with the dashboard opened on the cached ``--docs`` workspace (scanned and
    watched as ``lorch-tui`` does; the events still come from the fake engine)."""
    from bench.workspace import cached, count_files
    from engine.config.load import load

    cfg = cached(ns.docs, ns.accounts, ns.dir, False)
    loaded = load(cfg, None)
    header(f"dashboard under {ns.rate:,d} events/s on a workspace of {ns.docs:,} documents "
           f"({count_files(loaded.workspace):,} files and folders; {SIZE[0]}x{SIZE[1]}, headless)")
    ours = asyncio.run(measure(TimedApp, loaded, ns.rate, ns.seconds, ns.samples, watch=True))
    report(f"lorchestra (batched flush at 15 Hz), {ns.docs:,}-document workspace", ours)
    return ours, None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=10_000, help="events per second (default 10000)")
    p.add_argument("--seconds", type=float, default=6.0, help="flood length for the dashboard (default 6)")
    p.add_argument("--naive-seconds", type=float, default=3.0, help="flood length for the naive app (default 3)")
    p.add_argument("--samples", type=int, default=200, help="at most this many key presses per app")
    p.add_argument("--docs", type=int, default=20_000,
                   help="then time the start on a cached workspace of this many documents (0: skip)")
    p.add_argument("--dir", type=Path, help="cache folder of that workspace (default ~/.cache/lorchestra/bench-workspace)")
    p.add_argument("--accounts", type=int, default=3, help="tiny demo accounts in that workspace, run for real")
    p.add_argument("--repeat", type=int, default=3, help="dashboard starts on that workspace (medians)")
    p.add_argument("--timeout", type=float, default=1800,
                   help="dump every thread's stack and exit 1 after this many seconds (0: never)")
    p.add_argument("--flood-on-workspace", action="store_true",
                   help="flood the dashboard opened on the cached --docs workspace (watched, as lorch-tui does) "
                        "instead of a small populated one; the naive app is skipped")
    p.add_argument("--no-start", action="store_true", help="skip the start on the workspace (the flood only)")
    p.add_argument("--check", action="store_true", help="exit 1 when the p95 goal is missed")
    ns = p.parse_args(argv)
    watchdog(ns.timeout)
    naive: dict[str, Any] | None
    try:
        if ns.flood_on_workspace:
            ours, naive = flood_on_workspace(ns)
        else:
            with tempfile.TemporaryDirectory(prefix="lorch-bench-") as tmp:
                loaded = scene.populate(Path(tmp) / "scene")
                header(f"dashboard under {ns.rate:,d} events/s ({SIZE[0]}x{SIZE[1]}, headless)")
                ours = asyncio.run(measure(TimedApp, loaded, ns.rate, ns.seconds, ns.samples))
                report("lorchestra (batched flush at 15 Hz)", ours)
                naive = asyncio.run(measure(NaiveApp, loaded, ns.rate, ns.naive_seconds,
                                            max(5, ns.samples // 10)))
                report("naive (one widget update per event)", naive)
    except Stuck as exc:
        print(f"STUCK: {exc}", flush=True)
        return 1
    p95 = pct(ours["latencies"], .95) if ours["latencies"] else float("inf")
    if naive is not None:
        naive_p95 = pct(naive["latencies"], .95) if naive["latencies"] else float("inf")
        print(f"naive / lorchestra key latency p95: {naive_p95 / p95:.1f}x "
              f"({naive_p95 * 1000:.0f} ms vs {p95 * 1000:.1f} ms)", flush=True)
    met = goal(f"dashboard key-to-handler p95 / {GOAL_P95_S * 1000:.0f} ms at {ns.rate:,d} events/s",
               p95 / GOAL_P95_S, 1.0, higher_is_better=False)
    shown = ours["shown"]
    goal(f"dashboard key-to-screen p95 / {GOAL_P95_S * 1000:.0f} ms at {ns.rate:,d} events/s",
         (pct(shown, .95) if shown else float("inf")) / GOAL_P95_S, 1.0, higher_is_better=False)
    rc = 1 if ns.check and not met else 0
    if ns.docs > 0 and not ns.no_start:
        start = dashboard_start.main(["--docs", str(ns.docs), "--accounts", str(ns.accounts),
                                      "--repeat", str(ns.repeat), "--timeout", "0",
                                      *(["--dir", str(ns.dir)] if ns.dir else [])])
        rc = rc or start
    return rc


if __name__ == "__main__":
    sys.exit(main())
