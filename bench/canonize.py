"""Canonize against the reference JSONata engine, on the same records and transform.

    python -m bench.canonize [--records N] [--gmail N] [--no-peer]   (or LORCH_BENCH_INVOICES=N)

The records are QuickBooks invoices from the demo tap (the ``invoices`` stream only; default
50,000), and the transform is ``finance/qbo_invoice_to_invoice_v1``, whose only lorchestra
helpers (``$decimal``, ``$isoDate``, ``$utc``) are small enough to re-implement in
JavaScript with the same semantics (``bench/js/jsonata_reference.cjs``). Both sides do the
same per-record work: parse the JSON line, evaluate the transform, add the envelope (kind,
source, account) and serialise the result. lorchestra also validates every output against
the canonical JSON Schema and sorts keys (the reference does neither), so the comparison
favours the reference.

Printed: records/s per core (records / CPU seconds) of the project (jsonatapy, helpers in
Python, jsonschema-rs) and of npm ``jsonata@2.2.2`` on node, and their ratio (goal >= 4x);
"outputs match: N/N" on a sample; the project with two worker processes on halves of the
records against one process on all (goal: 1.7x the throughput); and the Gmail transform's
records/s for the project alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import (
    REPO,
    PeerUnavailable,
    Timing,
    demo_stream,
    env_int,
    goal,
    header,
    npm_package,
    report,
    skip,
)

INVOICE_TRANSFORM = "finance/qbo_invoice_to_invoice_v1"
GMAIL_TRANSFORM = "email/gmail_to_canonical_v1"
JSONATA = ("jsonata", "2.2.2")
SAMPLE = 500
DEFAULT_INVOICES = 50_000
DEFAULT_GMAIL = 20_000
ENVELOPE = {"source": "quickbooks", "account": "bench"}


def records_file(tap: str, stream: str, wanted: int, work: Path, share: float) -> Path:
    """A JSON-lines file of ``wanted`` records of one stream of a demo tap (recorded once)."""
    singer = demo_stream(tap, int(wanted / share) + 10)
    out = work / f"{tap}-{stream}.jsonl"
    n = 0
    prefix = b'{"type":"RECORD","stream":' + orjson.dumps(stream) + b","
    with open(singer, "rb") as src, open(out, "wb") as dst:
        for line in src:
            if line.startswith(prefix):
                dst.write(orjson.dumps(orjson.loads(line)["record"]) + b"\n")
                n += 1
                if n == wanted:
                    break
    return out


def transform_slice(transform: str, path: Path, start: int, stop: int, source: str,
                    sample_out: Path | None = None) -> dict[str, float]:
    """Canonize lines [start, stop) of a records file as the canonize worker does per record:
    parse, transform (jsonatapy + helpers), validate, key-sorted JSON. Returns timings."""
    from engine.canon.compiled import CompiledTransform
    from engine.canon.registry import Registry

    registry = Registry.load(None, None)
    ct = CompiledTransform(registry, registry.get(transform))
    envelope = {"source": source, "account": "bench"}
    with open(path, "rb") as fh:
        lines = fh.readlines()[start:stop]
    samples: list[bytes] = []
    out_bytes = 0
    t_start = time.time()
    c0, w0 = time.process_time(), time.perf_counter()
    for i, line in enumerate(lines):
        doc = ct.apply(orjson.loads(line), envelope)
        text = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        out_bytes += len(text)
        if sample_out is not None and i < SAMPLE:
            samples.append(text)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    if sample_out is not None:
        sample_out.write_bytes(b"\n".join(samples) + b"\n")
    return {"records": len(lines), "wall_s": wall, "cpu_s": cpu, "start": t_start, "end": time.time(),
            "out_bytes": out_bytes}


def child(argv: list[str]) -> int:
    """``--child TRANSFORM FILE START STOP SOURCE``: time one slice in this process; print JSON."""
    transform, path, start, stop, source = argv
    print(json.dumps(transform_slice(transform, Path(path), int(start), int(stop), source)), flush=True)
    return 0


def spawn_slices(transform: str, path: Path, bounds: list[tuple[int, int]], source: str) -> list[dict[str, float]]:
    """Run one child process per slice, all at once; their timings."""
    procs = [subprocess.Popen([sys.executable, "-m", "bench.canonize", "--child", transform, str(path),
                               str(a), str(b), source], stdout=subprocess.PIPE, cwd=REPO)
             for a, b in bounds]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit("a canonize bench child failed")
        results.append(json.loads(out))
    return results


def run_reference(expr_file: Path, records: Path, work: Path) -> tuple[dict[str, float], Path]:
    """npm jsonata on node over the same records; its timings and its sample outputs."""
    pkg = npm_package(*JSONATA)
    sample_out = work / "reference-sample.jsonl"
    res = subprocess.run(["node", str(REPO / "bench" / "js" / "jsonata_reference.cjs"), str(pkg), str(expr_file),
                          str(records), str(sample_out), str(SAMPLE), "invoice", ENVELOPE["source"],
                          ENVELOPE["account"]], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"the reference run failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1]), sample_out


def compare(ours: Path, theirs: Path) -> tuple[int, int]:
    """(matching, compared) outputs, as JSON values (2.0 == 2: both engines' numbers)."""
    a = [orjson.loads(line) for line in ours.read_bytes().splitlines() if line.strip()]
    b = [orjson.loads(line) for line in theirs.read_bytes().splitlines() if line.strip()]
    n = min(len(a), len(b))
    return sum(1 for x, y in zip(a[:n], b[:n], strict=True) if x == y), n


def as_timing(r: dict[str, float]) -> Timing:
    """The wall/CPU pair of a child's timings."""
    return Timing(r["wall_s"], r["cpu_s"])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and ratios."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        return child(args[1:])
    ap = argparse.ArgumentParser(prog="python -m bench.canonize", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=env_int("LORCH_BENCH_INVOICES", DEFAULT_INVOICES),
                    help=f"invoice records (default {DEFAULT_INVOICES:,}; env LORCH_BENCH_INVOICES)")
    ap.add_argument("--gmail", type=int, default=env_int("LORCH_BENCH_GMAIL", DEFAULT_GMAIL),
                    help=f"Gmail records for the project-only figure (default {DEFAULT_GMAIL:,})")
    ap.add_argument("--no-peer", action="store_true", help="skip the npm reference")
    ns = ap.parse_args(args)
    header(f"canonize: {ns.records:,} QuickBooks invoices ({INVOICE_TRANSFORM}) vs npm jsonata@{JSONATA[1]}")
    work = Path(tempfile.mkdtemp(prefix="lorch-bench-canonize-"))
    try:
        invoices = records_file("quickbooks", "invoices", ns.records, work, 0.5)
        n = sum(1 for _ in open(invoices, "rb"))
        ours_sample = work / "ours-sample.jsonl"
        ours = as_timing(transform_slice(INVOICE_TRANSFORM, invoices, 0, n, "quickbooks", ours_sample))
        report("lorchestra (jsonatapy + helpers + schema), 1 core", ours, n)
        ref: Timing | None = None
        if ns.no_peer:
            skip("npm jsonata", "--no-peer")
        else:
            try:
                from engine.canon.registry import Registry

                expr_file = Registry.load(None, None).get(INVOICE_TRANSFORM).path
                r, ref_sample = run_reference(expr_file, invoices, work)
                ref = as_timing(r)
                report(f"npm jsonata {JSONATA[1]} on node {r.get('node', '')}", ref, n)
                same, compared = compare(ours_sample, ref_sample)
                print(f"outputs match: {same}/{compared}", flush=True)
            except PeerUnavailable as exc:
                skip("npm jsonata", str(exc))
        one = spawn_slices(INVOICE_TRANSFORM, invoices, [(0, n)], "quickbooks")[0]
        half = n // 2
        two = spawn_slices(INVOICE_TRANSFORM, invoices, [(0, half), (half, n)], "quickbooks")
        span_two = max(r["end"] for r in two) - min(r["start"] for r in two)
        report("lorchestra, 1 worker process", as_timing(one), n)
        report("lorchestra, 2 worker processes on halves", Timing(span_two, sum(r["cpu_s"] for r in two)), n)
        gmail = records_file("gmail", "messages", ns.gmail, work, 1.0)
        g = sum(1 for _ in open(gmail, "rb"))
        report(f"lorchestra, Gmail ({GMAIL_TRANSFORM}), 1 core",
               as_timing(transform_slice(GMAIL_TRANSFORM, gmail, 0, g, "gmail")), g)
        print(f"per core: lorchestra {n / ours.cpu:,.0f} records/cpu-s"
              + (f", reference {n / ref.cpu:,.0f} records/cpu-s" if ref else ""), flush=True)
        print()
        if ref is not None:
            goal("canonize per core / npm jsonata per core", (n / ours.cpu) / (n / ref.cpu), 4)
        goal("canonize 2 workers / 1 worker (throughput)", one["wall_s"] / span_two, 1.7)
        print(f"  (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: two workers need two idle cores)",
              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
