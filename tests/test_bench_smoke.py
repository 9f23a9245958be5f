"""Smoke test of the benchmarks: each runs at a tiny size and prints its ratio lines.

No figure is checked (timings on a shared machine are not test material); only that every
benchmark runs to the end through ``python -m bench --quick --only NAME`` and reports each of
its goals as ``ratio NAME: VALUE (goal ...) met|MISSED``. A comparison whose peer could not be
installed (PyPI target-jsonl, npm jsonata) is skipped with the benchmark's reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO, clean_env

RATIO = re.compile(r"^ratio (.+): -?[\d.]+(x|%|s| docs/s) \(goal (>=|<=) [\d.]+(x|%|s| docs/s)\) (met|MISSED)$", re.M)


def run_bench(name: str) -> str:
    res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", name], cwd=REPO, env=clean_env(),
                         capture_output=True, text=True, timeout=280)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "=== summary (quick" in res.stdout
    return res.stdout


def ratios(out: str) -> list[str]:
    return [m.group(1) for m in RATIO.finditer(out)]


def skip_if_peer_missing(out: str, peer: str) -> None:
    m = re.search(rf"^skipped {re.escape(peer)}: (.*)$", out, re.M)
    if m:
        pytest.skip(f"{peer} could not be installed: {m.group(1)}")


def test_vault_writer_bench() -> None:
    out = run_bench("vault_writer")
    assert "vault time / gzip -1 time" in ratios(out)
    assert "in-process writer, isal, background gzip" in out
    skip_if_peer_missing(out, "target-jsonl")
    assert "vault throughput / target-jsonl" in ratios(out)


def test_canonize_bench() -> None:
    out = run_bench("canonize")
    assert "canonize 2 workers / 1 worker (throughput)" in ratios(out)
    assert "Gmail (email/gmail_to_canonical_v1)" in out
    skip_if_peer_missing(out, "npm jsonata")
    assert "canonize per core / npm jsonata per core" in ratios(out)
    m = re.search(r"^outputs match: (\d+)/(\d+)$", out, re.M)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) > 0, "both engines must give the same output"


def test_end_to_end_bench() -> None:
    out = run_bench("e2e")
    names = ratios(out)
    assert any(r.startswith("e2e orchestration overhead") for r in names)
    assert any(r.startswith("e2e wall for 1,000,000 records") for r in names)
    assert "e2e largest worker peak RSS / 200 MiB" in names
    assert re.search(r"^  canonize +cpu +[\d.]+s", out, re.M)
    skip_if_peer_missing(out, "target-jsonl")
    assert "e2e pipeline vs target-jsonl (wall)" in names
    m = re.search(r"^  PyPI target-jsonl .* ([\d,]+) records landed$", out, re.M)
    extracted = re.search(r"records extracted: ([\d,]+)$", out, re.M)
    assert m and extracted and m.group(1) == extracted.group(1) != "0"


def test_memory_bench() -> None:
    out = run_bench("memory")
    names = ratios(out)
    for stage in ("extract", "canonize", "index"):
        assert any(r.startswith(f"memory {stage} peak RSS") for r in names), out[-2000:]


def test_search_bench() -> None:
    out = run_bench("search")
    names = ratios(out)
    for goal in ("search paraphrase recall@10 hybrid minus bm25", "search keyword recall@10 hybrid minus bm25",
                 "search embedding speed vs 20k documents/s/core", "search index throughput drop with embeddings"):
        assert goal in names, out[-3000:]
    assert any(n.startswith("search hybrid query p95 vs 50 ms") for n in names)
    assert re.search(r"^paraphrase +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M)


def test_workspace_bench() -> None:
    """bench/workspace.py builds (or reuses) a tiny cached workspace and times each command."""
    out = run_bench("workspace")
    for name in ("status", "list extractors", "validate --quick", "run --dry-run", "run start"):
        assert f"{name} seconds" in ratios(out), name
    for name in ("validate (full)", "clean --all --dry-run", "query --kind email", "query --counts"):
        assert re.search(rf"^  {re.escape(name)} \(no goal\) +wall +[\d.]+s +cpu +[\d.]+s +\(exit 0\)$", out, re.M), name
    assert re.search(r"^  run: first task_started +wall +[\d.]+s +cpu +[\d.]+s", out, re.M), out[-3000:]


def test_dashboard_bench() -> None:
    """The dashboard bench ends (it once hung, idle, on a key the app never handled) and reports
    the flood's key latency, the first paint and the key-to-run-start on a (tiny) workspace."""
    out = run_bench("dashboard")
    names = ratios(out)
    assert "dashboard key-to-handler p95 / 50 ms at 10,000 events/s" in names, out[-3000:]
    assert "dashboard key-to-screen p95 / 50 ms at 10,000 events/s" in names, out[-3000:]
    assert "dashboard first paint seconds (app start to first screen)" in names, out[-3000:]
    if shutil.which("tmux"):  # the real lorch-tui in a terminal
        assert "dashboard first screen from process start seconds (real lorch-tui)" in names, out[-3000:]
    assert "dashboard key to run shown seconds" in names, out[-3000:]
    assert re.search(r"^  key -> handler \(n= *\d+\)", out, re.M)
    assert "STUCK" not in out


def test_dashboard_flood_on_a_workspace() -> None:
    """``--flood-on-workspace``: the flood with the dashboard opened (and watched) on the cached
    bench workspace, so the key latency can be taken on the 1,000,000-document one."""
    res = subprocess.run([sys.executable, "-m", "bench.dashboard", "--flood-on-workspace", "--no-start",
                          "--docs", "300", "--accounts", "1", "--seconds", "1", "--samples", "10",
                          "--timeout", "240"], cwd=REPO, env=clean_env(), capture_output=True, text=True,
                         timeout=280)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    assert "on a workspace of 300 documents" in out, out[-3000:]
    assert "dashboard key-to-screen p95 / 50 ms at 10,000 events/s" in ratios(out), out[-3000:]
    assert re.search(r"^  events applied +[\d,]+ of [\d,]+ ", out, re.M), out[-3000:]
    assert "naive" not in out and "STUCK" not in out


def test_index_bench() -> None:
    out = run_bench("index")
    assert {"index first load, documents/s", "index unchanged rerun, documents/s"} <= set(ratios(out))
    for label in ("a. project first load", "b. project unchanged rerun (diff)", "b2. --force, objects re-checked",
                  "c. naive: file per doc", "d. (a) with packed objects (bench)"):
        assert label in out
    # the packed prototype read a sample of its objects back and checked their sha256 (or exited)
    assert re.search(r"^packed objects \(prototype, not the product's layout\): [\d,]+ documents/s, "
                     r"[\d.]+x naive", out, re.M), out[-3000:]
