"""Vault writer against its peers: the same recorded Singer stream through each.

    python -m bench.vault_writer [--records N] [--no-peer]      (or LORCH_BENCH_RECORDS=N)

The stream (default 200,000 demo Gmail messages, SCHEMA and STATE messages included) is
recorded once into the bench cache. Then, one after the other:

1. **lorchestra extract, end to end**: ``python -m engine.run.worker`` with an extract task spec
   whose tap is ``kind: singer``, ``command: [cat, FILE]``; the real tap subprocess, the
   Singer reader, the vault writer (each message validated by msgspec with its record left
   as raw bytes and stored as the tap wrote it, gzip, sha256 of the compressed bytes,
   parts, fsync, manifest, rename) and LATEST. Wall time from spawn
   to exit; CPU of the worker and ``cat``.
2. the same writer in-process (``consume`` + ``RunWriter`` on the file) in three setups, to
   show what each speed choice gives: zlib without the background thread (the writer
   before this benchmark), isal without it, isal with it (the default).
3. **PyPI target-jsonl 0.1.4** (its own venv) reading the same file on stdin.
4. **gzip -1** alone on the same bytes (``gzip -1 -c FILE > OUT``).

Goals (issue 12): throughput >= 10x target-jsonl; end-to-end time / ``gzip -1`` time <= 0.8.
The load average is printed before and after, since the machine is shared.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
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
    pypi_tool,
    report,
    skip,
    timed,
    timed_run,
)
from engine.config import Extractor
from engine.events import TaskFinished, parse_event
from engine.stages.singer_stream import consume
from engine.stages.spec import TaskSpec
from engine.store.fsutil import ensure_dir, secure_umask
from engine.vault.layout import new_run
from engine.vault.writer import BACKENDS, RunWriter

DEFAULT_RECORDS = 200_000
TARGET_JSONL = ("target-jsonl", "0.1.4")


def stream_stats(path: Path) -> tuple[int, int]:
    """(bytes, RECORD messages) of a recorded stream."""
    records = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b'{"type":"RECORD"'):
                records += 1
    return path.stat().st_size, records


def run_worker(stream: Path, work: Path) -> tuple[Timing, TaskFinished]:
    """The extract worker, as the engine starts it, with ``cat FILE`` as the tap."""
    ws = ensure_dir(work / "ws")
    ex = Extractor(name="bench-cat", domain="email", source="gmail", account="bench", kind="singer",
                   command=["cat", str(stream)], timeout_s=7200)
    spec = TaskSpec(task_id="extract:bench-cat", stage="extract", workspace=ws, extractor=ex)
    timing, res = timed_run([sys.executable, "-m", "engine.run.worker"], input=spec.model_dump_json().encode(),
                            capture_output=True, cwd=REPO)
    finals = [e for e in (parse_event(line) for line in res.stdout.splitlines() if line.strip())
              if isinstance(e, TaskFinished)]
    if res.returncode != 0 or not finals or finals[-1].status != "success":
        raise SystemExit(f"extract worker failed (exit {res.returncode}): {res.stderr.decode()[-2000:]}")
    return timing, finals[-1]


def check_vault(ws: Path, stream: Path, records: int) -> None:
    """Every part reads back with the standard gzip module, byte for byte the tap's stream."""
    runs = sorted(ws.glob("vault/*/*/*/dt=*/run_id=*"))
    manifest = orjson.loads((runs[-1] / "manifest.json").read_bytes())
    digest = hashlib.sha256()
    for p in manifest["parts"]:
        digest.update(gzip.decompress((runs[-1] / p["file"]).read_bytes()))
    if digest.digest() != file_sha256(stream) or manifest["records"] != records:
        raise SystemExit(f"vault check failed: parts differ from the stream, or manifest {manifest['records']} "
                         f"records, expected {records}")


