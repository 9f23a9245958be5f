"""The object writer's helper process: the same files as the threads, its errors, its lifetime.

A first load hands its object batches beyond the first few to a helper process
(``engine/index/objproc.py``), so the files are created without waiting for the worker's GIL
(docs/index.md section 6). Real processes, real files: what it writes must be exactly what the
threads write (names, bytes, modes, repairs of torn files), an error in it must reach the
worker as the same ``OSError`` (so ``DISK_FULL`` keeps its meaning), and it must never outlive
the worker that started it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.index import objproc
from engine.index.objects import ObjectWriter
from engine.index.store import object_path
from tests.helpers import REPO, clean_env, exit_code, object_batch, store_objects, wait_for


def _objects(n: int, salt: str) -> list[tuple[str, bytes]]:
    return object_batch(n, salt, pad=300)


def _store(root: Path, objects: list[tuple[str, bytes]], **kwargs: object) -> ObjectWriter:
    root.mkdir(mode=0o700, exist_ok=True)
    writer: ObjectWriter = store_objects(ObjectWriter(root, **kwargs), objects)  # type: ignore[arg-type]
    return writer


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: relative path -> (bytes, mode); folders must be 0700."""
    out = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        else:
            out[str(path.relative_to(root))] = (path.read_bytes(), mode)
    return out


def test_a_large_load_goes_through_the_helper_and_writes_what_threads_write(tmp_path: Path) -> None:
    objects = _objects(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + 3) + 17, "big")
    by_helper = _store(tmp_path / "helper", objects)
    by_threads = _store(tmp_path / "threads", objects, process=False)
    assert (by_helper.helpers_started, by_threads.helpers_started) == (1, 0)
    assert by_helper.written == by_threads.written == len(objects)
    assert by_helper.bytes == by_threads.bytes == sum(len(d) for _, d in objects)
    tree = _tree(tmp_path / "helper")
    assert tree == _tree(tmp_path / "threads")
    assert len(tree) == len(objects)
    assert all(mode == 0o600 for _, mode in tree.values())
    assert all(hashlib.sha256(data).hexdigest() == Path(name).stem for name, (data, _) in tree.items())


def test_a_small_load_starts_no_helper(tmp_path: Path) -> None:
    objects = _objects(ObjectWriter.BATCH * ObjectWriter.PROCESS_AFTER, "small")
    writer = _store(tmp_path / "objects", objects)
    assert writer.helpers_started == 0
    assert writer.written == len(objects)


