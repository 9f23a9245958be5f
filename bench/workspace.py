"""How fast the CLI answers on a workspace the size of a real practice's history (issue 18).

    python -m bench.workspace [--docs 20000] [--accounts 3] [--repeat 3] [--dir DIR] [--rebuild]

Builds a large workspace once and caches it under
``${XDG_CACHE_HOME:-~/.cache}/lorchestra/bench-workspace/docs-N-accounts-K/`` (a
``.complete`` marker is written last; ``--rebuild`` starts over): ``K`` tiny demo accounts
run through the real ``lorchestra run`` (vault, canonical, index, run history, logs), then
``N`` canonical-shaped documents loaded into the index by the index worker's own loader
(:class:`engine.index.load.AccountLoader`), so the object store holds ``N`` object files in
its real ``objects/ab/cd/`` fan-out. ``--docs 1000000`` is the issue's size (about 4 minutes
of index load on the 2-core machine, once); the default is a smaller size for a quick look.

Then it times, each as a fresh ``lorchestra`` process (median of ``--repeat``), against the
0.5 s goal: ``status``, ``list extractors``, ``validate --quick``, ``run --dry-run``, and
the start of a real run of one tiny account (invocation to the first ``task_started`` event
of ``run --json``, with the CPU the process had used by then). ``validate`` (full: transform
samples and the deep permission walk), ``clean --all --dry-run`` and a few ``query`` commands
are timed once too, for reference, without a goal (``REFERENCE``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.common import REPO, children_cpu, goal, machine_line

GOAL_S = 0.5
REFERENCE = (("validate (full)", ["validate"]),
             ("clean --all --dry-run", ["clean", "--all", "--dry-run"]),
             ("query --limit 20", ["query", "--limit", "20"]),
             ("query --kind email", ["query", "--kind", "email", "--limit", "20"]),
             ("query --text (words)", ["query", "--text", "subject", "--words-only", "--limit", "20"]),
             ("query --counts", ["query", "--counts"]))
"""Commands timed once each for reference, without a goal (they read the workspace whole or search it)."""
BULK_SOURCE, BULK_ACCOUNT = "gmail", "bench"


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/lorchestra/bench-workspace`` (created on demand)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    root = Path(base) / "lorchestra" / "bench-workspace"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


def clean_env() -> dict[str, str]:
    """The environment without LORCH_* settings (a benchmark sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LORCH_")}


def write_config(root: Path, accounts: int) -> Path:
    """A config with ``accounts`` tiny demo Gmail accounts plus the bulk account's extractor."""
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    exs = [{"name": f"mail{i}", "domain": "email", "source": "gmail", "account": f"acct{i}", "kind": "demo",
            "demo": {"tap": "gmail", "records": 20, "seed": i + 1}} for i in range(accounts)]
    exs.append({"name": BULK_ACCOUNT, "domain": "email", "source": BULK_SOURCE, "account": BULK_ACCOUNT,
                "kind": "demo", "demo": {"tap": "gmail", "records": 5, "seed": 99}})
    cfg = {"pipeline": {"name": "bench-workspace", "version": "1"}, "workspace": str(root / "ws"),
           "extractors": exs, "stages": {"canonize": {"mappings": demo["stages"]["canonize"]["mappings"]},
                                         "index": {"vectors": False}}}
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(*args: str) -> list[str]:
    """The ``lorchestra`` command line (as the installed entry point runs it)."""
    return [sys.executable, "-m", "lorch_tui.cli", *args]


def build(root: Path, docs: int, accounts: int) -> Path:
    """Build the workspace (real runs + ``docs`` indexed documents); the config path."""
    from bench.index import build_synthetic
    from engine.index.load import AccountLoader

    os.umask(0o077)  # a workspace is private: what this writes directly must be too
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o700)
    cfg = write_config(root, accounts)
    started = time.perf_counter()
    accts = [a for i in range(accounts) for a in ("--account", f"mail{i}")]
    res = subprocess.run(cli("run", "--config", str(cfg), *accts), cwd=REPO, env=clean_env(),
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"the demo run failed (exit {res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    print(f"  {accounts} demo account(s) run in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    ws = build_synthetic(root, docs)  # canonical/gmail/bench.jsonl under root/ws
    result = AccountLoader(ws, BULK_SOURCE, BULK_ACCOUNT, force=True).run()
    print(f"  {result.documents:,} documents indexed ({result.objects_written:,} object files) in "
          f"{time.perf_counter() - started:.1f}s", flush=True)
    (root / ".complete").write_text("ok\n")
    return cfg


def cached(docs: int, accounts: int, base: Path | None, rebuild: bool) -> Path:
    """The cached workspace's config, built first when missing or incomplete."""
    root = (base or cache_dir()) / f"docs-{docs}-accounts-{accounts}"
    if (root / ".complete").exists() and not rebuild:
        print(f"using the cached workspace {root}", flush=True)
        return root / "bench.yaml"
    print(f"building a workspace of {docs:,} documents in {root} (once; cached) ...", flush=True)
    return build(root, docs, accounts)


def count_files(ws: Path) -> int:
    """Files and folders under the workspace (what a full walk visits)."""
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(ws))


