"""The dashboard's start and a run's start on a large workspace (issue 18).

    python -m bench.dashboard_start [--docs 20000] [--accounts 3] [--repeat 3] [--dir DIR]

On the cached workspace of ``bench/workspace.py`` (``--docs`` indexed documents, so as many
object files, plus ``--accounts`` tiny demo accounts run for real), it runs the real
:class:`lorch_tui.app.LorchApp` with the real engine (:class:`lorch_tui.engine_face.LiveEngine`,
watching the workspace as ``lorch-tui`` does) headless under Pilot, 120x35, and times:

* **first paint**: from the app's construction (the config already loaded, as ``lorch-tui``
  does before it) to the first screen refresh; goal <= 1 s. Also when the panes show the
  workspace (the first scan painted) and when the workspace check ended, without a goal.
* **key to run started**: ``e`` on the selected account (a real extract of a tiny demo
  account: a tap subprocess, the vault writer, the state database), from the key event being
  queued to the first refresh that shows the run (its ``RunStarted`` applied to the progress
  pane); goal <= 100 ms. Also key to handler and key to the "starting" line painted.

Then the same with the real ``lorch-tui`` process in tmux (when tmux is installed), whose
clock starts at the process start, so Python's start, the imports and the config load count:
process start to the first screen (goal <= 1 s) and to the accounts shown, and ``e`` to the
new run's id on screen (the screen is polled with ``capture-pane`` every few ms, which
those figures include).

Each figure is the median of ``--repeat`` fresh apps, one run each (to its end). The import of Textual and the config
load happen before either clock starts and are printed apart. The process's CPU time is
printed beside the wall clock, with the load average: on a shared machine the wall clock
includes waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import REPO, goal, header
from bench.waiting import Stuck, until, watchdog
from bench.workspace import cached, count_files, process_cpu

GOAL_PAINT_S = 1.0
GOAL_START_S = 0.100
SIZE = (120, 35)
RUN_IN_TOTALS = re.compile(r"\brun (\d{8}T\d{6}Z[-0-9a-z]*) ")
STEPS = ("handler", "starting", "applied", "run")  # what a key press leads to, in order


def press(app: Any, key: str) -> None:
    """Put a key event in the app's queue as ``pilot.press`` does, without its wait for idle."""
    from textual import events

    event = events.Key(key, key)
    event.set_sender(app)
    app.post_message(event)