def file_sha256(path: Path) -> bytes:
    """sha256 of a file (the recorded stream: one message per line, each ending in a newline)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.digest()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for the record."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def in_process(stream: Path, work: Path, backend: str, pipelined: bool) -> Timing:
    """The Singer reader and the vault writer in this process, reading the file directly."""
    account = ensure_dir(work / f"inproc-{backend}-{int(pipelined)}")

    def go() -> None:
        writer = RunWriter(account, new_run(account), {}, 64 * 1024 * 1024, 1, backend=backend,
                           pipelined=pipelined)
        with open(stream, "rb", buffering=1 << 20) as fh:
            consume(fh, writer, lambda: None, lambda lineno: None)
        writer.finish("success")

    return timed(go)


def run_target_jsonl(stream: Path, work: Path) -> Timing:
    """PyPI target-jsonl reading the recorded stream on its stdin."""
    bin_dir = pypi_tool(*TARGET_JSONL)
    out = ensure_dir(work / "target-jsonl")
    cfg = work / "target-jsonl.json"
    cfg.write_bytes(orjson.dumps({"destination_path": str(out), "do_timestamp_file": False}))
    with open(stream, "rb") as fh:
        timing, res = timed_run([str(bin_dir / "target-jsonl"), "--config", str(cfg)], stdin=fh,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise SystemExit(f"target-jsonl failed: {res.stderr.decode()[-2000:]}")
    return timing


def run_gzip(stream: Path, work: Path) -> Timing:
    """``gzip -1 -c FILE > OUT``."""
    with open(work / "gzip-1.gz", "wb") as out:
        timing, res = timed_run(["gzip", "-1", "-c", str(stream)], stdout=out)
    if res.returncode != 0:
        raise SystemExit("gzip -1 failed")
    return timing


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and ratios."""
    ap = argparse.ArgumentParser(prog="python -m bench.vault_writer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=env_int("LORCH_BENCH_RECORDS", DEFAULT_RECORDS),
                    help=f"Gmail records in the stream (default {DEFAULT_RECORDS:,}; env LORCH_BENCH_RECORDS)")
    ap.add_argument("--no-peer", action="store_true", help="skip target-jsonl (no PyPI install)")
    ns = ap.parse_args(argv)
    secure_umask()
    header(f"vault writer: {ns.records:,} Gmail records")
    t0 = time.perf_counter()
    stream = demo_stream("gmail", ns.records)
    nbytes, records = stream_stats(stream)
    print(f"stream: {stream} ({nbytes / 1e6:.1f} MB, {records:,} records, {nbytes / max(records, 1):,.0f} "
          f"bytes/line; recorded in {time.perf_counter() - t0:.1f}s or cached)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="lorch-bench-vault-"))
    try:
        print(load_average(), flush=True)
        e2e, final = run_worker(stream, work)
        check_vault(work / "ws", stream, records)
        report("lorchestra extract worker (end to end)", e2e, records, nbytes)
        print(f"    worker's own account: cpu_s {final.cpu_s} (worker + cat), peak RSS "
              f"{(final.peak_rss_kb or 0) / 1024:.0f} MiB, {final.parts} part(s), "
              f"compression ratio {final.uncompressed_bytes / max(final.bytes, 1):.2f}", flush=True)
        variants = [("zlib", False), ("isal", False), ("isal", True)]
        inproc: dict[tuple[str, bool], Timing] = {}
        for backend, pipelined in variants:
            if backend not in BACKENDS:
                skip(f"in-process {backend}", "isal is not installed")
                continue
            inproc[(backend, pipelined)] = t = in_process(stream, work, backend, pipelined)
            report(f"in-process writer, {backend}{', background gzip' if pipelined else ''}", t, records, nbytes)
        gz = run_gzip(stream, work)
        report("gzip -1 alone (same bytes)", gz, records, nbytes)
        peer: Timing | None = None
        if ns.no_peer:
            skip("target-jsonl", "--no-peer")
        else:
            try:
                peer = run_target_jsonl(stream, work)
                report("PyPI target-jsonl 0.1.4", peer, records, nbytes)
            except PeerUnavailable as exc:
                skip("target-jsonl", str(exc))
        print()
        if ("zlib", False) in inproc and ("isal", False) in inproc:
            base = inproc[("zlib", False)]
            for key, label in ((("isal", False), "isal"), (("isal", True), "isal + background gzip")):
                if key in inproc:
                    t = inproc[key]
                    print(f"gain of {label} over zlib (in-process): wall {base.wall / t.wall:.2f}x, "
                          f"cpu {base.cpu / t.cpu:.2f}x", flush=True)
        if peer is not None:
            goal("vault throughput / target-jsonl", peer.wall / e2e.wall, 10)
            print(f"  (cpu-time basis: {peer.cpu / e2e.cpu:.2f}x)", flush=True)
        goal("vault time / gzip -1 time", e2e.wall / gz.wall, 0.8, higher_is_better=False)
        print(f"  (cpu-time basis: {e2e.cpu / gz.cpu:.2f}x; the worker's wall time includes Python "
              "start-up and imports)", flush=True)
        print(load_average(), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
