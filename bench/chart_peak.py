"""How the chart writer's peak memory depends on the largest chart.

    python -m bench.chart_peak --items 10000 [--items 100000] [--dir DIR]

Writes the chart folder of one synthetic client with N linked documents (e-mails, sessions,
invoices, payments, newest first, as :func:`engine.clients.stream.chart_items_in_order`
yields them) with the project task's own writer (:func:`engine.clients.charts.write_charts`,
``ordered``), twice (a first write, then an unchanged rerun), each in a fresh subprocess, and
prints how far each raised the process's peak RSS above its resident set before the write.
The growth must not depend on N (``tests/engine/test_chart_peak.py``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

KINDS = ("email", "clinical_session", "invoice", "payment")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(root: Path, n: int, now: str, held: bool) -> int:
    """Write the chart; the peak RSS growth in KiB."""
    import engine.index.store  # noqa: F401  (imported by the writer's flush: compiled here, not in the measure)
    from engine.clients import charts
    from engine.clients.model import Card, Client, DocFacts, DocRef, Link, Projection

    cid = "0123456789abcdef"
    client = Client(cid, DocRef("crm", "a", "contact", cid), Card("Jane Doe", "Jane", "Doe", None))
    charts.assign_folders({cid: client})
    p = Projection({cid: client}, [], [], [], {})

    start = datetime(2026, 1, 1, tzinfo=UTC)

    def ordered(_: str) -> Iterator[tuple[Link, DocFacts]]:
        for i in range(n):  # chart order: every document a minute older than the one before
            kind = KINDS[i % len(KINDS)]
            ref = DocRef("crm", "a", kind, f"doc-{i:08d}")
            time = (start - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            facts = DocFacts(ref, time, f"Subject line number {i} of a long thread",
                             columns=(f"N-{i}", f"{i % 997}.25", f"{i % 13}.00", "open"))
            yield Link(cid, ref, "email" if kind == "email" else "reference", "in", f"key-{i}"), facts

    before = _status_kib("VmRSS")
    if held:  # the items as one list per chart (what the writer held before session 6)
        charts.write_charts(root, p, now, items_of=lambda c: list(ordered(c)))
    else:
        charts.write_charts(root, p, now, items_of=ordered, ordered=True)
    # VmHWM, not ru_maxrss: that one keeps the peak of the process that forked this one
    return _status_kib("VmHWM") - before


def growth(n: int, root: Path, now: str, held: bool = False) -> int:
    """Peak RSS growth (KiB) of writing the chart of one client with ``n`` items."""
    out = subprocess.run([sys.executable, "-m", "bench.chart_peak", "--child", str(root), "--items", str(n),
                          "--now", now, *(["--held"] if held else [])],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return int(out.split()[-1])


def main(argv: list[str] | None = None) -> int:
    """Print the peak RSS growth of a first write and an unchanged rerun for each size."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, action="append", required=True)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--held", action="store_true", help="give the writer each chart's items as one "
                    "list (the writer before session 6 could take nothing else)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--now", default="2026-01-01T00:00:00Z", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    if ns.child:
        print(_child(ns.child, ns.items[0], ns.now, ns.held))
        return 0
    with tempfile.TemporaryDirectory(dir=ns.dir) as tmp:
        for n in ns.items:
            root = Path(tmp) / f"clients-{n}"
            first = growth(n, root, "2026-01-01T00:00:00Z", ns.held)
            again = growth(n, root, "2026-02-02T00:00:00Z", ns.held)
            size = sum(f.stat().st_size for f in root.rglob("*.md"))
            print(f"{n:,} items ({size / 2**20:.1f} MiB of chart): peak RSS +{first / 1024:.1f} MiB "
                  f"writing, +{again / 1024:.1f} MiB on the unchanged rerun", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
