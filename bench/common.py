"""What every benchmark shares: the cache of peers and recorded streams, timing, reporting.

Peers are installed by the benchmarks themselves, once, into
``${XDG_CACHE_HOME:-~/.cache}/lorchestra/bench/`` (PyPI tools each in their own venv, npm
packages under ``npm/``), with a ``.complete`` marker written last and a file lock so two
runs never build the same peer at once. A peer that cannot be installed (no registry) raises
:class:`PeerUnavailable`; the benchmark then prints why and skips that comparison.

Every figure line a benchmark prints goes through :func:`report`, and every goal through
:func:`goal`, which prints ``ratio NAME: VALUE (goal ...) met|MISSED``: the smoke test and a
reader of ``make bench`` output look for those lines.
"""

from __future__ import annotations

import fcntl
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = ".complete"
INSTALL_TIMEOUT_S = 900


class PeerUnavailable(Exception):
    """A peer could not be installed (its registry is unreachable, or the install failed)."""


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/lorchestra/bench`` (created on demand)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    root = Path(base) / "lorchestra" / "bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def env_int(name: str, default: int) -> int:
    """An integer from the environment (``LORCH_BENCH_*``), else ``default``."""
    value = os.environ.get(name)
    return int(value.replace("_", "")) if value else default


@contextmanager
def _locked(name: str) -> Iterator[None]:
    with open(cache_root() / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _install(cmd: list[str], root: Path, what: str) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise PeerUnavailable(f"cannot install {what}: {exc}") from None
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        raise PeerUnavailable(f"cannot install {what}: {' | '.join(tail)}")


def pypi_tool(name: str, version: str) -> Path:
    """The bin folder of a cached venv holding ``name==version`` from PyPI (built once)."""
    root = cache_root() / "venvs" / f"{name}-{version}"
    if (root / MARKER).exists():
        return root / "bin"
    with _locked(f"venv-{name}-{version}"):
        if not (root / MARKER).exists():
            shutil.rmtree(root, ignore_errors=True)
            root.parent.mkdir(parents=True, exist_ok=True)
            _install([sys.executable, "-m", "venv", str(root)], root, f"a venv for {name}")
            _install([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", "--no-input", f"{name}=={version}"],
                     root, f"{name}=={version} from PyPI")
            (root / MARKER).write_text(f"{name}=={version}\n")
    return root / "bin"


def npm_package(name: str, version: str) -> Path:
    """The folder of ``name@version`` installed from npm into the cache (built once)."""
    root = cache_root() / "npm" / f"{name}-{version}"
    if (root / MARKER).exists():
        return root / "node_modules" / name
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise PeerUnavailable("node and npm are not installed")
    with _locked(f"npm-{name}-{version}"):
        if not (root / MARKER).exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            _install(["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund",
                      "--loglevel=error", f"{name}@{version}"], root, f"npm {name}@{version}")
            (root / MARKER).write_text(f"{name}@{version}\n")
    return root / "node_modules" / name


def demo_stream(tap: str, records: int, seed: int = 1, account: str = "bench") -> Path:
    """A recorded Singer stream of a demo tap (SCHEMA, RECORDs, STATEs), cached as a file."""
    path = cache_root() / "streams" / f"{tap}-{account}-{records}-s{seed}.singer"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = path.with_suffix(".config.json")
    cfg.write_text(f'{{"account": "{account}", "records": {records}, "seed": {seed}}}')
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with open(tmp, "wb") as out:
        subprocess.run([sys.executable, "-m", "engine.demo_taps", tap, "--config", str(cfg)], cwd=REPO,
                       stdout=out, stderr=subprocess.DEVNULL, check=True)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Timing:
    """Wall seconds and CPU seconds (user + system) of one measured piece of work."""

    wall: float
    cpu: float


def children_cpu() -> float:
    """CPU seconds of every reaped child process so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu() -> float:
    """CPU seconds of this process (all its threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed_run(cmd: list[str], **kwargs: object) -> tuple[Timing, subprocess.CompletedProcess[bytes]]:
    """Run a command to completion; its wall time and the CPU time of it and its children."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    res = subprocess.run(cmd, **kwargs)  # type: ignore[call-overload]
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    return Timing(wall, cpu), res


def timed(fn: Callable[[], object]) -> Timing:
    """Wall and CPU time (this process, all threads) of ``fn()``."""
    cpu0, t0 = self_cpu(), time.perf_counter()
    fn()
    return Timing(time.perf_counter() - t0, self_cpu() - cpu0)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """One line about the machine and its load right now."""
    la = os.getloadavg()
    return (f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
            f"load average {la[0]:.1f} {la[1]:.1f} {la[2]:.1f}, {time.strftime('%Y-%m-%d %H:%M %Z')}")


def header(title: str) -> None:
    """Print a benchmark's title and the machine line."""
    print(f"\n=== {title} ===", flush=True)
    print(machine_line(), flush=True)


def report(label: str, timing: Timing, records: int, nbytes: int | None = None) -> None:
    """One measured row: wall and CPU seconds, records/s, MB/s (on the wall clock)."""
    mb = f"  {nbytes / 1e6 / timing.wall:8.1f} MB/s" if nbytes else ""
    print(f"  {label:<44} wall {timing.wall:7.2f}s  cpu {timing.cpu:7.2f}s  "
          f"{records / timing.wall:10,.0f} rec/s{mb}", flush=True)


def goal(name: str, value: float, target: float, *, higher_is_better: bool = True, unit: str = "x") -> bool:
    """Print ``ratio NAME: VALUE (goal >= / <= TARGET) met|MISSED``; return whether it was met."""
    met = value >= target if higher_is_better else value <= target
    op = ">=" if higher_is_better else "<="
    print(f"ratio {name}: {value:.2f}{unit} (goal {op} {target:g}{unit}) {'met' if met else 'MISSED'}",
          flush=True)
    return met


def skip(what: str, reason: str) -> None:
    """Print why a comparison was skipped (a peer could not be installed)."""
    print(f"skipped {what}: {reason}", flush=True)


@dataclass
class PipelineRun:
    """One ``lorchestra run`` as a subprocess: its wall and CPU time and its final events."""

    timing: Timing
    finished: list[dict[str, object]]
    exit_code: int

    def stage_sum(self, stage: str, key: str) -> float:
        """Sum of a numeric field over the stage's final events."""
        return sum(float(e.get(key) or 0) for e in self.finished if e["stage"] == stage)

    def stage_max(self, stage: str, key: str) -> float:
        """Largest value of a numeric field over the stage's final events."""
        return max((float(e.get(key) or 0) for e in self.finished if e["stage"] == stage), default=0.0)


def run_pipeline(config: Path, workspace: Path, env: dict[str, str] | None = None) -> PipelineRun:
    """``lorchestra run --json`` (every stage) on a config, in a fresh workspace."""
    import json

    base = {k: v for k, v in os.environ.items() if not k.startswith("LORCH_")}
    base.update(env or {})
    timing, res = timed_run([sys.executable, "-m", "lorch_tui.cli", "run", "--json", "--config", str(config),
                             "--workspace", str(workspace)], cwd=REPO, env=base, capture_output=True)
    finished = []
    for line in res.stdout.splitlines():
        if line.startswith(b"{"):
            event = json.loads(line)
            if event.get("type") == "task_finished":
                finished.append(event)
    if res.returncode != 0:
        failed = [(e["task_id"], e.get("error_code")) for e in finished if e["status"] not in ("success", "skipped")]
        raise SystemExit(f"lorchestra run failed (exit {res.returncode}): {failed} {res.stderr.decode()[-1500:]}")
    return PipelineRun(timing, finished, res.returncode)


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    ticks = [int(x) for x in fields]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is in user)
    return busy / hz, idle / hz
