"""Nothing can hang the nightly run: per-record transform limits, per-task wall clocks and
worker memory caps, each with its stable code, with the workspace lock released after.

Every scenario runs the real CLI with real worker subprocesses on a copy of the bundled
registry whose gmail transform is replaced by a hostile one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import REPO, demo_extractor, log_events, run_cli, write_config

LOOP = "($loop := function($x){ $x > 0 ? $loop($x+1) : 0 }; $loop(1))"
DEEP = "($f := function($n){ $n <= 0 ? 0 : 1 + $f($n - 1) }; $f(100000))"
HOG = '$pad("x", 1000000000)'
MAP_HOG = "$count($map([1..10000000], function($v){[1..1000]}))"


def setup(tmp: Path, expression: str, **canonize: Any) -> Path:
    t = shutil.copytree(REPO / "config" / "transforms", tmp / "reg" / "transforms")
    s = shutil.copytree(REPO / "config" / "schemas", tmp / "reg" / "schemas")
    ex = demo_extractor("mail", "gmail", records=3)
    maps = [{"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"}]
    cfg = write_config(tmp, [ex], stages={"canonize": {"mappings": maps, "transforms_dir": str(t),
                                                       "schemas_dir": str(s), **canonize}})
    assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0
    (t / "email" / "gmail_to_canonical_v1.jsonata").write_text(expression)
    return cfg


def canonize_final(tmp: Path) -> dict[str, Any]:
    finals = [e for e in log_events(tmp / "ws") if e["type"] == "task_finished" and e["stage"] == "canonize"]
    assert finals
    return finals[-1]


def assert_lock_free(cfg: Path) -> None:
    """Another writer gets the workspace at once (exit 3 would mean a worker still holds it)."""
    res = run_cli("clean", "--stage", "canonize", "--yes", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr


def test_endless_loop_stops_with_transform_timeout(tmp_path: Path) -> None:
    cfg = setup(tmp_path, LOOP, transform_timeout_ms=300)
    start = time.monotonic()
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 1, res.stdout + res.stderr
    assert time.monotonic() - start < 30, "one record's budget, not one per record"
    final = canonize_final(tmp_path)
    assert (final["status"], final["error_code"]) == ("failed", "TRANSFORM_TIMEOUT")
    rejects = tmp_path / "ws" / "canonical" / "gmail" / "mail.rejects.jsonl"
    assert final["detail_path"] == str(rejects)
    lines = [orjson.loads(x) for x in rejects.read_bytes().splitlines()]
    assert [x["code"] for x in lines] == ["TRANSFORM_TIMEOUT"], "stops at the first record"
    assert not (tmp_path / "ws" / "canonical" / "gmail" / "mail.jsonl").exists()
    assert "TRANSFORM_TIMEOUT" in res.stdout
    assert_lock_free(cfg)


def test_deep_recursion_stops_with_transform_too_deep(tmp_path: Path) -> None:
    cfg = setup(tmp_path, DEEP, transform_max_depth=200)
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=60)
    assert res.returncode == 1
    final = canonize_final(tmp_path)
    assert (final["status"], final["error_code"]) == ("failed", "TRANSFORM_TOO_DEEP")


@pytest.mark.parametrize("expression", [HOG, MAP_HOG])
def test_worker_over_its_memory_cap(tmp_path: Path, expression: str) -> None:
    cfg = setup(tmp_path, expression, memory_limit_mb=512, transform_timeout_ms=60_000)
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    final = canonize_final(tmp_path)
    assert (final["status"], final["error_code"]) == ("failed", "WORKER_OUT_OF_MEMORY")
    assert final.get("peak_rss_kb", 0) < 600 * 1024
    assert_lock_free(cfg)


def test_task_wall_clock_stops_a_stage_and_releases_the_lock(tmp_path: Path) -> None:
    # the per-record budget is far away; the task's own wall clock must stop it
    cfg = setup(tmp_path, LOOP, transform_timeout_ms=600_000, timeout_s=1.5)
    start = time.monotonic()
    res = run_cli("run", "--stage", "canonize", "--config", str(cfg), timeout=90)
    assert res.returncode == 1, res.stdout + res.stderr
    assert time.monotonic() - start < 45
    final = canonize_final(tmp_path)
    assert (final["status"], final["error_code"]) == ("timeout", "TIMEOUT")
    assert_lock_free(cfg)


def test_validate_runs_samples_under_the_limits(tmp_path: Path) -> None:
    cfg = setup(tmp_path, LOOP, transform_timeout_ms=300)
    res = run_cli("validate", "--config", str(cfg), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "TRANSFORM_TIMEOUT" in res.stdout and "all checks passed" not in res.stdout


def test_validate_names_a_memory_hog(tmp_path: Path) -> None:
    cfg = setup(tmp_path, HOG, memory_limit_mb=512, transform_timeout_ms=60_000)
    res = run_cli("validate", "--config", str(cfg), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "WORKER_OUT_OF_MEMORY" in res.stdout


def test_validate_passes_the_bundled_transforms(tmp_path: Path) -> None:
    cfg = setup(tmp_path, (REPO / "config/transforms/email/gmail_to_canonical_v1.jsonata").read_text())
    res = run_cli("validate", "--config", str(cfg), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "limits" in res.stdout


@pytest.mark.parametrize("limit_mb", [512, 1024])
def test_a_small_cap_leaves_room_for_transform_run_and_validate_s_probe(tmp_path: Path, limit_mb: int) -> None:
    """At 512 or 1024 MiB the canonize task worked, but `transform run` said a good transform
    "does not compile" and validate's probe called a recursion WORKER_CRASHED: both capped
    themselves after the JSONata engine had reserved about 1 GiB of address space. Capped
    first now, as the worker is, they say what the task says."""
    good = (REPO / "config/transforms/email/gmail_to_canonical_v1.jsonata").read_text()
    cfg = setup(tmp_path, good, memory_limit_mb=limit_mb)
    sample = REPO / "config/transforms/email/samples"
    record = sample / "gmail_to_canonical_v1__alternative.json"
    res = run_cli("transform", "run", "email/gmail_to_canonical_v1", str(record), "--config", str(cfg), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert orjson.loads(res.stdout)["kind"] == "email"
    (tmp_path / "reg" / "transforms" / "email" / "gmail_to_canonical_v1.jsonata").write_text(DEEP)
    res = run_cli("validate", "--config", str(cfg), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "TRANSFORM_TOO_DEEP" in res.stdout and "WORKER_CRASHED" not in res.stdout
