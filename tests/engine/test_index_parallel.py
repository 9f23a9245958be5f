"""Index loads of different accounts run in parallel: prepare without the write lock, swap under it.

Real ``python -m engine.run.worker`` processes on real demo accounts (extracted and
canonized once per module by the real CLI), real SQLite: a worker reads its whole file while
another connection holds the index's write lock; two accounts loaded at once give exactly the
index of loading them one after the other; the spill file is private and never outlives its
load (success, failure, cancel, kill). In-process loaders compare the two-phase load with the
one-pass load (same rows, FTS, vectors, objects) through a first load, a forced rerun, a
reload and a first load that repeats an entity, and an account changed between the phases;
and the default's choice: one pass for a load alone, two phases beside another loader or a
held lock.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config.load import load as load_config
from engine.index import load
from engine.index.store import open_writer
from engine.stages.spec import TaskSpec
from engine.store.workspace import Workspace
from engine.vectors import store as vector_store
from tests.helpers import (
    REPO,
    clean_env,
    demo_extractor,
    demo_mappings,
    run_cli,
    wait_for,
    write_config,
)

RECORDS = 1500
ACCOUNTS = ("acct0", "acct1")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A workspace with two canonized demo Gmail accounts and no index; the config."""
    tmp = tmp_path_factory.mktemp("parallel")
    cfg = write_config(tmp, [demo_extractor(name, "gmail", records=RECORDS, seed=i + 1)
                             for i, name in enumerate(ACCOUNTS)],
                       stages={"canonize": {"mappings": demo_mappings()}})
    for stage in ("extract", "canonize"):
        res = run_cli("run", "--config", str(cfg), "--stage", stage, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
    return tmp / "ws", cfg


def fresh_copy(built: tuple[Path, Path], dest: Path) -> Path:
    shutil.copytree(built[0], dest, symlinks=True)
    shutil.rmtree(dest / "vector-store", ignore_errors=True)
    return dest


def spec(cfg: Path, ws: Path, account: str) -> bytes:
    config = load_config(cfg).config
    ex = next(e for e in config.extractors if e.name == account)
    return TaskSpec(task_id=f"index:{account}", stage="index", workspace=ws, extractor=ex,  # type: ignore[arg-type]
                    canonize=config.stages.canonize, index=config.stages.index).model_dump_json().encode()


class Worker:
    """A real index worker; its events are collected as they come."""

    def __init__(self, cfg: Path, ws: Path, account: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.run.worker"], cwd=REPO, env=clean_env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdin is not None
        self.proc.stdin.write(spec(cfg, ws, account))
        self.proc.stdin.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append(orjson.loads(line))

    def read_all(self) -> bool:
        """Whether a progress event says every line of the file was read."""
        return any(e["type"] == "task_progress" and e.get("total") and e["records"] >= e["total"]
                   for e in list(self.events))

    def finish(self, timeout: float = 180) -> dict[str, Any]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        final = [e for e in self.events if e["type"] == "task_finished"]
        assert len(final) == 1, (code, self.proc.stderr.read() if self.proc.stderr else b"")
        return final[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def leftovers(ws: Path) -> list[Path]:
    return sorted((ws / "vector-store").glob(".load-*"))


def lines_of(ws: Path, account: str) -> int:
    return len((ws / "canonical" / "gmail" / f"{account}.jsonl").read_bytes().splitlines())


def hold_lock(ws: Path) -> sqlite3.Connection:
    """Another writer: the index exists (with its vectors table) and this connection holds the lock."""
    conn = open_writer(Workspace(ws))
    vector_store.ensure_table(conn)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def dump(ws: Path) -> dict[str, Any]:
    """Everything a load writes, ordered: rows, FTS, vectors, accounts (less the time), objects."""
    con = sqlite3.connect(f"file:{ws / 'vector-store' / 'index.sqlite'}?mode=ro", uri=True)
    try:
        out = {
            "documents": con.execute("SELECT * FROM documents ORDER BY doc_id").fetchall(),
            "fts": con.execute("SELECT rowid, title, body, names, notes FROM fts ORDER BY rowid").fetchall(),
            "accounts": con.execute("SELECT source, account, canonical_sha256, inputs_sha256, fields_version, "
                                    "vault_run, documents, generation FROM accounts ORDER BY 1, 2").fetchall(),
            "gc_pending": con.execute("SELECT * FROM gc_pending ORDER BY sha256").fetchall(),
            "vectors": con.execute("SELECT sha256, model, vector FROM vectors ORDER BY sha256").fetchall()
            if vector_store.has_table(con) else [],
        }
    finally:
        con.close()
    out["objects"] = sorted(p.name for p in (ws / "vector-store" / "objects").glob("*/*/*.json"))
    return out


# ------------------------------------------------------------------ real workers


def test_a_worker_reads_its_file_while_another_holds_the_lock(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Phase A needs no write lock: every line is read (and the spill is 0600) while another
    connection holds it; released, the load commits every row and leaves no file behind."""
    ws = fresh_copy(built, tmp_path / "ws")
    holder = hold_lock(ws)
    worker = Worker(built[1], ws, "acct0")
    try:
        wait_for(lambda: worker.read_all() or worker.proc.poll() is not None, timeout=180,
                 what="the worker to read every line while the lock is held")
        assert worker.proc.poll() is None and worker.read_all()
        spills = [p for p in leftovers(ws) if p.suffix == ".spill"]
        assert len(spills) == 1 and stat.S_IMODE(spills[0].stat().st_mode) == 0o600
        assert holder.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
        holder.execute("COMMIT")
        final = worker.finish()
    finally:
        worker.kill()
        holder.close()
    assert (final["status"], final["records"]) == ("success", lines_of(ws, "acct0"))
    assert len(dump(ws)["documents"]) == lines_of(ws, "acct0")
    assert leftovers(ws) == []


def test_two_accounts_at_once_equal_one_after_the_other(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Two real workers started together (their phase A overlaps, both wait for one lock
    holder) give exactly the index of loading the accounts one after the other, in the order
    their swaps committed."""
    together = fresh_copy(built, tmp_path / "together")
    holder = hold_lock(together)  # both prepare while the lock is taken: they overlap for sure
    workers = [Worker(built[1], together, account) for account in ACCOUNTS]
    try:
        wait_for(lambda: all(w.read_all() for w in workers) or any(w.proc.poll() is not None for w in workers),
                 timeout=240, what="both workers to read their files")
        holder.execute("COMMIT")
        finals = [w.finish() for w in workers]
    finally:
        for w in workers:
            w.kill()
        holder.close()
    assert [f["status"] for f in finals] == ["success", "success"]
    got = dump(together)
    first = {d[3]: d[0] for d in reversed(got["documents"])}  # account -> its smallest doc_id
    order = sorted(ACCOUNTS, key=lambda a: first[a])
    apart = fresh_copy(built, tmp_path / "apart")
    for account in order:
        w = Worker(built[1], apart, account)
        try:
            assert w.finish()["status"] == "success"
        finally:
            w.kill()
    assert got == dump(apart)
    assert len(got["documents"]) == sum(lines_of(apart, a) for a in ACCOUNTS)
    assert leftovers(together) == [] and leftovers(apart) == []


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_a_stopped_worker_leaves_the_old_state_and_no_spill(built: tuple[Path, Path], tmp_path: Path,
                                                           how: str) -> None:
    """Stopped while it waits for the lock with its spill written: a cancel (SIGTERM) rolls
    back and removes the spill; a kill leaves it, and the account's next load removes it."""
    ws = fresh_copy(built, tmp_path / "ws")
    holder = hold_lock(ws)
    worker = Worker(built[1], ws, "acct0")
    try:
        wait_for(lambda: worker.read_all() or worker.proc.poll() is not None, timeout=180,
                 what="the worker to prepare its load")
        assert [p.suffix for p in leftovers(ws)] == [".scratch", ".spill"]
        if how == "cancel":
            worker.proc.send_signal(signal.SIGTERM)
            final = worker.finish(timeout=60)
            assert (final["status"], final["error_code"]) == ("cancelled", "CANCELLED")
            assert leftovers(ws) == []
        else:
            worker.proc.send_signal(signal.SIGKILL)
            assert worker.proc.wait(timeout=30) == -signal.SIGKILL
            assert [p.suffix for p in leftovers(ws)] == [".scratch", ".spill"]
    finally:
        worker.kill()
        holder.execute("ROLLBACK")
        holder.close()
    assert dump(ws)["documents"] == []
    again = Worker(built[1], ws, "acct0")
    try:
        assert again.finish()["status"] == "success"
    finally:
        again.kill()
    assert leftovers(ws) == []
    assert len(dump(ws)["documents"]) == lines_of(ws, "acct0")


# ------------------------------------------------------------------ in-process: same results as one pass

SOURCE, ACCOUNT = "notes", "pad"


def note(i: int, version: int) -> dict[str, Any]:
    return {"kind": "note", "source": SOURCE, "account": ACCOUNT, "source_id": f"n{i}",
            "title": f"note {i} v{version}", "created": f"2024-05-{1 + i % 28:02d}T08:00:00Z",
            "text": f"version {version} of note {i} about " + " ".join(f"w{(i * 7 + k) % 97}" for k in range(30))}


def write_notes(ws: Path, docs: list[dict[str, Any]], run: str) -> None:
    base = ws / "canonical" / SOURCE
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = b"".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n" for d in docs)
    (base / f"{ACCOUNT}.jsonl").write_bytes(data)
    meta = {"inputs": {"run": {"dt": "2024-01-01", "run_id": run}, "transforms": {"notes": {"id": "t.v1"}}},
            "output": {"sha256": hashlib.sha256(data).hexdigest(), "records": len(docs)}}
    (base / f"{ACCOUNT}.meta.json").write_bytes(orjson.dumps(meta))


def run_loader(ws: Path, two_phase: bool, **kw: Any) -> load.LoadResult:
    return load.AccountLoader(Workspace(ws), SOURCE, ACCOUNT, transforms={"note": "t.v1"},
                              two_phase=two_phase, **kw).run()


def counts(r: load.LoadResult) -> tuple[int, ...]:
    return (r.documents, r.inserted, r.deleted, r.duplicates, r.objects_written, r.objects_removed, r.vectors)


def test_two_phase_equals_one_pass_first_load_rerun_reload_and_clash(tmp_path: Path) -> None:
    """Ordered dumps of the two-phase and the one-pass load agree after each step: a first
    load (vectors on), a forced rerun, a reload with kept, changed, new and gone rows, and a
    first load of another account whose file repeats an entity (swapped as a diff)."""
    v1 = [note(i, 1) for i in range(1200)]
    v2 = [note(i, 2) if i % 3 == 0 else note(i, 1) for i in range(300, 1700)]
    steps: list[tuple[list[dict[str, Any]], str, dict[str, Any]]] = [
        (v1, "20240101T000000Z", {}), (v1, "20240101T000000Z", {"force": True}), (v2, "20240102T000000Z", {})]
    ws = {mode: tmp_path / ("two" if mode else "one") for mode in (True, False)}
    for docs, run, kw in steps:
        results = {}
        for mode, w in ws.items():
            write_notes(w, docs, run)
            results[mode] = counts(run_loader(w, mode, **kw))
            assert leftovers(w) == []
        assert results[True] == results[False]
        assert dump(ws[True]) == dump(ws[False])
    assert results[True][:3] == (1400, 800, 600)  # 600 kept; 300 changed + 500 new; 300 + 300 gone
    # A clash: another account's first load whose file has n5 twice (the later line wins).
    for mode, w in ws.items():
        base = w / "canonical" / SOURCE
        docs = [{**note(i, 3), "account": "pad2"} for i in range(40)] + [{**note(5, 4), "account": "pad2"}]
        data = b"".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n" for d in docs)
        (base / "pad2.jsonl").write_bytes(data)
        (base / "pad2.meta.json").write_bytes(orjson.dumps(
            {"inputs": {"run": {"dt": "2024-01-01", "run_id": "x"}}, "output": {
                "sha256": hashlib.sha256(data).hexdigest(), "records": len(docs)}}))
        r = load.AccountLoader(Workspace(w), SOURCE, "pad2", two_phase=mode).run()
        assert (r.documents, r.duplicates, r.objects_removed) == (40, 1, 1)
    assert dump(ws[True]) == dump(ws[False])


def test_an_account_changed_between_the_phases_is_prepared_again(tmp_path: Path) -> None:
    """Another writer commits a change to the account while phase A runs: the swap sees it,
    phase A runs again (once), then the one-pass load; the result is the new file's rows."""
    for changes, again in ((1, 1), (2, 2)):
        w = tmp_path / f"ws{changes}"
        write_notes(w, [note(i, 1) for i in range(900)], "20240101T000000Z")
        run_loader(w, True, vectors=False)
        write_notes(w, [note(i, 2) for i in range(600, 1500)], "20240102T000000Z")
        done: list[int] = []

        def progress(lines: int, total: int | None, w: Path = w, changes: int = changes,
                     done: list[int] = done) -> None:
            if lines <= load.BATCH and len(done) < changes:  # the first batch of a phase A
                con = sqlite3.connect(w / "vector-store" / "index.sqlite", isolation_level=None)
                con.execute("UPDATE accounts SET generation = generation + 1")
                con.close()
                done.append(lines)

        r = run_loader(w, True, vectors=False, progress=progress)
        assert (r.prepared_again, r.documents, r.inserted, r.deleted) == (again, 900, 900, 900)
        shas = {hashlib.sha256(orjson.dumps(note(i, 2), option=orjson.OPT_SORT_KEYS) + b"\n").hexdigest()
                for i in range(600, 1500)}
        assert {d[5] for d in dump(w)["documents"]} == shas
        assert set(p.removesuffix(".json") for p in dump(w)["objects"]) == shas
        assert leftovers(w) == []


def test_a_failed_load_leaves_no_spill_and_a_missing_object_fails_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad line in phase A: CANONICAL_INVALID, nothing committed, no spill. An object that
    disappears between phase A and the swap (as if something removed it): OBJECT_MISSING,
    nothing committed."""
    w = tmp_path / "ws"
    docs = [note(i, 1) for i in range(700)]
    base = w / "canonical" / SOURCE
    write_notes(w, docs, "r1")
    data = (base / f"{ACCOUNT}.jsonl").read_bytes().replace(b'"source_id":"n650"', b'"source_id":650', 1)
    (base / f"{ACCOUNT}.jsonl").write_bytes(data)
    meta = orjson.loads((base / f"{ACCOUNT}.meta.json").read_bytes())
    meta["output"]["sha256"] = hashlib.sha256(data).hexdigest()
    (base / f"{ACCOUNT}.meta.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(load.LoadFailed) as failed:
        run_loader(w, True, vectors=False)
    assert (failed.value.code, failed.value.line) == ("CANONICAL_INVALID", 651)
    assert leftovers(w) == [] and dump(w)["documents"] == []

    write_notes(w, docs, "r1")
    real_prepare = load.AccountLoader._prepare

    def prepare_then_lose_one(self: load.AccountLoader, *args: Any) -> None:
        real_prepare(self, *args)
        victim = next((w / "vector-store" / "objects").glob("*/*/*.json"))
        victim.unlink()

    monkeypatch.setattr(load.AccountLoader, "_prepare", prepare_then_lose_one)
    with pytest.raises(load.LoadFailed) as failed:
        run_loader(w, True, vectors=False)
    assert failed.value.code == "OBJECT_MISSING"
    assert leftovers(w) == [] and dump(w)["documents"] == [] and dump(w)["accounts"] == []


def test_a_lone_load_runs_in_one_pass_and_one_beside_another_in_two_phases(tmp_path: Path) -> None:
    """The default: one pass (inserts overlapping the reading) when no other loader runs and
    the lock is free; two phases when another loader's file is there (a live process) or
    another connection holds the lock (released here once every line was read)."""
    w = tmp_path / "ws"
    write_notes(w, [note(i, 1) for i in range(800)], "r1")
    assert run_loader(w, None, vectors=False).mode == "one-pass"
    write_notes(w, [note(i, 2) for i in range(800)], "r2")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        planted = w / "vector-store" / f".load-{other.pid}-0c0c0c.scratch"
        planted.write_bytes(b"")
        r = run_loader(w, None, vectors=False)
        assert (r.mode, r.documents, r.inserted, r.deleted) == ("two-phase", 800, 800, 800)
        assert leftovers(w) == [planted]
    finally:
        other.kill()
        other.wait()
    planted.unlink()
    write_notes(w, [note(i, 3) for i in range(800)], "r3")
    holder = hold_lock(w)
    released: list[int] = []

    def progress(lines: int, total: int | None) -> None:
        if total is not None and lines >= total and not released:
            released.append(lines)
            holder.execute("COMMIT")

    try:
        r = run_loader(w, None, vectors=False, progress=progress)
    finally:
        holder.close()
    assert (r.mode, r.documents, released) == ("two-phase", 800, [800])
