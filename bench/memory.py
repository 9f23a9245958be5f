"""Memory: each worker's peak RSS at a small and at a large account.

    python -m bench.memory [--small N] [--large N] [--full]

Runs one demo account per tap of ``--taps`` (default ``gmail,sheets``: the largest records,
and the best-compressing parts) through every stage (extract -> canonize -> index) with
``lorchestra run --json``, once with ``--small`` records per account (default 10,000) and once
with ``--large`` (default 100,000; ``--full``: 1,000,000), each in a fresh workspace. Every
worker reports its own peak RSS (``peak_rss_kb``, getrusage ``ru_maxrss`` of the worker
process; the tap it runs is a separate process and not included) in its final event.

Printed: the largest peak RSS of each stage's workers at both sizes and the ratio large /
small (goal: at most 1.3x, memory flat in the account's size).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import REPO, env_int, goal, header, run_pipeline
from bench.volume import remove_tree, settle

STAGES = ("extract", "canonize", "index")
DEFAULT_SMALL, DEFAULT_LARGE, FULL_LARGE = 10_000, 100_000, 1_000_000


DOMAINS = {"gmail": "email", "msgraph": "email", "dataverse": "clinical", "sheets": "ops", "quickbooks": "finance"}
SOURCES = {"msgraph": "exchange"}


def write_config(root: Path, records: int, taps: list[str]) -> Path:
    """A pipeline of one account per demo tap, with the demo's mappings."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    extractors = [{"name": f"bench-{tap}", "domain": DOMAINS[tap], "source": SOURCES.get(tap, tap),
                   "account": "bench", "kind": "demo", "demo": {"tap": tap, "records": records, "seed": 5},
                   "timeout_s": 7 * 86400} for tap in taps]
    cfg = {"pipeline": {"name": "bench-memory", "version": "1"}, "workspace": str(root / "ws"),
           "extractors": extractors,
           "stages": {"canonize": {"mappings": demo["stages"]["canonize"]["mappings"]}}}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def peaks(records: int, taps: list[str]) -> dict[str, float]:
    """The largest peak RSS (KiB) of each stage's workers, accounts of ``records`` records."""
    root = Path(tempfile.mkdtemp(prefix="lorch-bench-memory-"))
    try:
        settle()
        run = run_pipeline(write_config(root, records, taps), root / "ws")
    finally:
        remove_tree(root)
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
    ap.add_argument("--taps", default="gmail,sheets", help="demo taps, one account each (default gmail,sheets)")
    ns = ap.parse_args(argv)
    large = FULL_LARGE if ns.full else ns.large
    taps = [t.strip() for t in ns.taps.split(",") if t.strip()]
    header(f"memory: peak RSS per worker, one account each of {', '.join(taps)}, {ns.small:,} vs {large:,} records")
    small_peaks = peaks(ns.small, taps)
    large_peaks = peaks(large, taps)
    print()
    for stage in STAGES:
        goal(f"memory {stage} peak RSS {large:,} / {ns.small:,} records",
             large_peaks[stage] / max(small_peaks[stage], 1), 1.3, higher_is_better=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
