"""bench/project_check.py: the project stage's peak-RSS run and its result dump.

The dump is how a memory change proves it kept every result (docs/performance.md, "Peak
memory of the project task"), so it must be deterministic across runs and cover every
client table and chart file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, clean_env


def _run(work: Path, out: Path) -> str:
    res = subprocess.run([sys.executable, "-m", "bench.project_check", "--dir", str(work),
                          "--documents", "400", "--clients", "20", "--dump", str(out)],
                         cwd=REPO, env=clean_env(LORCH_BENCH_SETTLE_S="0"), capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res.stdout


def test_dump_is_deterministic_and_covers_tables_and_charts(tmp_path: Path) -> None:
    first = _run(tmp_path / "w", tmp_path / "a.txt")
    assert re.search(r"^project: 400 documents, peak RSS \d+ MiB \(task \d+, helpers \d+\), [\d.]+ CPU-s", first, re.M), first
    _run(tmp_path / "w", tmp_path / "b.txt")  # reuses the index, a forced rerun
    a = (tmp_path / "a.txt").read_text()
    assert a == (tmp_path / "b.txt").read_text()
    sections = dict(re.findall(r"^## (.+) (\d+)$", a, re.M))
    assert int(sections["clients"]) == 20
    assert int(sections["client_links"]) > 0 and int(sections["client_unlinked"]) > 0
    assert int(sections["charts"]) == 20 * 5  # client, timeline, sessions, billing, measures
    assert {"client_keys", "client_conflicts", "measures files"} <= set(sections)
