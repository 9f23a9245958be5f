"""A projection after the first one, on a workspace of some size, must succeed.

Session 19's comparison of links with the previous projection's (LINKS_MOVED) wrote its
tables into the scratch database inside the tables' transaction. Once those pages spilled
from SQLite's cache, the writer held the scratch file's exclusive lock, and the measures'
own connection to the same file (reading the measurement links in that transaction) gave up
after 5 s: every projection after the first failed ``INDEX_DB_ERROR`` at 2,000 demo records
per account (a dashboard reviewer's `p`), while the small workspaces of the other tests
never spilled. Real demo taps, the real CLI, a size where it failed.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from tests.helpers import clean_env, demo_subset_config, run_cli

KEEP = tuple(e["name"] for e in yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "demo.yaml")
                                               .read_text())["extractors"])
"""Every demo account: 21,000 links at 2,000 records each (a subset stayed in the cache)."""


def _project(cfg: Path, ws: Path, *args: str) -> dict[str, object]:
    res = run_cli("run", "--json", "--workspace", str(ws), "--config", str(cfg), *args,
                  env=clean_env(LORCH_DEMO_RECORDS="2000"), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    (done,) = [e for e in map(orjson.loads, res.stdout.splitlines())
               if e["type"] == "task_finished" and e["stage"] == "project"]
    return done


def test_a_forced_reprojection_of_thousands_of_documents_succeeds(tmp_path: Path) -> None:
    cfg = demo_subset_config(tmp_path, KEEP)
    ws = tmp_path / "ws"
    first = _project(cfg, ws)
    assert first["status"] == "success" and int(first["records"]) > 10_000, first  # type: ignore[call-overload]
    again = _project(cfg, ws, "--stage", "project", "--force")
    assert again["status"] == "success", again
    assert again["records"] == first["records"]
    assert not list((ws / "vector-store").glob("*moves*")), "the comparison's database is removed"
