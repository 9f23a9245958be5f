"""The index stage end to end: real CLI runs (extract -> canonize -> index), real SQLite, real files.

A module-scoped workspace is built once by running the real pipeline over demo taps; tests
that only read it share it. Tests that replace accounts build their own small workspace.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from engine.demo_taps.canary import CANARIES
from engine.index.fields import derive, normalize_time
from engine.index.query import (
    COUNTS_SQL,
    KIND_COUNTS_SQL,
    AsyncStore,
    Query,
    Store,
    fts_query,
    time_bound,
)
from tests.helpers import REPO, clean_env, demo_extractor, run_cli, write_config

MAPPINGS = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["stages"]["canonize"]["mappings"]
GMAIL = ("g1", "g2", "g3")


def extractors(**seeds: int) -> list[dict[str, Any]]:
    """Three gmail mailboxes sharing a seed (so ~10% of their messages are shared), and more."""
    return [
        *(demo_extractor(n, "gmail", records=120, seed=seeds.get(n, 7)) for n in GMAIL),
        demo_extractor("m1", "msgraph", records=60, seed=7, source="exchange"),
        demo_extractor("dv", "dataverse", records=60, seed=7),
        demo_extractor("qb", "quickbooks", records=60, seed=7),
        demo_extractor("sh", "sheets", records=40, seed=7),
    ]


def config(tmp: Path, exs: list[dict[str, Any]]) -> Path:
    return write_config(tmp, exs, stages={"canonize": {"mappings": MAPPINGS}, "index": {"workers": 4}})


def cli(*args: str, cfg: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    res = run_cli(*args, "--config", str(cfg), timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def events(res: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def finished(res: subprocess.CompletedProcess[str], stage: str = "index") -> dict[str, dict[str, Any]]:
    return {e["extractor"]: e for e in events(res) if e["type"] == "task_finished" and e["stage"] == stage}


def db(ws: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{ws / 'vector-store' / 'index.sqlite'}?mode=ro", uri=True)


def rows(ws: Path) -> list[tuple[Any, ...]]:
    with db(ws) as con:
        return con.execute("SELECT * FROM documents ORDER BY doc_id").fetchall()


def objects(ws: Path) -> dict[str, int]:
    """sha256 -> inode of every object file."""
    return {p.name.removesuffix(".json"): p.stat().st_ino
            for p in (ws / "vector-store" / "objects").glob("*/*/*.json")}


def canonical(ws: Path, source: str, account: str) -> list[bytes]:
    return (ws / "canonical" / source / f"{account}.jsonl").read_bytes().splitlines(keepends=True)


def all_canonical(ws: Path) -> dict[tuple[str, str], list[bytes]]:
    return {(p.parent.name, p.name.removesuffix(".jsonl")): p.read_bytes().splitlines(keepends=True)
            for p in (ws / "canonical").glob("*/*.jsonl")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("index")
    cfg = config(tmp, extractors())
    res = cli("run", "--json", cfg=cfg)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    done = finished(res)
    assert set(done) == {e["name"] for e in extractors()}
    assert all(e["status"] == "success" for e in done.values())
    return cfg, tmp / "ws"


def test_documents_equal_canonical_records(built: tuple[Path, Path]) -> None:
    _, ws = built
    docs = rows(ws)
    by_account: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in docs:
        by_account.setdefault((r[2], r[3]), []).append(r)
    canon = all_canonical(ws)
    assert set(by_account) == set(canon) and len(canon) == 7
    store_objects = ws / "vector-store" / "objects"
    for (source, account), lines in canon.items():
        got = by_account[(source, account)]
        assert len(got) == len(lines)
        meta = orjson.loads((ws / "canonical" / source / f"{account}.meta.json").read_bytes())
        run = meta["inputs"]["run"]
        by_key = {(r[1], r[4]): r for r in got}
        for line in lines:
            doc = orjson.loads(line)
            r = by_key[(doc["kind"], doc["source_id"])]
            sha = hashlib.sha256(line).hexdigest()
            assert r[5] == sha
            obj = store_objects / sha[:2] / sha[2:4] / f"{sha}.json"
            assert obj.read_bytes() == line and orjson.loads(obj.read_bytes()) == doc
            assert r[6] == f"dt={run['dt']}/run_id={run['run_id']}"
            assert r[7] is not None and r[7].split("/")[0] in ("email", "clinical", "finance", "ops")
            d = derive(doc)
            assert (r[8], r[9], r[10]) == (d.time, d.title, d.dedupe_key)
    with db(ws) as con:
        accounts = {(s, a): (sha, n) for s, a, sha, n in
                    con.execute("SELECT source, account, canonical_sha256, documents FROM accounts")}
        fts = con.execute("SELECT count(*) FROM fts").fetchone()[0]
        pending = con.execute("SELECT count(*) FROM gc_pending").fetchone()[0]
    for (source, account), lines in canon.items():
        data = (ws / "canonical" / source / f"{account}.jsonl").read_bytes()
        assert accounts[(source, account)] == (hashlib.sha256(data).hexdigest(), len(lines))
    assert fts == len(docs) and pending == 0
    assert set(objects(ws)) == {r[5] for r in docs}


def test_files_are_private(built: tuple[Path, Path]) -> None:
    _, ws = built
    root = ws / "vector-store"
    seen = 0
    for dirpath, _dirs, filenames in os.walk(root):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for name in filenames:
            assert stat.S_IMODE(os.stat(Path(dirpath) / name).st_mode) == 0o600, name
            assert ".tmp-" not in name
            seen += 1
    assert seen > 100


def test_rerun_changes_nothing(built: tuple[Path, Path]) -> None:
    cfg, ws = built
    before_rows, before_objects = rows(ws), objects(ws)
    res = cli("run", "--stage", "index", "--json", cfg=cfg)
    assert res.returncode == 0
    assert {e["status"] for e in finished(res).values()} == {"skipped"}
    assert rows(ws) == before_rows and objects(ws) == before_objects
    res = cli("run", "--stage", "index", "--force", "--json", cfg=cfg)
    assert res.returncode == 0
    done = finished(res)
    assert {e["status"] for e in done.values()} == {"success"}
    assert all(e["bytes"] == 0 for e in done.values()), "an unchanged account writes no object"
    assert sum(e["records"] for e in done.values()) == len(before_rows)
    assert rows(ws) == before_rows and objects(ws) == before_objects


def test_query_filters(built: tuple[Path, Path]) -> None:
    _, ws = built
    canon = {k: [orjson.loads(line) for line in v] for k, v in all_canonical(ws).items()}
    every = [d for docs in canon.values() for d in docs]
    with Store.open(ws) as store:
        assert len(store.find(Query(limit=None))) == len(every)
        for kind in ("email", "contact", "clinical_session", "invoice", "payment"):
            got = store.find(Query(kind=kind, limit=None))
            assert len(got) == sum(d["kind"] == kind for d in every) > 0
            assert {d.kind for d in got} == {kind}
        got = store.find(Query(source="gmail", limit=None))
        assert {d.account for d in got} == set(GMAIL) and len(got) == sum(len(canon[("gmail", a)]) for a in GMAIL)
        got = store.find(Query(account="qb", kind="invoice", limit=None))
        assert sorted(d.entity_id for d in got) == sorted(d["source_id"] for d in canon[("quickbooks", "qb")]
                                                          if d["kind"] == "invoice")
        times = sorted(d.time for d in store.find(Query(kind="email", limit=None)) if d.time)
        since, until = times[len(times) // 4][:10], times[3 * len(times) // 4][:10]
        expected = {(d["account"], d["source_id"]) for d in every if d["kind"] == "email"
                    and since <= (derive(d).time or "")[:10] <= until}
        got = store.find(Query(kind="email", since=since, until=until, limit=None))
        assert {(d.account, d.entity_id) for d in got} == expected and 0 < len(expected) < len(times)
        assert [d.time for d in got] == sorted((d.time for d in got), reverse=True)
        assert len(store.find(Query(kind="email", limit=7))) == 7
        one = got[0]
        assert [d.doc_id for d in store.get(one.entity_id, kind="email")] == [one.doc_id]
        assert store.document(one)["source_id"] == one.entity_id
        counts = {(c.kind, c.account): c.documents for c in store.counts()}
        assert counts[("email", "g1")] == len(canon[("gmail", "g1")])
        assert sum(counts.values()) == len(every)
        for sql in (COUNTS_SQL, KIND_COUNTS_SQL):  # every document read in table order, no look-ups
            plan = " ".join(r[3] for r in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert "SCAN documents" in plan and "INDEX" not in plan, plan


def _words(doc: dict[str, Any]) -> str:
    d = derive(doc)
    return " ".join(x for x in (d.title, d.body, d.names, d.notes) if x).lower()


def test_full_text_search_hits_known_words_and_ranks(built: tuple[Path, Path]) -> None:
    _, ws = built
    every = [orjson.loads(line) for v in all_canonical(ws).values() for line in v]
    with Store.open(ws) as store:
        for word, least in (("canarywhistle", 7), ("zx81", 4)):
            expected = {(d["account"], d["kind"], d["source_id"]) for d in every
                        if re.search(rf"\b{word}\b", _words(d))}
            got = store.search(word, limit=None)
            assert {(d.account, d.kind, d.entity_id) for d in got} == expected and len(expected) >= least
            ranks = [d.rank for d in got]
            assert all(r is not None for r in ranks) and ranks == sorted(ranks)  # type: ignore[type-var]
        got = store.search("Canarywhistle", limit=None)
        assert "canarywhistle" in (got[0].title or "").lower(), "a title hit ranks first"
        assert store.search("canarywh*", limit=None) == got, "prefix search"
        assert len(store.search("Canarywhistle zebulon", kind="email", limit=None)) >= 4
        assert store.search("Canarywhistle nosuchwordanywhere", limit=None) == []


def test_dedupe_collapses_shared_message_ids(built: tuple[Path, Path]) -> None:
    _, ws = built
    mail = [orjson.loads(line) for a in GMAIL for line in canonical(ws, "gmail", a)]
    holders: dict[str, set[str]] = {}
    for d in mail:
        holders.setdefault(d["dedupe_key"], set()).add(f"gmail/{d['account']}")
    shared = {k for k, v in holders.items() if len(v) == 3}
    assert len(shared) >= 10, "the demo gmail tap shares ~10% of messages across mailboxes"
    with Store.open(ws) as store:
        plain = store.find(Query(kind="email", source="gmail", limit=None))
        collapsed = store.find(Query(kind="email", source="gmail", dedupe=True, limit=None))
        assert len(plain) == len(mail) and len(collapsed) == len(holders) < len(mail)
        for d in collapsed:
            assert d.dedupe_key is not None
            assert set(d.accounts) == holders[d.dedupe_key] and d.copies == len(holders[d.dedupe_key])
        hits = store.search("Canarywhistle", kind="email", dedupe=True, limit=None)
        assert any(d.copies >= 3 for d in hits), "the canary message is in every mailbox of the seed"


async def test_async_api_matches_the_plain_one(built: tuple[Path, Path]) -> None:
    _, ws = built
    q = Query(kind="email", text="canarywhistle", dedupe=True, limit=None)
    with Store.open(ws) as store:
        want, counts, kinds = store.find(q), store.counts(), store.kind_counts()
        doc, same_id = store.document(want[0]), store.get(want[0].entity_id)
    astore = await AsyncStore.open(ws)
    async with astore:
        assert await astore.find(q) == want
        assert await astore.counts() == counts and await astore.kind_counts() == kinds
        assert await astore.document(want[0]) == doc
        assert await astore.get(want[0].entity_id) == same_id


def test_query_command(built: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, ws = built
    res = cli("query", "--kind", "contact", "--account", "dv", "--limit", "0", "--json", cfg=cfg)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.encode().splitlines(keepends=True)
    want = [line for line in canonical(ws, "dataverse", "dv") if orjson.loads(line)["kind"] == "contact"]
    assert sorted(lines) == sorted(want)
    res = cli("query", "--text", "Canarywhistle", "--kind", "email", "--dedupe", cfg=cfg)
    assert res.returncode == 0 and "canary-diagnosis-zx81" in res.stdout and "copies" in res.stdout
    res = cli("query", "--kind", "email", "--limit", "3", "--json", cfg=cfg)
    assert len(res.stdout.splitlines()) == 3
    res = cli("query", "--counts", "--json", cfg=cfg)
    assert sum(orjson.loads(x)["documents"] for x in res.stdout.splitlines()) == len(rows(ws))
    res = cli("query", "--since", "2024-02-30", cfg=cfg)
    assert res.returncode == 2 and "--since" in res.stderr
    # at 80 columns the table fits: kind, source and account whole, the id left out with a note
    docs = [orjson.loads(x) for x in cli("query", "--limit", "20", "--json", cfg=cfg).stdout.splitlines()]
    for args in ([], ["--text", "Canarywhistle", "--explain"]):
        res = run_cli("query", "--limit", "20", *args, "--config", str(cfg), env=clean_env(COLUMNS="80"))
        assert res.returncode == 0 and all(len(line) <= 80 for line in res.stdout.splitlines()), res.stdout
        assert "…" not in "".join(line[:40] for line in res.stdout.splitlines()), res.stdout
        assert "not shown at this width" in res.stdout
    res = run_cli("query", "--limit", "20", "--config", str(cfg), env=clean_env(COLUMNS="80"))
    cells = [[c.strip() for c in line.split("│")[1:4]] for line in res.stdout.splitlines() if line.startswith("│")]
    assert [c for c in cells if c[0]] == [[d["kind"], d["source"], d["account"]] for d in docs]
    empty = write_config(tmp_path, [demo_extractor("x", "gmail", records=1)])
    res = cli("query", "--kind", "email", cfg=empty)
    assert res.returncode == 2 and "no index" in res.stderr and "lorchestra run" in res.stderr


def test_index_events_and_logs_carry_no_content(built: tuple[Path, Path]) -> None:
    _, ws = built
    text = b"".join(p.read_bytes() for p in (ws / "logs").glob("*.log"))
    index_lines = [line for line in text.splitlines() if b'"stage":"index"' in line]
    assert index_lines
    for canary in CANARIES:
        assert canary.encode() not in b"\n".join(index_lines)


def test_missing_canonical_fails_with_no_canonical(tmp_path: Path) -> None:
    cfg = config(tmp_path, [demo_extractor("lonely", "gmail", records=5)])
    res = cli("run", "--stage", "index", "--json", cfg=cfg)
    assert res.returncode == 1
    done = finished(res)["lonely"]
    assert done["status"] == "failed" and done["error_code"] == "NO_CANONICAL"


def test_replacing_one_account_leaves_the_others_alone(tmp_path: Path) -> None:
    cfg = config(tmp_path, extractors())
    ws = tmp_path / "ws"
    assert cli("run", cfg=cfg).returncode == 0
    before = rows(ws)
    before_objects = objects(ws)
    others = [r for r in before if r[3] != "g1"]
    old_g1 = {r[5] for r in before if r[3] == "g1"}
    cfg = config(tmp_path, [{**e, "demo": {**e["demo"], "records": 90}} if e["name"] == "g1" else e
                            for e in extractors(g1=99)])
    res = cli("run", "--account", "g1", "--json", cfg=cfg)
    assert res.returncode == 0, res.stdout[-2000:]
    after = rows(ws)
    assert [r for r in after if r[3] != "g1"] == others, "other accounts' rows are untouched"
    g1 = [r for r in after if r[3] == "g1"]
    lines = canonical(ws, "gmail", "g1")
    assert len(g1) == len(lines) == 90
    assert {r[5] for r in g1} == {hashlib.sha256(x).hexdigest() for x in lines}
    now = objects(ws)
    assert set(now) == {r[5] for r in after}, "no orphan objects, no dangling rows"
    assert not old_g1 & set(now), "g1's old objects are gone"
    assert all(now[s] == before_objects[s] for s in (r[5] for r in others)), "others' objects not rewritten"
    with db(ws) as con:
        assert con.execute("SELECT count(*) FROM gc_pending").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM fts").fetchone()[0] == len(after)


def _poll(ws: Path, account: str, seen: list[tuple[int, int]], stop: threading.Event) -> None:
    con = db(ws)
    try:
        while not stop.is_set():
            con.execute("BEGIN")
            n = con.execute("SELECT count(*) FROM documents WHERE account = ?", (account,)).fetchone()[0]
            f = con.execute("SELECT count(*) FROM documents d JOIN fts ON fts.rowid = d.doc_id "
                            "WHERE d.account = ?", (account,)).fetchone()[0]
            con.execute("COMMIT")
            seen.append((n, f))
    finally:
        con.close()


def test_a_reader_sees_the_old_set_or_the_new_one(tmp_path: Path) -> None:
    big = demo_extractor("big", "gmail", records=3000, seed=1)
    small = demo_extractor("small", "dataverse", records=40, seed=1)
    cfg = config(tmp_path, [big, small])
    ws = tmp_path / "ws"
    assert cli("run", cfg=cfg).returncode == 0
    cfg = config(tmp_path, [{**big, "demo": {"tap": "gmail", "records": 2000, "seed": 2}}, small])
    assert cli("run", "--stage", "extract", "--stage", "canonize", "--account", "big", cfg=cfg).returncode == 0
    seen: list[tuple[int, int]] = []
    stop = threading.Event()
    reader = threading.Thread(target=_poll, args=(ws, "big", seen, stop))
    reader.start()
    try:
        time.sleep(0.2)
        proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "run", "--stage", "index", "--account",
                                 "big", "--force", "--config", str(cfg)], cwd=REPO, env=clean_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=300)
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    assert proc.returncode == 0, err
    counts = {n for n, _ in seen}
    assert counts == {3000, 2000}, f"a reader saw a partial set: {sorted(counts)}"
    assert seen[0][0] == 3000 and seen[-1][0] == 2000
    assert all(n == f for n, f in seen), "documents and full-text rows change together"


def test_query_text_helpers() -> None:
    assert fts_query('say "hi" there*') == '"say" """hi""" "there"*'
    assert time_bound("2024-03-01", upper=False) == "2024-03-01T00:00:00Z"
    assert time_bound("2024-03-01", upper=True) == "2024-03-02T00:00:00Z"
    assert time_bound("2024-03-01T10:00:00-05:00", upper=True) == "2024-03-01T15:00:01Z"
    with pytest.raises(ValueError):
        fts_query("  ")
    for symbols in ("*", "^", "* ^ - ,"):
        with pytest.raises(ValueError, match="no words"):
            fts_query(symbols)
    assert fts_query("\U0001F642 x*") == '"\U0001F642" "x"*'  # an emoji is a word to unicode61
    with pytest.raises(ValueError):
        time_bound("yesterday", upper=False)


def _write_canonical(ws: Path, docs: list[dict[str, Any]], run_id: str = "20240101T000000Z") -> None:
    base = ws / "canonical" / "notes"
    base.mkdir(parents=True, exist_ok=True)
    data = b"".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n" for d in docs)
    (base / "pad.jsonl").write_bytes(data)
    meta = {"inputs": {"run": {"dt": "2024-01-01", "run_id": run_id}, "transforms": {}},
            "output": {"sha256": hashlib.sha256(data).hexdigest(), "records": len(docs)}}
    (base / "pad.meta.json").write_bytes(orjson.dumps(meta))


def _note(i: int, text: str) -> dict[str, Any]:
    return {"kind": "note", "source": "notes", "account": "pad", "source_id": f"n{i}",
            "title": f"note {i}", "created": f"2024-05-{1 + i:02d}T08:00:00+02:00",
            "nested": {"lines": [text, {"deeper": f"marker{i}"}]}}


@pytest.mark.parametrize("batch", [512, 1], ids=["one-batch", "a-batch-per-line"])
def test_unknown_kinds_duplicates_and_provenance(tmp_path: Path, batch: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: the generic fallback indexes an unknown kind; a repeated entity keeps its
    last line; a new vault run with identical lines only updates provenance."""
    from engine.index import load
    from engine.store.workspace import Workspace

    monkeypatch.setattr(load, "BATCH", batch)
    ws = tmp_path / "ws"
    docs = [_note(i, f"plain words {i}") for i in range(5)]
    _write_canonical(ws, docs)
    first = load.AccountLoader(Workspace(ws), "notes", "pad").run()
    assert (first.status, first.documents, first.objects_written) == ("success", 5, 5)
    with Store.open(ws) as store:
        hit = store.search("marker3", limit=None)
        assert [(d.kind, d.entity_id, d.title, d.time) for d in hit] == [
            ("note", "n3", "note 3", "2024-05-04T06:00:00Z")]
    changed = dict(docs[2], title="note 2 edited")
    _write_canonical(ws, [*docs, changed])  # n2 twice: the later line wins
    second = load.AccountLoader(Workspace(ws), "notes", "pad").run()
    assert (second.documents, second.inserted, second.deleted, second.duplicates) == (5, 1, 1, 1)
    with Store.open(ws) as store:
        [n2] = store.get("n2")
        assert n2.title == "note 2 edited" and store.document(n2) == changed
    assert set(objects(ws)) == {r[5] for r in rows(ws)}
    _write_canonical(ws, [*docs, changed], run_id="20240202T000000Z")
    third = load.AccountLoader(Workspace(ws), "notes", "pad").run()
    assert (third.status, third.inserted, third.deleted, third.duplicates) == ("success", 0, 0, 1)
    assert {r[6] for r in rows(ws)} == {"dt=2024-01-01/run_id=20240202T000000Z"}
    assert set(objects(ws)) == {r[5] for r in rows(ws)}
    assert load.AccountLoader(Workspace(ws), "notes", "pad").run().status == "skipped"
    (ws / "canonical" / "notes" / "pad.jsonl").write_bytes(b"not json\n")
    with pytest.raises(load.LoadFailed) as failed:
        load.AccountLoader(Workspace(ws), "notes", "pad").run()
    assert failed.value.code == "CHECKSUM_MISMATCH"


