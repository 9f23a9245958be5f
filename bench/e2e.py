"""End to end: the bundled demo pipeline, every stage, against its own CPU time and its peer.

    python -m bench.e2e [--records TOTAL] [--full] [--no-peer]  (or LORCH_BENCH_E2E_RECORDS=TOTAL)

Runs ``lorchestra run --json`` on ``config/demo.yaml`` (one chain extract -> canonize ->
index per extractor of the default job, then the project stage) in a fresh workspace, with
``TOTAL / accounts`` records per demo tap (``LORCH_DEMO_RECORDS``; default 60,000 in all;
``--full``: 1,000,000). Every worker reports its CPU time (``cpu_s``: the worker plus the
tap it ran) and its peak RSS in its final event.

Then the peer (issue 18): **PyPI target-jsonl 0.1.4 merely landing the same records**. The
same demo taps, with the same command lines, seeds, accounts and counts as the extract stage
builds them (``engine.stages.taps.tap_command``), each piped straight into its own
``target-jsonl`` process (one output folder per account), the accounts run with the extract
stage's ``max_parallel``. Its wall time and CPU time (taps and targets) are measured, and
the records it landed are counted (they must equal the pipeline's extracted records).

Printed: wall time; the sum of the stages' CPU time, per stage; that sum divided by the
cores (the wall time a perfectly packed run would take); the engine process's own CPU (all
CPU of the run minus the workers'); and the goals:

* ``e2e pipeline vs target-jsonl (wall)``: pipeline wall / peer wall <= 1.0;
* ``e2e wall for 1,000,000 records``: the pipeline's wall scaled linearly to 1,000,000 records
  (with ``--full`` the run is that size, give or take what a demo tap emits) <= 150 s;
* ``e2e orchestration overhead``: wall / (stage CPU / cores) - 1 <= 10%;
* ``e2e largest worker peak RSS / 200 MiB`` <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from bench.common import (
    REPO,
    PeerUnavailable,
    PipelineRun,
    Timing,
    children_cpu,
    env_int,
    goal,
    header,
    machine_cpu,
    pypi_tool,
    run_pipeline,
    skip,
)
from bench.volume import remove_tree, settle

DEFAULT_TOTAL = 60_000
FULL_TOTAL = 1_000_000
GOAL_FULL_WALL_S = 150.0
GOAL_RSS_MIB = 200.0
STAGES = ("extract", "canonize", "index", "project")
TARGET_JSONL = ("target-jsonl", "0.1.4")
CONFIG = REPO / "config" / "demo.yaml"


def demo_extractors(per_account: int) -> tuple[list[object], int]:
    """The extractors of the demo config's default job with ``per_account`` records each, and
    the extract stage's ``max_parallel``."""
    from engine.config.load import load_file
    from engine.run.plan import select_extractors

    saved = os.environ.get("LORCH_DEMO_RECORDS")
    os.environ["LORCH_DEMO_RECORDS"] = str(per_account)
    try:
        cfg = load_file(CONFIG)
    finally:
        if saved is None:
            os.environ.pop("LORCH_DEMO_RECORDS", None)
        else:
            os.environ["LORCH_DEMO_RECORDS"] = saved
    return list(select_extractors(cfg)), cfg.stages.extract.max_parallel


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the goals."""
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=env_int("LORCH_BENCH_E2E_RECORDS", DEFAULT_TOTAL),
                    help=f"records over all accounts (default {DEFAULT_TOTAL:,})")
    ap.add_argument("--full", action="store_true", help=f"{FULL_TOTAL:,} records (the issue's figure)")
    ap.add_argument("--no-peer", action="store_true", help="skip PyPI target-jsonl (no PyPI install)")
    ns = ap.parse_args(argv)
    total = FULL_TOTAL if ns.full else ns.records
    extractors, max_parallel = demo_extractors(1)
    accounts = len(extractors)
    per_account = max(1, total // accounts)
    cores = os.cpu_count() or 1
    header(f"end to end: demo pipeline, {per_account * accounts:,} records over {accounts} accounts "
           f"({per_account:,} per demo tap)")
    work = Path(tempfile.mkdtemp(prefix="lorch-bench-e2e-"))
    try:
        settle()
        busy0, idle0 = machine_cpu()
        run = run_pipeline(CONFIG, work / "ws", {"LORCH_DEMO_RECORDS": str(per_account)})
        busy1, idle1 = machine_cpu()
        print("  (removing the pipeline's workspace ...)", flush=True)
        remove_tree(work / "ws")
        peer: tuple[Timing, int] | None = None
        if ns.no_peer:
            skip("target-jsonl", "--no-peer")
        else:
            try:
                peer = run_peer(per_account, work / "peer")
            except PeerUnavailable as exc:
                skip("target-jsonl", str(exc))
        report_run(run, cores, busy1 - busy0, idle1 - idle0, peer, max_parallel, full=ns.full)
    finally:
        print(f"  (removing the benchmark folder {work} ...)", flush=True)
        remove_tree(work)
    return 0


def run_peer(per_account: int, work: Path) -> tuple[Timing, int]:
    """Every demo tap of the default job piped into its own PyPI target-jsonl, ``max_parallel``
    accounts at a time; (wall and CPU of taps and targets, records landed)."""
    from engine.config import Extractor
    from engine.stages.taps import tap_command

    bin_dir = pypi_tool(*TARGET_JSONL)
    extractors, max_parallel = demo_extractors(per_account)
    jobs = []
    for ex in extractors:
        assert isinstance(ex, Extractor)
        scratch = work / "scratch" / ex.name
        out = work / "out" / ex.name
        scratch.mkdir(parents=True)
        out.mkdir(parents=True)
        cfg = scratch / "target-jsonl.json"
        cfg.write_bytes(orjson.dumps({"destination_path": str(out), "do_timestamp_file": False}))
        tap = tap_command(ex, scratch)
        jobs.append((ex.name, tap, [str(bin_dir / "target-jsonl"), "--config", str(cfg)]))

    def one(job: tuple[str, object, list[str]]) -> None:
        name, tap, target = job
        with subprocess.Popen(tap.argv, env=tap.env, cwd=tap.cwd or REPO,  # type: ignore[attr-defined]
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as producer:
            assert producer.stdout is not None
            res = subprocess.run(target, stdin=producer.stdout, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            producer.stdout.close()
            tap_rc = producer.wait()
        if tap_rc != 0 or res.returncode != 0:
            raise SystemExit(f"peer {name}: tap exit {tap_rc}, target-jsonl exit {res.returncode}: "
                             f"{res.stderr.decode(errors='replace')[-1500:]}")

    cpu0, t0 = children_cpu(), time.perf_counter()
    with ThreadPoolExecutor(max_parallel) as pool:
        list(pool.map(one, jobs))
    timing = Timing(time.perf_counter() - t0, children_cpu() - cpu0)
    landed = 0
    for path in (work / "out").rglob("*.jsonl"):
        with open(path, "rb") as fh:
            landed += sum(1 for _ in fh)
    return timing, landed


def report_run(run: PipelineRun, cores: int, busy: float, idle: float, peer: tuple[Timing, int] | None,
               max_parallel: int, *, full: bool) -> None:
    """Print the per-stage figures, the peer's and the goals of one pipeline run."""
    workers_cpu = sum(float(e.get("cpu_s") or 0) for e in run.finished)
    engine_cpu = max(0.0, run.timing.cpu - workers_cpu)
    records = int(run.stage_sum("extract", "records"))
    print(f"  tasks: {len(run.finished)}; records extracted: {records:,}", flush=True)
    for stage in STAGES:
        print(f"  {stage:<9} cpu {run.stage_sum(stage, 'cpu_s'):8.2f}s  (system {run.stage_sum(stage, 'sys_s'):6.2f}s; "
              f"sum of task wall "
              f"{run.stage_sum(stage, 'duration_s'):8.2f}s; largest worker peak RSS "
              f"{run.stage_max(stage, 'peak_rss_kb') / 1024:.0f} MiB)", flush=True)
    ideal = workers_cpu / cores
    print(f"  stages' CPU {workers_cpu:.2f}s / {cores} cores = {ideal:.2f}s; wall {run.timing.wall:.2f}s; "
          f"engine process CPU {engine_cpu:.2f}s; {records / run.timing.wall:,.0f} records/s end to end; "
          f"{workers_cpu / max(records, 1) * 1000:.3f} stage CPU-ms per record", flush=True)
    others = max(0.0, busy - run.timing.cpu)
    adjusted = run.timing.wall - others / cores
    print(f"  machine during the run: {busy:.1f} cpu-s busy, of which {others:.1f} by other processes; "
          f"{idle:.1f} cpu-s idle", flush=True)
    if peer is not None:
        timing, landed = peer
        print(f"  PyPI target-jsonl 0.1.4 landing the same records ({max_parallel} accounts at a time): "
              f"wall {timing.wall:.2f}s, cpu {timing.cpu:.2f}s (taps + targets), {landed:,} records landed",
              flush=True)
        if landed != records:
            raise SystemExit(f"the peer landed {landed:,} records, the pipeline extracted {records:,}")
    print()
    if peer is not None:
        goal("e2e pipeline vs target-jsonl (wall)", run.timing.wall / peer[0].wall, 1.0, higher_is_better=False)
        print(f"  (cpu-time basis: pipeline {run.timing.cpu:.2f}s / target-jsonl {peer[0].cpu:.2f}s = "
              f"{run.timing.cpu / peer[0].cpu:.2f}x)", flush=True)
    scaled = run.timing.wall * FULL_TOTAL / max(records, 1)
    # --full asks for 1,000,000 over the accounts, but a demo tap may emit fewer than asked
    how = f"{'measured at' if full else 'scaled linearly from'} {records:,} records"
    goal(f"e2e wall for {FULL_TOTAL:,} records ({how})", scaled, GOAL_FULL_WALL_S, higher_is_better=False,
         unit="s")
    goal("e2e orchestration overhead (wall / (stage CPU / cores) - 1)", (run.timing.wall / ideal - 1) * 100, 10,
         higher_is_better=False, unit="%")
    print(f"  (load average now {os.getloadavg()[0]:.1f} on {cores} cores: other processes' CPU counts as "
          f"overhead above; without it (wall - their cpu-s / cores = {adjusted:.2f}s) the overhead would be "
          f"about {(adjusted / ideal - 1) * 100:.0f}%)", flush=True)
    rss = max(run.stage_max(stage, "peak_rss_kb") for stage in STAGES) / 1024
    goal(f"e2e largest worker peak RSS / {GOAL_RSS_MIB:.0f} MiB", rss / GOAL_RSS_MIB, 1.0, higher_is_better=False)


if __name__ == "__main__":
    sys.exit(main())
