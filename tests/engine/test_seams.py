"""The seams a distributed deployment would plug into, tested through their local implementations.

* :mod:`engine.vault.storage`: the vault writer, reader and run listing do every file
  operation through a ``Storage``; a recording wrapper around ``LocalStorage`` proves it, and
  the parts it wrote are standard gzip with the manifest's sha256 (isal or zlib, with or
  without the background compressor).
* :mod:`engine.run.executor`: ``TaskProcess`` and ``Runner`` start workers only through an
  ``Executor``; the local one runs a real extract worker, and a scripted in-memory one shows
  the engine needs nothing else from it (events, bad lines, cancel).
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pytest

from engine.config import Extractor
from engine.events import Event, TaskFinished, TaskProgress, TaskWarning, dump_event
from engine.run.bus import EventBus
from engine.run.executor import Executor, LocalSubprocessExecutor
from engine.run.task import TaskProcess
from engine.stages.spec import TaskSpec
from engine.store.fsutil import ensure_dir
from engine.vault.layout import list_runs, new_run
from engine.vault.reader import iter_records, verify_part
from engine.vault.storage import LOCAL, LocalStorage, Storage
from engine.vault.writer import BACKENDS, RunWriter


class RecordingStorage:
    """LocalStorage that logs each call (name, path name) and can fail writes."""

    def __init__(self, fail_writes_after: int | None = None) -> None:
        self.inner = LocalStorage()
        self.calls: list[tuple[str, str]] = []
        self.fail_writes_after = fail_writes_after

    def _log(self, op: str, path: Path) -> None:
        self.calls.append((op, path.name))

    def make_dir(self, path: Path) -> Path:
        self._log("make_dir", path)
        return self.inner.make_dir(path)

    def create(self, path: Path) -> BinaryIO:
        self._log("create", path)
        fh = self.inner.create(path)
        if self.fail_writes_after is None:
            return fh
        return FailingFile(fh, self.fail_writes_after)  # type: ignore[return-value]

    def open_read(self, path: Path) -> BinaryIO:
        self._log("open_read", path)
        return self.inner.open_read(path)

    def sync(self, fh: BinaryIO) -> None:
        self.calls.append(("sync", ""))
        self.inner.sync(fh)

    def write_atomic(self, path: Path, data: bytes) -> None:
        self._log("write_atomic", path)
        self.inner.write_atomic(path, data)

    def publish(self, temp: Path, final: Path) -> None:
        self._log("publish", final)
        self.inner.publish(temp, final)

    def remove(self, path: Path) -> None:
        self._log("remove", path)
        self.inner.remove(path)

    def list(self, path: Path) -> list[str]:
        self._log("list", path)
        return self.inner.list(path)

    def is_dir(self, path: Path) -> bool:
        return self.inner.is_dir(path)

    def size(self, path: Path) -> int | None:
        self._log("size", path)
        return self.inner.size(path)


class FailingFile:
    """A file whose writes fail with ENOSPC once ``limit`` bytes were written."""

    def __init__(self, fh: BinaryIO, limit: int) -> None:
        self.fh, self.limit, self.written = fh, limit, 0

    def write(self, data: bytes) -> int:
        if self.written + len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return self.fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


def noisy_records(n: int) -> list[dict[str, Any]]:
    """Records that compress poorly enough to need several 1 MiB chunks and parts."""
    return [{"id": i, "body": hashlib.sha256(str(i).encode()).hexdigest() * 20, "n": i * 1.5}
            for i in range(n)]


def schema_line(writer: RunWriter, key: list[str] | None) -> None:
    """A SCHEMA message for stream ``s``, as a tap writes it."""
    writer.schema("s", b'{"type":"object"}', key, orjson.dumps(
        {"type": "SCHEMA", "stream": "s", "schema": {"type": "object"}, "key_properties": key}) + b"\n")


def record_line(writer: RunWriter, rec: dict[str, Any]) -> None:
    """A RECORD message of stream ``s``, as a tap writes it."""
    writer.record("s", orjson.dumps({"type": "RECORD", "stream": "s", "record": rec}) + b"\n")


def write_run(account: Path, records: list[dict[str, Any]], *, storage: Storage = LOCAL,
              backend: str | None = None, pipelined: bool = True, part_max_bytes: int = 1 << 20) -> Path:
    writer = RunWriter(account, new_run(account), {"extractor": "seam"}, part_max_bytes, 1, storage=storage,
                       backend=backend, pipelined=pipelined)
    schema_line(writer, ["id"])
    for rec in records:
        record_line(writer, rec)
    writer.finish("success")
    return writer.final


def test_the_writer_and_reader_go_through_the_storage(tmp_path: Path) -> None:
    storage = RecordingStorage()
    records = noisy_records(3000)
    run = write_run(ensure_dir(tmp_path / "acct"), records, storage=storage, part_max_bytes=256 * 1024)
    manifest = orjson.loads((run / "manifest.json").read_bytes())
    parts = manifest["parts"]
    assert len(parts) > 2
    ops = [op for op, _ in storage.calls]
    assert ops.count("create") == len(parts) and ops.count("sync") == len(parts)
    assert ("write_atomic", "manifest.json") in storage.calls
    assert storage.calls[-1] == ("publish", run.name)
    back: list[Any] = []
    for part in parts:
        data = (run / part["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == part["sha256"] and len(data) == part["bytes"]
        assert len(gzip.decompress(data)) == part["uncompressed_bytes"]
        storage.calls.clear()
        assert verify_part(run, part, storage) is None
        back += [rec for _, rec in iter_records(run / part["file"], storage)]
        assert {op for op, _ in storage.calls} == {"size", "open_read"}
    assert back == records
    storage.calls.clear()
    assert [r.rel for r in list_runs(tmp_path / "acct", storage)] == [f"dt={manifest['dt']}/run_id={manifest['run_id']}"]
    assert ("list", "acct") in storage.calls


def test_verify_through_the_storage_finds_tampered_and_missing_parts(tmp_path: Path) -> None:
    run = write_run(ensure_dir(tmp_path / "acct"), noisy_records(50))
    [part] = orjson.loads((run / "manifest.json").read_bytes())["parts"]
    path = run / part["file"]
    data = bytearray(path.read_bytes())
    data[-12] ^= 1
    path.write_bytes(bytes(data))
    assert verify_part(run, part, LOCAL) == "CHECKSUM_MISMATCH"
    path.unlink()
    assert verify_part(run, part, LOCAL) == "PART_MISSING"
    assert LOCAL.list(tmp_path / "nowhere") == []


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_writes_standard_gzip_and_the_same_records(tmp_path: Path, backend: str) -> None:
    records = noisy_records(1500)
    outputs = []
    for pipelined in (False, True):
        run = write_run(ensure_dir(tmp_path / f"{backend}-{pipelined}"), records, backend=backend,
                        pipelined=pipelined)
        manifest = orjson.loads((run / "manifest.json").read_bytes())
        raw = b"".join(gzip.decompress((run / p["file"]).read_bytes()) for p in manifest["parts"])
        assert [m["record"] for m in map(orjson.loads, raw.splitlines()) if m["type"] == "RECORD"] == records
        outputs.append([(run / p["file"]).read_bytes() for p in manifest["parts"]])
    assert outputs[0] == outputs[1], "the background compressor must not change a byte"


def test_isal_is_the_default_when_installed() -> None:
    from engine.vault import writer

    assert writer.DEFAULT_BACKEND == ("isal" if "isal" in BACKENDS else "zlib")


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_write_error_on_the_compressor_thread_reaches_the_caller(tmp_path: Path, pipelined: bool) -> None:
    account = ensure_dir(tmp_path / "acct")
    writer = RunWriter(account, new_run(account), {}, 64 << 20, 1,
                       storage=RecordingStorage(fail_writes_after=100_000), pipelined=pipelined)
    schema_line(writer, None)
    with pytest.raises(OSError) as info:
        for rec in noisy_records(20_000):
            record_line(writer, rec)
        writer.finish("success")
    assert info.value.errno == errno.ENOSPC
    writer.abort()
    assert not list(writer.tmp.glob("part-*")), "the abandoned part is removed through the storage"


# --------------------------------------------------------------------------- executor


def demo_spec(tmp_path: Path, records: int = 20) -> TaskSpec:
    ex = Extractor(name="seam", domain="email", source="gmail", account="seam", kind="demo",
                   demo={"tap": "gmail", "records": records, "seed": 1})  # type: ignore[arg-type]
    return TaskSpec(task_id="extract:seam", stage="extract", workspace=ensure_dir(tmp_path / "ws"), extractor=ex)


class CountingExecutor:
    """The local executor, counting starts."""

    def __init__(self) -> None:
        self.inner = LocalSubprocessExecutor()
        self.started: list[str] = []

    async def start(self, spec: TaskSpec, diagnostics: Path) -> Any:
        self.started.append(spec.task_id)
        return await self.inner.start(spec, diagnostics)


def collect(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.subscribe(seen.append)
    return seen


def test_the_local_executor_runs_a_real_worker(tmp_path: Path) -> None:
    bus = EventBus()
    seen = collect(bus)
    executor = CountingExecutor()
    spec = demo_spec(tmp_path)
    task = TaskProcess(spec, bus, 2.0, executor)
    final = asyncio.run(task.run())
    assert executor.started == ["extract:seam"]
    assert final.status == "success" and final.records == 20
    assert final.cpu_s is not None and final.cpu_s > 0
    assert final.peak_rss_kb is not None and final.peak_rss_kb > 1024
    assert seen[0].type == "task_started" and seen[-1] == final
    assert task.diagnostics_path.read_text().startswith("--- attempt 1 of extract:seam")


class ScriptedHandle:
    """A worker that 'prints' scripted lines and exits with a code."""

    def __init__(self, lines: list[bytes], rc: int, hang: bool = False) -> None:
        self.lines, self.rc, self.hang = list(lines), rc, hang
        self.returncode: int | None = None
        self.terminated = 0
        self.killed = 0
        self._stop = asyncio.Event()

    @property
    def pid(self) -> int:
        return 4242

    async def readline(self) -> bytes:
        if self.lines:
            return self.lines.pop(0)
        if self.hang:
            await self._stop.wait()
        return b""

    def terminate(self) -> bool:
        self.terminated += 1
        self._stop.set()
        return True

    async def kill(self) -> None:
        self.killed += 1
        self._stop.set()

    async def wait(self) -> int:
        if self.hang:
            await self._stop.wait()
        self.returncode = self.rc
        return self.rc


class ScriptedExecutor:
    def __init__(self, make: Callable[[TaskSpec], ScriptedHandle]) -> None:
        self.make = make
        self.handles: list[ScriptedHandle] = []

    async def start(self, spec: TaskSpec, diagnostics: Path) -> ScriptedHandle:
        handle = self.make(spec)
        self.handles.append(handle)
        return handle


def test_any_executor_will_do_events_bad_lines_and_the_final_event(tmp_path: Path) -> None:
    spec = demo_spec(tmp_path)
    lines = [
        dump_event(TaskProgress(task_id=spec.task_id, stage="extract", extractor="seam", records=5)),
        b"not an event\n",
        dump_event(TaskFinished(task_id=spec.task_id, stage="extract", extractor="seam", account="seam",
                                status="success", records=7, cpu_s=1.5, peak_rss_kb=2048)),
    ]
    executor: Executor = ScriptedExecutor(lambda s: ScriptedHandle(lines, 0))
    bus = EventBus()
    seen = collect(bus)
    final = asyncio.run(TaskProcess(spec, bus, 1.0, executor).run())
    assert (final.status, final.records, final.cpu_s, final.peak_rss_kb) == ("success", 7, 1.5, 2048)
    kinds = [e.type for e in seen]
    assert kinds == ["task_started", "task_progress", "task_warning", "task_finished"]
    warning = seen[2]
    assert isinstance(warning, TaskWarning) and warning.code == "BAD_EVENT"


def test_a_worker_without_a_final_event_is_a_crash_and_cancel_reaches_the_handle(tmp_path: Path) -> None:
    spec = demo_spec(tmp_path)
    crashed = asyncio.run(TaskProcess(spec, EventBus(), 1.0, ScriptedExecutor(lambda s: ScriptedHandle([], 3))).run())
    assert (crashed.status, crashed.error_code, crashed.exit_code) == ("failed", "WORKER_CRASHED", 3)

    executor = ScriptedExecutor(lambda s: ScriptedHandle([], -15, hang=True))

    async def cancel_midway() -> TaskFinished:
        task = TaskProcess(spec, EventBus(), 1.0, executor)
        running = asyncio.create_task(task.run())
        while not executor.handles:
            await asyncio.sleep(0.01)
        await task.cancel()
        return await running

    final = asyncio.run(cancel_midway())
    assert (final.status, final.error_code) == ("cancelled", "CANCELLED")
    assert executor.handles[0].terminated == 1


def test_a_run_whose_success_finish_failed_can_still_be_finished_as_failed(tmp_path: Path) -> None:
    account = ensure_dir(tmp_path / "acct")
    writer = RunWriter(account, new_run(account), {}, 64 << 20, 1, storage=RecordingStorage(fail_writes_after=10))
    schema_line(writer, None)
    for rec in noisy_records(300):  # under FLUSH_BYTES: the first write (which fails) is in finish
        record_line(writer, rec)
    with pytest.raises(OSError):
        writer.finish("success")
    manifest = writer.finish("failed", error_code="WRITE_FAILED")
    assert manifest["status"] == "failed" and manifest["parts"] == []
    assert (writer.final / "manifest.json").is_file()


def test_the_reader_round_trips_a_part_that_compresses_a_thousandfold(tmp_path: Path) -> None:
    records = [{"id": i, "pad": "a" * 50_000} for i in range(300)]  # ~15 MB, a few KB compressed
    run = write_run(ensure_dir(tmp_path / "acct"), records, part_max_bytes=1 << 30)
    [part] = orjson.loads((run / "manifest.json").read_bytes())["parts"]
    assert part["bytes"] * 200 < part["uncompressed_bytes"]
    assert [rec for _, rec in iter_records(run / part["file"])] == records
