"""The index's object writer makes folders only when they are missing; workers run numpy single-threaded.

Both are session 7's cuts in the index stage's system time (docs/index.md section 6): a
``mkdir`` answered ``EEXIST`` per object, and OpenBLAS threads started in every worker.
Real files in a real folder; a real interpreter for the worker's environment.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.index.objects import ObjectWriter
from engine.index.store import object_path
from tests.helpers import REPO, clean_env, store_objects
from tests.helpers import object_batch as _objects


def _write(root: Path, objects: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch) -> int:
    """Write through a real ObjectWriter; the number of mkdir calls it made."""
    calls = 0
    real = os.mkdir

    def counting(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", counting)
    try:
        writer = store_objects(ObjectWriter(root, threads=0), objects)
    finally:
        monkeypatch.setattr(os, "mkdir", real)
    assert writer.written == len(objects)
    return calls


def test_a_fresh_store_gets_each_folder_once_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "objects"
    root.mkdir(mode=0o700)
    objects = _objects(600, "a")
    leaves = {sha[:4] for sha, _ in objects}
    tops = {sha[:2] for sha, _ in objects}
    calls = _write(root, objects, monkeypatch)
    assert len(leaves) + len(tops) <= calls <= 2 * len(leaves)
    for sha, data in objects:
        path = object_path(root, sha)
        assert path.read_bytes() == data
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_objects_in_existing_folders_make_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "objects"
    objects = _objects(400, "b")
    for sha, _ in objects:
        object_path(root, sha).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    assert _write(root, objects, monkeypatch) == 0
    assert all(object_path(root, sha).read_bytes() == data for sha, data in objects)


def _worker_math(env: dict[str, str], stage: str = "index") -> list[str]:
    code = (f"import os; from engine.run.worker import single_threaded_math; single_threaded_math({stage!r}); "
            "import numpy; print(os.environ.get('OPENBLAS_NUM_THREADS', '-'), len(os.listdir('/proc/self/task')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    return res.stdout.split()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_worker_imports_numpy_without_blas_threads() -> None:
    env = clean_env()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    assert _worker_math(env) == ["1", "1"]


def test_a_blas_setting_of_the_user_wins() -> None:
    assert _worker_math(clean_env(OPENBLAS_NUM_THREADS="2"))[0] == "2"


def test_an_extract_worker_leaves_the_taps_environment_alone() -> None:
    env = clean_env()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    assert _worker_math(env, stage="extract")[0] == "-"
