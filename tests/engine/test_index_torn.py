"""Object files of the index: created straight under their final name, repaired when torn.

The loader creates each object with ``O_CREAT | O_EXCL`` under ``objects/ab/cd/<sha256>.json``
(no temporary file), so a killed load can leave a half-written file under a real name. These
tests plant such files (and a symlink, and a complete object) and kill a real loader process
in the middle of its writes, then check that readers stayed on the old set, that the next load
repairs every torn object, and that ``sha256sum`` of every object equals its name.
"""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.index import load
from engine.index.store import object_path
from engine.store.workspace import Workspace
from tests.helpers import REPO, clean_env, exit_code, wait_for

SOURCE, ACCOUNT = "notes", "pad"


def _doc(i: int, version: int) -> dict[str, Any]:
    return {"kind": "note", "source": SOURCE, "account": ACCOUNT, "source_id": f"n{i}",
            "title": f"note {i} v{version}", "created": "2024-05-01T08:00:00Z",
            "text": f"version {version} of note {i} " + "words " * 40}


def _write(ws: Path, count: int, version: int) -> list[bytes]:
    base = ws / "canonical" / SOURCE
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [orjson.dumps(_doc(i, version), option=orjson.OPT_SORT_KEYS) + b"\n" for i in range(count)]
    data = b"".join(lines)
    (base / f"{ACCOUNT}.jsonl").write_bytes(data)
    meta = {"inputs": {"run": {"dt": "2024-01-01", "run_id": f"2024010{version}T000000Z"}, "transforms": {}},
            "output": {"sha256": hashlib.sha256(data).hexdigest(), "records": count}}
    (base / f"{ACCOUNT}.meta.json").write_bytes(orjson.dumps(meta))
    return lines


def _sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _load(ws: Path) -> load.LoadResult:
    return load.AccountLoader(Workspace(ws), SOURCE, ACCOUNT, vectors=False).run()


def _objects(ws: Path) -> dict[str, Path]:
    return {p.name.removesuffix(".json"): p for p in (ws / "vector-store" / "objects").glob("*/*/*.json")}


def _bad_objects(ws: Path) -> list[str]:
    """Names of object files whose sha256 is not their name (or that are not regular files)."""
    return [name for name, p in _objects(ws).items()
            if p.is_symlink() or hashlib.sha256(p.read_bytes()).hexdigest() != name]


def _committed(ws: Path) -> tuple[str | None, set[str]]:
    """The account row's canonical sha256 and the sha256 of every committed document."""
    con = sqlite3.connect(f"file:{ws / 'vector-store' / 'index.sqlite'}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT canonical_sha256 FROM accounts WHERE source = ? AND account = ?",
                          (SOURCE, ACCOUNT)).fetchone()
        shas = {r[0] for r in con.execute("SELECT sha256 FROM documents")}
    finally:
        con.close()
    return (row[0] if row else None), shas


def test_torn_planted_and_complete_objects(tmp_path: Path) -> None:
    """Files already under an object's name: a complete one is kept (same inode), a torn, an
    empty and a symlinked one are replaced by the right bytes; no temporary file stays."""
    ws = tmp_path / "ws"
    lines = _write(ws, 6, 1)
    objects = ws / "vector-store" / "objects"
    paths = [object_path(objects, _sha(line)) for line in lines]
    for p in paths[:4]:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths[0].write_bytes(lines[0])                 # complete: kept
    paths[1].write_bytes(lines[1][:17])            # torn by a kill mid-write
    paths[2].write_bytes(b"")                      # created, never written
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not yours")
    paths[3].symlink_to(outside)                   # planted: must not be followed
    kept_inode = paths[0].stat().st_ino

    result = _load(ws)

    assert (result.status, result.documents) == ("success", 6)
    assert result.objects_written == 5  # every object but the complete one
    assert paths[0].stat().st_ino == kept_inode
    assert outside.read_bytes() == b"not yours"
    assert not paths[3].is_symlink()
    assert set(_objects(ws)) == {_sha(line) for line in lines}
    assert _bad_objects(ws) == []
    assert [p.name for p in objects.rglob(".*")] == []
    for p in paths[1:]:  # written by the loader (the kept one is left exactly as it was)
        assert (p.stat().st_mode & 0o777) == 0o600


