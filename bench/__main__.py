"""``python -m bench`` (``make bench``): every benchmark in sequence, then a summary of the goals.

    python -m bench [--quick | --full] [--only NAME ...]

Each benchmark runs in its own process (``python -m bench.NAME``), so one's heap, caches and
threads never weigh on the next; their output streams through as they run, and the
``ratio ...`` lines (each goal with ``met`` or ``MISSED``) are repeated at the end. Peers
(PyPI target-jsonl, npm jsonata) are installed on first use into
``${XDG_CACHE_HOME:-~/.cache}/lorchestra/bench/``.

Sizes: the default is the issue's figures where a run stays within minutes (vault writer
200,000 Gmail records, canonize 50,000 invoices, index 50,000 documents, search latency at
100,000 documents and index drop at 20,000, end to end 60,000
records, memory 10,000 vs 100,000, CLI commands on a workspace of 20,000 indexed documents);
``--full`` adds the 1,000,000-document workspace and the 1,000,000-record end-to-end and memory
runs; ``--quick`` uses tiny sizes (a smoke run: figures are meaningless). Exit code 1 when a
benchmark crashed (a missed goal is reported, not an error).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO, machine_line

BENCHES: dict[str, dict[str, list[str]]] = {
    "vault_writer": {"quick": ["--records", "2000"], "default": [], "full": []},
    "canonize": {"quick": ["--records", "600", "--gmail", "200"], "default": [], "full": []},
    "index": {"quick": ["--records", "600", "--synthetic"], "default": [], "full": []},
    "search": {"quick": ["--records", "20", "--scale", "2000", "--load-records", "300", "--repeat", "1"],
               "default": [], "full": []},
    "e2e": {"quick": ["--records", "600"], "default": [], "full": ["--full"]},
    "memory": {"quick": ["--small", "200", "--large", "600"], "default": [], "full": ["--full"]},
    "dashboard": {"quick": ["--seconds", "1", "--naive-seconds", "1", "--samples", "10", "--docs", "300",
                            "--accounts", "1", "--repeat", "1", "--timeout", "240"],
                  "default": [], "full": ["--docs", "1000000", "--flood-on-workspace"]},
    "workspace": {"quick": ["--docs", "300", "--accounts", "1", "--repeat", "1"], "default": [],
                  "full": ["--docs", "1000000"]},
}


def run_one(name: str, args: list[str], summary: list[str]) -> bool:
    """Run ``python -m bench.NAME ARGS``, echo its output, keep its ratio lines; True if it exited 0."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-u", "-m", f"bench.{name}", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        text = line.rstrip()
        if text.startswith(("ratio ", "skipped ", "outputs match")) or text.endswith((" ok", " MISS")):
            summary.append(f"[{name}] {text}")
    rc = proc.wait()
    print(f"--- bench.{name}: exit {rc} after {time.monotonic() - started:.0f}s", flush=True)
    if rc != 0:
        summary.append(f"[{name}] FAILED (exit {rc})")
    return rc == 0


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks in sequence and print the summary."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    size.add_argument("--full", action="store_true", help="the 1M-record end-to-end and memory runs")
    ap.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only this benchmark (repeatable)")
    ns = ap.parse_args(argv)
    mode = "quick" if ns.quick else "full" if ns.full else "default"
    if ns.quick:  # figures are meaningless at tiny sizes: never wait for the volume to settle
        os.environ["LORCH_BENCH_SETTLE_S"] = "0"
    chosen = ns.only or list(BENCHES)
    print(machine_line(), flush=True)
    summary: list[str] = []
    ok = True
    for name in chosen:
        if not (Path(__file__).parent / f"{name}.py").exists():
            summary.append(f"[{name}] skipped: bench/{name}.py is not there")
            continue
        ok = run_one(name, BENCHES[name][mode], summary) and ok
    print(f"\n=== summary ({mode}; {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.1f}) ===")
    print("\n".join(summary), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