def time_cmd(args: list[str], repeat: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of a fresh ``lorchestra ARGS`` process, and its last exit code.

    The CPU time (user + system of the process) is what the command costs; on a loaded
    machine the wall clock adds the time spent waiting for a core."""
    times: list[float] = []
    cpus: list[float] = []
    rc = 0
    for _ in range(repeat):
        cpu0 = children_cpu()
        started = time.perf_counter()
        res = subprocess.run(cli(*args), cwd=REPO, env=clean_env(), capture_output=True)
        times.append(time.perf_counter() - started)
        cpus.append(children_cpu() - cpu0)
        rc = res.returncode
    return statistics.median(times), statistics.median(cpus), rc


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a live process used so far (Linux ``/proc``; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_run_start(cfg: Path, repeat: int) -> tuple[float, float | None, int]:
    """Median seconds from invoking ``run --json --account mail0`` to its first task_started
    event, the median CPU seconds the ``lorchestra`` process had used by then (None where
    ``/proc`` is missing), and the last exit code."""
    times: list[float] = []
    cpus: list[float] = []
    rc = 0
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.Popen(cli("run", "--json", "--config", str(cfg), "--account", "mail0",
                                    "--stage", "extract"),
                                cwd=REPO, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        first: float | None = None
        for line in proc.stdout:
            if first is None and b'"task_started"' in line:
                first = time.perf_counter() - started
                cpu = process_cpu(proc.pid)
                if cpu is not None:
                    cpus.append(cpu)
        rc = proc.wait()
        if first is None:
            raise SystemExit(f"`lorchestra run` emitted no task_started event (exit {rc})")
        times.append(first)
    return statistics.median(times), statistics.median(cpus) if cpus else None, rc


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the workspace, time the commands, print each against the goal."""
    ap = argparse.ArgumentParser(prog="python -m bench.workspace", description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=20_000, help="documents in the index (goal: 1000000)")
    ap.add_argument("--accounts", type=int, default=3, help="tiny demo accounts run for real")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (the median is reported)")
    ap.add_argument("--dir", type=Path, help="cache folder (default ~/.cache/lorchestra/bench-workspace)")
    ap.add_argument("--rebuild", action="store_true", help="build the workspace again")
    ns = ap.parse_args(argv)
    print(machine_line(), flush=True)
    cfg = cached(ns.docs, ns.accounts, ns.dir, ns.rebuild)
    ws = cfg.parent / "ws"
    print(f"workspace: {ns.docs:,} documents, {count_files(ws):,} files and folders; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    conf = ["--config", str(cfg)]
    rows = [("status", ["status", *conf]), ("list extractors", ["list", "extractors", *conf]),
            ("validate --quick", ["validate", "--quick", *conf]), ("run --dry-run", ["run", "--dry-run", *conf])]
    ok = True
    for name, args in rows:
        wall, cpu, rc = time_cmd(args, ns.repeat)
        print(f"  {name:<28} wall {wall:6.3f}s  cpu {cpu:6.3f}s  (exit {rc})", flush=True)
        ok = rc == 0 and ok
        goal(f"{name} seconds", wall, GOAL_S, higher_is_better=False, unit="s")
    wall, run_cpu, rc = time_run_start(cfg, ns.repeat)
    cpu_text = "  cpu     -  " if run_cpu is None else f"  cpu {run_cpu:6.3f}s"
    print(f"  {'run: first task_started':<28} wall {wall:6.3f}s{cpu_text}  (exit {rc})", flush=True)
    ok = rc == 0 and ok
    goal("run start seconds", wall, GOAL_S, higher_is_better=False, unit="s")
    for name, args in REFERENCE:
        wall, cpu, rc = time_cmd([*args, *conf], 1)
        print(f"  {name + ' (no goal)':<28} wall {wall:6.3f}s  cpu {cpu:6.3f}s  (exit {rc})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