def test_the_helper_repairs_torn_objects_and_keeps_complete_ones(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    objects = _objects(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + 2), "torn")
    late = objects[-5:]  # in the helper's batches
    for sha, data in late[:3]:
        path = object_path(root, sha)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(data[: len(data) // 2])
    kept = object_path(root, late[3][0])
    kept.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept.write_bytes(late[3][1])
    kept_inode = kept.stat().st_ino

    writer = _store(root, objects)

    assert writer.helpers_started == 1
    assert writer.repaired == 3
    assert writer.written == len(objects) - 1  # the complete one is kept, not counted
    assert kept.stat().st_ino == kept_inode
    assert all(object_path(root, sha).read_bytes() == data for sha, data in objects)
    assert [p.name for p in root.rglob(".*")] == []  # no temporary file left


def test_an_error_in_the_helper_is_the_workers_oserror(tmp_path: Path) -> None:
    """An object the helper cannot create (its ``ab/cd`` folder is a file) fails ``finish``
    with that errno, and the helper is gone."""
    root = tmp_path / "objects"
    objects = _objects(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + 2), "err")
    leaf = object_path(root, objects[-1][0]).parent
    leaf.parent.mkdir(parents=True, mode=0o700)
    leaf.write_bytes(b"")
    writer = ObjectWriter(root)
    try:
        for sha, data in objects:
            writer.write(sha, data)
        with pytest.raises(OSError) as caught:
            writer.finish(sync=False)
        assert caught.value.errno in (errno.ENOTDIR, errno.EEXIST)
        assert writer.helpers_started == 1
    finally:
        writer.close()
    assert writer._helper is None  # waited for, not left running
    assert not list(root.rglob(f".*{os.getpid()}"))


HOLDER = """
import hashlib, os, sys, time
from pathlib import Path
from engine.index import objproc
from engine.index.objects import ObjectWriter
w = ObjectWriter(Path(sys.argv[1]))
for i in range(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + 1)):
    d = b'{"n":%d}\\n' % i
    w.write(hashlib.sha256(d).hexdigest(), d)
w.write("0" * 64, b"x")  # the next batch starts; the helper is running
print(w._helper.proc.pid, flush=True)
time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")
def test_the_helper_dies_with_its_worker(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    root.mkdir(mode=0o700)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], cwd=REPO, env=clean_env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        helper = int(proc.stdout.readline())
        assert not _gone(helper)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_for(lambda: _gone(helper), timeout=10, what="the helper to die with its worker")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_closing_without_finish_stops_the_helper(tmp_path: Path) -> None:
    """An error or a cancel in the worker abandons the writes: the helper is killed and reaped."""
    root = tmp_path / "objects"
    root.mkdir(mode=0o700)
    writer = ObjectWriter(root)
    for sha, data in _objects(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + ObjectWriter.PENDING), "close"):
        writer.write(sha, data)  # batches still queued for the pipe when close comes
    helper = writer._helper
    assert helper is not None and helper.proc is not None
    pid = helper.proc.pid
    writer.close()
    assert _gone(pid)
    assert writer._sender is None and writer._pool is None


def test_the_threads_write_everything_when_no_helper_can_start(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A system out of processes refuses the helper: the load goes on with its threads."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(objproc.subprocess, "Popen", refuse)
    objects = _objects(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + 3), "refused")
    writer = _store(tmp_path / "objects", objects)
    assert writer.helpers_started == 0
    assert writer.written == len(objects)
    assert all(object_path(tmp_path / "objects", sha).read_bytes() == data for sha, data in objects)


CANCEL_AT = """
import faulthandler, hashlib, os, signal, subprocess, sys
from pathlib import Path
from engine import cancel
from engine.index import objproc
from engine.index.objects import ObjectWriter
faulthandler.register(signal.SIGUSR1, all_threads=True)
WHERE = sys.argv[2]

def cancel_at(where):
    if WHERE == where:
        os.kill(os.getpid(), signal.SIGTERM)

execute, init, send = subprocess.Popen._execute_child, subprocess.Popen.__init__, objproc.Helper.send
def patched_execute(self, *args, **kwargs):
    cancel_at("fork")
    execute(self, *args, **kwargs)
    cancel_at("exec")
def patched_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    cancel_at("started")
def patched_send(self, batch):
    cancel_at("send")
    return send(self, batch)
subprocess.Popen._execute_child, subprocess.Popen.__init__ = patched_execute, patched_init
objproc.Helper.send = patched_send
writer = ObjectWriter(Path(sys.argv[1]))
try:
    with cancel.on_sigterm():  # as the index worker does
        try:
            for i in range(ObjectWriter.BATCH * (ObjectWriter.PROCESS_AFTER + ObjectWriter.PENDING + 8)):
                data = b'{"n":%d}\\n' % i
                writer.write(hashlib.sha256(data).hexdigest(), data)
                cancel.check()  # the loader checks between its batches
            writer.finish()
            cancel.check()  # and before its commit (a send's signal may come after the last write)
        finally:
            writer.close()
except cancel.Cancelled:
    sys.exit(42)
sys.exit(0)
"""


def _helpers_of(root: Path) -> list[int]:
    """Running helper processes started for ``root`` (whoever their parent is now)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"engine.index.objproc" in argv and str(root).encode() in argv and not _gone(int(proc.name)):
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")
@pytest.mark.parametrize("where", ["fork", "exec", "started", "send"])
def test_a_cancel_while_the_helper_starts_or_is_fed_ends_the_worker_and_the_helper(
        tmp_path: Path, where: str) -> None:
    """The index task's cancel (SIGTERM, engine/cancel.py) arriving inside the helper's start
    (before the fork, between fork and exec, just after) or while a batch is handed to it:
    the worker stops at its next check, and no helper is left running."""
    root = tmp_path / "objects"
    root.mkdir(mode=0o700)
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", CANCEL_AT, str(root), where], cwd=REPO, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        assert exit_code(proc, stderr, timeout=60) == 42, stderr.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: not _helpers_of(root), timeout=20, what="no helper left running")
    assert "Traceback" not in stderr.read_text(), stderr.read_text()
