"""Peak memory of the project stage, and proof that a change kept every result.

    python -m bench.project_check --dir DIR [--documents 100000] [--clients 2000] [--dump OUT]
                                  [--config CFG] [--fresh] [--rebuild]

Builds (once; reused when ``DIR/ws`` exists) the synthetic index of :mod:`bench.clients`,
then runs one forced projection in a fresh subprocess (the worker's own code) and prints
its peak RSS (the larger of the task's and its second chart writer's), CPU seconds (both
processes) and the wall / CPU seconds of the task's phases. With ``--dump OUT`` it writes the sorted rows of every client
table and the sha256 of every chart file to OUT; compare two dumps with ``cmp``: a change
to the project stage must leave them byte for byte equal (a link to the wrong client is the
worst bug the product can have).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

TABLES = ("clients", "client_keys", "client_links", "client_conflicts", "client_unlinked")


def dump(ws_root: Path, out: Path) -> None:
    """Sorted rows of the client tables and the sha256 of every chart file, into ``out``."""
    from engine.index.store import db_path
    from engine.store.workspace import Workspace
    conn = sqlite3.connect(f"file:{db_path(Workspace(ws_root))}?mode=ro", uri=True)
    lines: list[str] = []
    for table in TABLES:
        rows = sorted(repr(r) for r in conn.execute(f"SELECT * FROM {table}"))  # noqa: S608
        lines.append(f"## {table} {len(rows)}")
        lines += rows
    conn.close()
    charts = ws_root / "clients"
    files = sorted(p for p in charts.rglob("*") if p.is_file())
    lines.append(f"## charts {len(files)}")
    lines += [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(charts)}" for p in files]
    scored = sorted(p for p in (ws_root / "canonical" / "measures").glob("*") if p.is_file())
    lines.append(f"## measures files {len(scored)}")
    lines += [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in scored]
    out.write_text("\n".join(lines) + "\n")


def _child(ws_root: Path, config: Path | None) -> None:
    from bench.clients import CFG
    cfg = CFG
    if config is not None:
        from engine.config.load import load_file
        cfg = load_file(config).clients
    from engine.stages.project import Project, tune_gc
    from engine.store.workspace import Workspace
    tune_gc()
    cpu = time.process_time()
    if os.environ.get("BENCH_PROJECT_NOW"):  # a fixed projected_at: fresh dumps comparable across code
        import engine.stages.project as project_stage
        project_stage._now = lambda: os.environ["BENCH_PROJECT_NOW"]  # type: ignore[attr-defined]
    job = Project(Workspace(ws_root), cfg, force=True)
    sampler = _Sampler(job.phases)
    job.run()
    sampler.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the second chart writer
    own = rss
    rss = max(rss, kids.ru_maxrss)
    cpu -= kids.ru_utime + kids.ru_stime
    phases = ",".join(f"{k}={w:.2f}/{c:.2f}" for k, (w, c) in job.phases.items())
    print(f"{job.documents} {rss} {time.process_time() - cpu:.2f} {phases or '-'} {own} {kids.ru_maxrss}")
    print(sampler.report(), file=sys.stderr)


PHASES = ("read", "resolve", "measures", "tables", "charts")


def _kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Sampler:
    """Peak RSS per phase: the task's (sampled every 10 ms) and its forked helpers' (VmHWM)."""

    def __init__(self, done: dict[str, object]) -> None:
        import threading
        self.done, self.task, self.helpers = done, {}, {}  # type: ignore[var-annotated]
        self.kids: dict[int, tuple[str, int]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self.stopping.wait(0.01):
            phase = next((p for p in PHASES if p not in self.done), "end")
            self.task[phase] = max(self.task.get(phase, 0), _kib(me, "VmRSS"))
            try:
                kids = [int(x) for x in Path(f"/proc/{me}/task/{me}/children").read_text().split()]
            except OSError:
                kids = []
            for pid in kids:
                first, peak = self.kids.get(pid, (phase, 0))
                self.kids[pid] = (first, max(peak, _kib(pid, "VmHWM")))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def report(self) -> str:
        task = " ".join(f"{k}={v / 1024:.0f}" for k, v in self.task.items())
        kids = " ".join(f"{ph}={kb / 1024:.0f}" for ph, kb in self.kids.values())
        return f"  peak RSS MiB, task per phase: {task}; helpers (phase forked in): {kids or '-'}"


def _forget_schema_version(ws_root: Path) -> None:
    """The next projection finds no client-table version and rebuilds every table."""
    from engine.index.store import db_path
    from engine.store.workspace import Workspace
    conn = sqlite3.connect(db_path(Workspace(ws_root)))
    with conn:
        conn.execute("DELETE FROM clients_meta WHERE key = 'schema_version'")
    conn.close()


def main(argv: list[str] | None = None) -> int:
    """Build if needed, project in a subprocess, print peak RSS, optionally dump."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--documents", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=2_000)
    ap.add_argument("--dump", type=Path)
    ap.add_argument("--config", type=Path, help="the clients section of this pipeline config "
                    "(for a workspace a real run made; default: bench.clients' own)")
    ap.add_argument("--fresh", action="store_true", help="remove the chart folders first, so every "
                    "chart is written (a first projection's cost; the dump's projected_at then differs)")
    ap.add_argument("--rebuild", action="store_true", help="delete the client tables' schema version "
                    "first, so the projection drops and rebuilds them (as after an upgrade of their schema)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args(argv)
    ws_root = ns.dir / "ws"
    if ns.child:
        _child(ws_root, ns.config)
        return 0
    from engine.store.fsutil import secure_umask
    secure_umask()
    if not (ws_root / "vector-store").is_dir():
        from bench.clients import build
        ns.dir.mkdir(parents=True, exist_ok=True)
        build(ns.dir, ns.documents, ns.clients)
    from bench.volume import remove_tree, settle
    if ns.fresh:
        remove_tree(ws_root / "clients")
    if ns.rebuild:
        _forget_schema_version(ws_root)
    settle()
    wall = time.perf_counter()
    extra = ["--config", str(ns.config)] if ns.config else []
    got = subprocess.run([sys.executable, "-m", "bench.project_check", "--dir", str(ns.dir), "--child", *extra],
                         check=True, stdout=subprocess.PIPE, text=True).stdout.split()
    docs, rss_kb, cpu = int(got[0]), int(got[1]), float(got[2])
    split = f" (task {int(got[4]) / 1024:.0f}, helpers {int(got[5]) / 1024:.0f})" if len(got) > 5 else ""
    print(f"project: {docs:,} documents, peak RSS {rss_kb / 1024:.0f} MiB{split}, {cpu:.2f} CPU-s, "
          f"{time.perf_counter() - wall:.2f}s wall", flush=True)
    if len(got) > 3 and got[3] != "-":
        print(f"  phases (wall s / CPU s): {got[3].replace(',', ', ')}", flush=True)
    if ns.dump:
        dump(ws_root, ns.dump)
        print(f"dump: {ns.dump}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