def test_an_object_write_error_leaves_no_partial_file(tmp_path: Path) -> None:
    """A write that fails (here: the object's folder is a file) fails the load with no row."""
    ws = tmp_path / "ws"
    lines = _write(ws, 3, 1)
    bad = object_path(ws / "vector-store" / "objects", _sha(lines[1])).parent
    bad.parent.mkdir(parents=True, mode=0o700)
    bad.write_bytes(b"")  # ab/cd is a file: the object cannot be created
    with pytest.raises(OSError):
        _load(ws)
    assert not (ws / "vector-store" / "index.sqlite").exists() or _committed(ws) == (None, set())
    bad.unlink()
    assert _load(ws).documents == 3
    assert _bad_objects(ws) == []


LOADER = """
import sys
from pathlib import Path
from engine.index.load import AccountLoader
from engine.store.workspace import Workspace
AccountLoader(Workspace(Path(sys.argv[1])), "notes", "pad", vectors=False).run()
"""


def test_a_load_killed_while_writing_objects(tmp_path: Path) -> None:
    """SIGKILL a real loader while its objects are being written: readers keep the old set
    (every committed object complete), and the next load repairs torn files and commits."""
    ws = tmp_path / "ws"
    old_lines = _write(ws, 50, 1)
    _load(ws)
    old_sha = hashlib.sha256(b"".join(old_lines)).hexdigest()
    new_lines = _write(ws, 30_000, 2)
    old_objects = set(_objects(ws))
    proc = subprocess.Popen([sys.executable, "-c", LOADER, str(ws)], cwd=REPO, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: proc.poll() is not None or len(_objects(ws)) >= len(old_objects) + 1000,
                 timeout=120, what="the loader to write a thousand objects")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, "the loader finished before it was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    canonical_sha, committed = _committed(ws)
    assert canonical_sha == old_sha, "a reader saw rows of the killed load"
    assert committed == {_sha(line) for line in old_lines}
    present = _objects(ws)
    assert all(hashlib.sha256(present[s].read_bytes()).hexdigest() == s for s in committed)
    written = [s for s in present if s not in old_objects]
    assert written, "the kill came before any object was written"
    for s in written[:5]:  # as if the kill (or a power cut before the flush) tore them
        data = present[s].read_bytes()
        present[s].write_bytes(data[: len(data) // 2])

    result = _load(ws)

    assert (result.status, result.documents) == ("success", 30_000)
    canonical_sha, committed = _committed(ws)
    assert canonical_sha == hashlib.sha256(b"".join(new_lines)).hexdigest()
    assert committed == {_sha(line) for line in new_lines}
    assert set(_objects(ws)) == committed  # the old account's objects were collected
    assert _bad_objects(ws) == []
    assert 5 <= result.objects_written <= 30_000


CANCELLABLE = """
import faulthandler, signal, sys
from pathlib import Path
from engine import cancel
from engine.index.load import AccountLoader
from engine.store.workspace import Workspace

faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks for a failure message
try:
    with cancel.on_sigterm():  # as the index worker does
        AccountLoader(Workspace(Path(sys.argv[1])), "notes", "pad", vectors=False).run()
except cancel.Cancelled:
    sys.exit(42)
"""


def test_a_cancelled_reload_rolls_back_with_its_insert_thread_and_scratch(tmp_path: Path) -> None:
    """SIGTERM (the engine's cancel, engine/cancel.py, as the index worker installs it) in the
    middle of a reload: the transaction rolls back while the insert thread is busy, the
    scratch file goes, readers keep the old set, and the next load commits the new one."""
    ws = tmp_path / "ws"
    old_lines = _write(ws, 2_000, 1)
    _load(ws)
    new_lines = _write(ws, 30_000, 2)
    old_objects = set(_objects(ws))
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:  # a file, not a pipe no one reads while the child runs
        proc = subprocess.Popen([sys.executable, "-c", CANCELLABLE, str(ws)], cwd=REPO, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: proc.poll() is not None or len(_objects(ws)) >= len(old_objects) + 1000,
                 timeout=120, what="the loader to write a thousand objects")
        proc.send_signal(signal.SIGTERM)
        assert exit_code(proc, stderr, timeout=120) == 42, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not list((ws / "vector-store").glob(".load-*")), "the scratch file is removed on a cancel"
    canonical_sha, committed = _committed(ws)
    assert canonical_sha == hashlib.sha256(b"".join(old_lines)).hexdigest()
    assert committed == {_sha(line) for line in old_lines}
    result = _load(ws)
    assert (result.status, result.documents, result.deleted) == ("success", 30_000, 2_000)
    assert _committed(ws)[1] == {_sha(line) for line in new_lines}
