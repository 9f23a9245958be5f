"""bench/volume.py: a large removal is stamped, and a benchmark started soon after waits.

On ext4 without a journal, file creation stays slow for minutes after a mass deletion
(bench/volume.py says why); the benchmarks stamp their own large removals and wait them out.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench import volume


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LORCH_BENCH_SETTLE_S", raising=False)
    return tmp_path


def _tree(root: Path, files: int) -> Path:
    for i in range(files):
        leaf = root / f"{i % 7}"
        leaf.mkdir(parents=True, exist_ok=True)
        (leaf / f"{i}.json").write_bytes(b"{}")
    return root


def test_a_small_removal_is_not_stamped(cache: Path) -> None:
    freed = volume.remove_tree(_tree(cache / "small", 40), large=1000)
    assert not (cache / "small").exists()
    assert freed >= 40
    assert volume.last_removal() is None
    assert volume.settle(window_s=30) == 0


def test_a_large_removal_makes_the_next_settle_wait(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = time.time()
    freed = volume.remove_tree(_tree(cache / "large", 60), large=50)
    assert freed >= 60 and not (cache / "large").exists()
    stamp = volume.last_removal()
    assert stamp is not None and before - 1 <= stamp <= time.time() + 1
    started = time.monotonic()
    waited = volume.settle(window_s=1.5)
    assert 0 < waited <= 1.5 + 0.01  # the stamp is read back from a file: a clock tick of slack
    assert time.monotonic() - started >= waited - 0.05
    assert "removed a large tree" in capsys.readouterr().out
    assert volume.settle(window_s=0) == 0


def test_the_environment_turns_the_wait_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volume.remove_tree(_tree(cache / "large", 60), large=50)
    monkeypatch.setenv("LORCH_BENCH_SETTLE_S", "0")
    assert volume.settle() == 0


def test_a_missing_tree_is_nothing(cache: Path) -> None:
    assert volume.remove_tree(cache / "absent") == 0
    assert volume.last_removal() is None