def test_the_diff_scratch_file_is_private_and_removed_and_a_dead_loaders_is_cleaned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload diffs through a 0600 scratch file inside vector-store; it is gone afterwards,
    one left by a killed worker (its process gone) is removed, a running loader's is kept."""
    from engine.index import load
    from engine.store.workspace import Workspace

    ws = tmp_path / "ws"
    docs = [_note(i, f"plain words {i}") for i in range(6)]
    _write_canonical(ws, docs)
    assert load.AccountLoader(Workspace(ws), "notes", "pad", vectors=False).run().inserted == 6
    store = ws / "vector-store"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = store / f".load-{dead}-0a0a0a.scratch"
    stale.write_bytes(b"left by a killed worker")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = store / f".load-{alive.pid}-0b0b0b.scratch"
        running.write_bytes(b"another loader's")
        modes: list[int] = []
        real_attach = load.diff.attach

        def attach(conn: sqlite3.Connection, folder: Path) -> Path:
            path = real_attach(conn, folder)
            modes.append(stat.S_IMODE(path.stat().st_mode))
            return path

        monkeypatch.setattr(load.diff, "attach", attach)
        _write_canonical(ws, [*docs[1:], _note(9, "a new one")])
        res = load.AccountLoader(Workspace(ws), "notes", "pad", vectors=False).run()
        assert (res.documents, res.inserted, res.deleted, res.objects_removed) == (6, 1, 1, 1)
        assert modes == [0o600]
        assert not stale.exists() and running.exists()
        assert sorted(p.name for p in store.glob(".load-*")) == [running.name]
    finally:
        alive.kill()
        alive.wait()


def test_a_time_outside_the_calendar_in_utc_is_no_time_not_a_crash() -> None:
    """0001-01-01T00:30+01:00 is a valid timestamp whose UTC instant is in year 0: the
    document gets no time (like any unparsable one) instead of failing its account's load."""
    assert normalize_time("0001-01-01T00:30:00+01:00") is None
    assert normalize_time("9999-12-31T23:30:00-05:00") is None
    assert normalize_time("2024-01-01T00:30:00+01:00") == "2023-12-31T23:30:00Z"
    assert derive({"kind": "email", "source": "s", "account": "a", "source_id": "1",
                   "sentAt": "0001-01-01T00:30:00+01:00"}).time is None