async def one_start(cfg: Path, runs: int) -> dict[str, Any]:
    """Start the dashboard once on ``cfg``; press ``e`` ``runs`` times (each run to its end)."""
    from engine.config.load import load
    from lorch_tui.app import LorchApp

    class TimedApp(LorchApp):
        """The real dashboard, timestamping its first paint, its key handler and the run's start."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.marks: dict[str, float] = {}
            self.cpu_marks: dict[str, float] = {}

        def mark(self, name: str) -> None:
            if name not in self.marks:  # the wall clock, and the event loop's own CPU (this thread)
                self.marks[name] = time.perf_counter()
                self.cpu_marks[name] = time.thread_time()

        def on_mount(self) -> None:
            super().on_mount()
            self.call_after_refresh(self.mark, "paint")

        def _workspace_checked(self, problem: str | None) -> None:
            super()._workspace_checked(problem)
            self.mark("checked")

        def _show_snapshot(self, snap: Any) -> None:
            super()._show_snapshot(snap)
            self.call_after_refresh(self.mark, "content")

        def action_run_stage(self, stage: str) -> None:
            self.mark("handler")
            super().action_run_stage(stage)
            self.call_after_refresh(self.mark, "starting")

        def flush(self) -> None:
            had = self.model.run_id
            super().flush()
            if self.model.run_id is not None and self.model.run_id != had:
                self.mark("applied")
                self.call_after_refresh(self.mark, "run")

    t_load = time.perf_counter()
    loaded = load(cfg, None)
    load_s = time.perf_counter() - t_load
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    app = TimedApp(loaded)
    out: dict[str, Any] = {"load": load_s, "loop_cpu": [], **{name: [] for name in STEPS}}
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: "paint" in app.marks, 60, "the first paint")
        await until(lambda: "content" in app.marks and "checked" in app.marks, 120,
                    "the first scan and the workspace check")
        out["paint"] = app.marks["paint"] - t0
        out["content"] = app.marks["content"] - t0
        out["checked"] = app.marks["checked"] - t0
        out["start_cpu"] = time.process_time() - cpu0
        if app.workspace_problem:
            raise Stuck(f"the workspace check failed: {app.workspace_problem}")
        await pilot.pause(0.3)
        for _ in range(runs):
            for name in STEPS:
                app.marks.pop(name, None)
            app.model.run_id = None
            pressed = time.perf_counter()
            press(app, "e")
            await until(lambda: "run" in app.marks, 60, "the run to show in the progress pane")
            for name in STEPS:
                out[name].append(app.marks[name] - pressed)
            out["loop_cpu"].append(app.cpu_marks["run"] - app.cpu_marks["handler"])
            await until(lambda: not app.engine.busy, 120, "the run to end")
            await pilot.pause(0.3)  # the rescan after the run
    return out


class Terminal:
    """The real ``lorch-tui`` in a detached tmux session on a private server (``-L``)."""

    def __init__(self, cfg: Path) -> None:
        self.socket = f"lorch-bench-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("LORCH_")}, "TERM": "xterm-256color"}
        tui = f"{shlex.quote(sys.executable)} -m lorch_tui.tui_main --config {shlex.quote(str(cfg))}"
        self.started = time.perf_counter()
        self.tmux("new-session", "-d", "-s", "bench", "-x", str(SIZE[0]), "-y", str(SIZE[1]),
                  f"cd {shlex.quote(str(REPO))} && {tui}; echo LORCH-EXIT=$?; sleep 60")

    def tmux(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                             timeout=30)
        return res.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def wait(self, cond: Callable[[str], object], timeout: float, what: str) -> tuple[float, str]:
        """Poll the screen (every few ms) until ``cond``; when it held, and the screen."""
        deadline = time.perf_counter() + timeout
        while True:
            text = self.screen()
            if cond(text):
                return time.perf_counter(), text
            if "LORCH-EXIT=" in text or time.perf_counter() > deadline:
                raise Stuck(f"waited for {what} in the real terminal; the screen was:\n{text}")
            time.sleep(0.005)

    def app_cpu(self) -> float | None:
        """CPU seconds the ``lorch-tui`` process in the pane used so far (Linux ``/proc``; else None)."""
        shell = self.tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip()
        try:
            children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        except OSError:
            return None
        for pid in children:
            try:
                if b"lorch_tui.tui_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return process_cpu(int(pid))
            except OSError:
                continue
        return None

    def close(self) -> None:
        self.tmux("kill-server")
        folder = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        (folder / self.socket).unlink(missing_ok=True)


def terminal_times(cfg: Path, accounts: list[str]) -> dict[str, float]:
    """Process start to first screen and to the accounts shown, and ``e`` to the new run on
    screen, with the real ``lorch-tui`` in tmux (times include the polling, a few ms); and the
    CPU the process had used when its first screen was seen (``paint_cpu``, Linux only)."""
    term = Terminal(cfg)
    try:
        painted, _ = term.wait(lambda t: "lorchestra" in t, 60, "the first screen")
        paint_cpu = term.app_cpu()
        shown, _ = term.wait(lambda t: all(a in t for a in accounts), 60, "the accounts in LATEST")
        time.sleep(1.0)  # the workspace check, the log's replay
        before = set(RUN_IN_TOTALS.findall(term.screen()))
        pressed = time.perf_counter()
        term.tmux("send-keys", "-t", "bench", "e")
        started, text = term.wait(lambda t: set(RUN_IN_TOTALS.findall(t)) - before, 60, "the new run")
        new = next(iter(set(RUN_IN_TOTALS.findall(text)) - before))
        ended = re.compile(rf"success: [^│\n]*run {re.escape(new)}")  # the totals line (its end may be cut)
        term.wait(lambda t: ended.search(t) is not None, 120, "the run to end")
        term.tmux("send-keys", "-t", "bench", "q")
        deadline = time.perf_counter() + 10
        while "LORCH-EXIT=" not in term.screen() and time.perf_counter() < deadline:
            time.sleep(0.05)
    finally:
        term.close()
    return {"paint": painted - term.started, "shown": shown - term.started, "run": started - pressed,
            **({} if paint_cpu is None else {"paint_cpu": paint_cpu})}


def import_seconds() -> float:
    """Wall seconds of a fresh ``python -c 'import lorch_tui.app'`` (what ``lorch-tui`` pays first)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import lorch_tui.app"], cwd=REPO, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the workspace, time the dashboard's start and a run's start."""
    ap = argparse.ArgumentParser(prog="python -m bench.dashboard_start", description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20_000, help="documents in the index (goal: 1000000)")
    ap.add_argument("--accounts", type=int, default=3, help="tiny demo accounts run for real")
    ap.add_argument("--repeat", type=int, default=3, help="dashboard starts and runs (medians are reported)")
    ap.add_argument("--dir", type=Path, help="cache folder (default ~/.cache/lorchestra/bench-workspace)")
    ap.add_argument("--timeout", type=float, default=1800, help="dump stacks and exit after this many seconds")
    ns = ap.parse_args(argv)
    watchdog(ns.timeout)
    header(f"dashboard start and run start on {ns.docs:,} documents ({SIZE[0]}x{SIZE[1]}, headless)")
    cfg = cached(ns.docs, ns.accounts, ns.dir, False)
    print(f"workspace: {ns.docs:,} documents, {count_files(cfg.parent / 'ws'):,} files and folders; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"  python + import of the app  {import_seconds():6.3f}s (a fresh process; before the clocks start)")
    results: list[dict[str, Any]] = []
    try:
        for _ in range(ns.repeat):
            results.append(asyncio.run(one_start(cfg, 1)))
    except Stuck as exc:
        print(f"STUCK: {exc}", flush=True)
        return 1
    med = {key: statistics.median(r[key] for r in results) for key in ("load", "paint", "content", "checked",
                                                                         "start_cpu")}
    runs = {key: [v for r in results for v in r[key]] for key in (*STEPS, "loop_cpu")}
    print(f"  config load                 {med['load']:6.3f}s (before the clocks start)")
    print(f"  first paint                 {med['paint']:6.3f}s")
    print(f"  workspace shown (1st scan)  {med['content']:6.3f}s")
    print(f"  workspace check ended       {med['checked']:6.3f}s   CPU of the whole start "
          f"{med['start_cpu']:.3f}s")
    print(f"  key -> handler              {statistics.median(runs['handler']) * 1000:7.1f} ms")
    print(f"  key -> 'starting' painted   {statistics.median(runs['starting']) * 1000:7.1f} ms")
    print(f"  key -> RunStarted applied   {statistics.median(runs['applied']) * 1000:7.1f} ms")
    print(f"  key -> run shown            {statistics.median(runs['run']) * 1000:7.1f} ms   "
          f"(max {max(runs['run']) * 1000:.1f} ms; load average {os.getloadavg()[0]:.1f})")
    print(f"    of which the event loop's own CPU {statistics.median(runs['loop_cpu']) * 1000:7.1f} ms "
          "(handler to run shown; the rest is waiting for a core or a frame)", flush=True)
    if shutil.which("tmux") is None:
        print("skipped the real terminal: tmux is not installed", flush=True)
    else:
        try:
            from engine.config.load import load

            accounts = [ex.account for ex in load(cfg, None).config.extractors]
            real = [terminal_times(cfg, accounts) for _ in range(ns.repeat)]
        except Stuck as exc:
            print(f"STUCK: {exc}", flush=True)
            return 1
        print("  the real lorch-tui in tmux (from the process start; the screen polled every few ms):")
        cpus = [r["paint_cpu"] for r in real if "paint_cpu" in r]
        cpu_text = f"   CPU of lorch-tui by then {statistics.median(cpus):.3f}s" if cpus else ""
        print(f"    process start -> first screen  {statistics.median(r['paint'] for r in real):6.3f}s{cpu_text}")
        print(f"    process start -> accounts      {statistics.median(r['shown'] for r in real):6.3f}s")
        print(f"    e -> the new run on screen     {statistics.median(r['run'] for r in real) * 1000:7.1f} ms",
              flush=True)
        goal("dashboard first screen from process start seconds (real lorch-tui)",
             statistics.median(r["paint"] for r in real), GOAL_PAINT_S, higher_is_better=False, unit="s")
    goal("dashboard first paint seconds (app start to first screen)", med["paint"], GOAL_PAINT_S,
         higher_is_better=False, unit="s")
    goal("dashboard key to run shown seconds", statistics.median(runs["run"]), GOAL_START_S,
         higher_is_better=False, unit="s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
