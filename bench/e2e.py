"""End to end: the bundled demo pipeline, every stage, against its own CPU time.

    python -m bench.e2e [--records TOTAL] [--full]      (or LORCH_BENCH_E2E_RECORDS=TOTAL)

Runs ``lorchestra run --json`` on ``config/demo.yaml`` (twelve accounts over five sources;
extract -> canonize -> index per account) in a fresh workspace, with ``TOTAL / 12`` records
per account (default 60,000 in all; ``--full``: 1,000,000). Every worker reports its CPU time
(``cpu_s``: the worker plus the tap it ran) and its peak RSS in its final event.

Printed: wall time; the sum of the stages' CPU time, per stage; that sum divided by the
cores (the wall time a perfectly packed run would take); the engine process's own CPU (all
CPU of the run minus the workers'); and the orchestration overhead = wall / (CPU / cores) - 1
(goal: under 10%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, PipelineRun, env_int, goal, header, machine_cpu, run_pipeline

DEFAULT_TOTAL = 60_000
FULL_TOTAL = 1_000_000
ACCOUNTS = 12
STAGES = ("extract", "canonize", "index")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the overhead ratio."""
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=env_int("LORCH_BENCH_E2E_RECORDS", DEFAULT_TOTAL),
                    help=f"records over all {ACCOUNTS} accounts (default {DEFAULT_TOTAL:,})")
    ap.add_argument("--full", action="store_true", help=f"{FULL_TOTAL:,} records (the issue's figure)")
    ns = ap.parse_args(argv)
    total = FULL_TOTAL if ns.full else ns.records
    per_account = max(1, total // ACCOUNTS)
    cores = os.cpu_count() or 1
    header(f"end to end: demo pipeline, {per_account * ACCOUNTS:,} records over {ACCOUNTS} accounts")
    work = Path(tempfile.mkdtemp(prefix="lorch-bench-e2e-"))
    busy0, idle0 = machine_cpu()
    try:
        run = run_pipeline(REPO / "config" / "demo.yaml", work / "ws",
                           {"LORCH_DEMO_RECORDS": str(per_account)})
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    busy1, idle1 = machine_cpu()
    try:
        report_run(run, cores, busy1 - busy0, idle1 - idle0)
    finally:
        print(f"  (removing the benchmark workspace {work} ...)", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report_run(run: PipelineRun, cores: int, busy: float, idle: float) -> None:
    """Print the per-stage figures and the overhead ratio of one pipeline run."""
    workers_cpu = sum(float(e.get("cpu_s") or 0) for e in run.finished)
    engine_cpu = max(0.0, run.timing.cpu - workers_cpu)
    records = int(run.stage_sum("extract", "records"))
    print(f"  tasks: {len(run.finished)}; records extracted: {records:,}", flush=True)
    for stage in STAGES:
        print(f"  {stage:<9} cpu {run.stage_sum(stage, 'cpu_s'):8.2f}s  (sum of task wall "
              f"{run.stage_sum(stage, 'duration_s'):8.2f}s; largest worker peak RSS "
              f"{run.stage_max(stage, 'peak_rss_kb') / 1024:.0f} MiB)", flush=True)
    ideal = workers_cpu / cores
    print(f"  stages' CPU {workers_cpu:.2f}s / {cores} cores = {ideal:.2f}s; wall {run.timing.wall:.2f}s; "
          f"engine process CPU {engine_cpu:.2f}s; {records / run.timing.wall:,.0f} records/s end to end",
          flush=True)
    others = max(0.0, busy - run.timing.cpu)
    adjusted = run.timing.wall - others / cores
    print(f"  machine during the run: {busy:.1f} cpu-s busy, of which {others:.1f} by other processes; "
          f"{idle:.1f} cpu-s idle", flush=True)
    print()
    goal("e2e orchestration overhead (wall / (stage CPU / cores) - 1)", (run.timing.wall / ideal - 1) * 100, 10,
         higher_is_better=False, unit="%")
    print(f"  (load average now {os.getloadavg()[0]:.1f} on {cores} cores: other processes' CPU counts as "
          f"overhead above; without it (wall - their cpu-s / cores = {adjusted:.2f}s) the overhead would be "
          f"about {(adjusted / ideal - 1) * 100:.0f}%)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
