"""Memory: each worker's peak RSS at a small and at a large account.

    python -m bench.memory [--small N] [--large N] [--full]

Runs one demo Gmail account through every stage (extract -> canonize -> index) with
``lorchestra run --json``, once with ``--small`` records (default 10,000) and once with
``--large`` (default 100,000; ``--full``: 1,000,000), each in a fresh workspace. Every
worker reports its own peak RSS (``peak_rss_kb``, getrusage ``ru_maxrss`` of the worker
process; the tap it runs is a separate process and not included) in its final event.

Printed: peak RSS per stage at both sizes and the ratio large / small (goal: at most 1.3x,
memory flat in the account's size).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import REPO, env_int, goal, header, run_pipeline

STAGES = ("extract", "canonize", "index")
DEFAULT_SMALL, DEFAULT_LARGE, FULL_LARGE = 10_000, 100_000, 1_000_000


def write_config(root: Path, records: int) -> Path:
    """A one-account Gmail pipeline with the demo's mappings."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg = {"pipeline": {"name": "bench-memory", "version": "1"}, "workspace": str(root / "ws"),
           "extractors": [{"name": "bench-gmail", "domain": "email", "source": "gmail", "account": "bench",
                           "kind": "demo", "demo": {"tap": "gmail", "records": records, "seed": 5},
                           "timeout_s": 7 * 86400}],
           "stages": {"canonize": {"mappings": demo["stages"]["canonize"]["mappings"]}}}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def peaks(records: int) -> dict[str, float]:
    """Peak RSS (KiB) of each stage's worker for one account of ``records`` messages."""
    root = Path(tempfile.mkdtemp(prefix="lorch-bench-memory-"))
    try:
        run = run_pipeline(write_config(root, records), root / "ws")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {stage: run.stage_max(stage, "peak_rss_kb") for stage in STAGES}
    cpu = {stage: run.stage_sum(stage, "cpu_s") for stage in STAGES}
    print(f"  {records:>9,} records: " + "  ".join(f"{s} {out[s] / 1024:6.1f} MiB ({cpu[s]:.1f} cpu-s)"
                                                 for s in STAGES), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print peaks and ratios."""
    ap = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=env_int("LORCH_BENCH_MEM_SMALL", DEFAULT_SMALL))
    ap.add_argument("--large", type=int, default=env_int("LORCH_BENCH_MEM_LARGE", DEFAULT_LARGE))
    ap.add_argument("--full", action="store_true", help=f"large = {FULL_LARGE:,} (the issue's figure)")
    ns = ap.parse_args(argv)
    large = FULL_LARGE if ns.full else ns.large
    header(f"memory: peak RSS per worker, one Gmail account, {ns.small:,} vs {large:,} records")
    small_peaks = peaks(ns.small)
    large_peaks = peaks(large)
    print()
    for stage in STAGES:
        goal(f"memory {stage} peak RSS {large:,} / {ns.small:,} records",
             large_peaks[stage] / max(small_peaks[stage], 1), 1.3, higher_is_better=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
