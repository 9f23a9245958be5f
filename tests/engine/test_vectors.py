"""Search by meaning: the offline model, vectors in the index (incremental, per object), ranking.

Real model, real SQLite, real CLI subprocesses. The model's offline load is proven with the
network blocked in a fresh interpreter; loader tests run the index worker's code in-process on
small canonical files; query tests run `lorchestra query` against a workspace the real
pipeline built.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from engine.index.fields import derive
from engine.store.workspace import Workspace
from tests.helpers import REPO, clean_env, demo_extractor, run_cli, write_config

MAPPINGS = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["stages"]["canonize"]["mappings"]

NO_NETWORK = r"""
import os, socket, sys
attempts = []
def refuse(*a, **k):
    attempts.append(repr(a[:2])[:80])
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import requests
requests.Session.request = refuse
# the guard itself works:
try:
    socket.create_connection(("127.0.0.1", 9))
except OSError:
    pass
assert len(attempts) == 1, attempts
attempts.clear()
from engine.vectors.model import Embedder
e = Embedder()
assert "wordllama" not in sys.modules, "the model must load lazily"
v = e.embed(["insurance approval for counselling", "Pre-authorization for therapy",
             "Invoice 1042 overdue payment"])
import logging
print(len(attempts), v.shape[0], v.shape[1], float(v[0] @ v[1]) > float(v[0] @ v[2]),
      len(logging.getLogger().handlers), "wordllama" in sys.modules)
"""


def test_model_loads_from_the_package_with_the_network_blocked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), HF_HUB_OFFLINE="0")
    res = subprocess.run([sys.executable, "-c", NO_NETWORK], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    attempts, rows, dim, closer, handlers, imported = res.stdout.split()
    assert imported == "False", "the model's files are read directly, wordllama itself is never imported"
    assert (attempts, rows, dim) == ("0", "3", "256")
    assert closer == "True", "a paraphrase with no shared word is closer than an unrelated text"
    assert handlers == "0", "wordllama's logging.basicConfig must not leave a handler behind"
    assert list(home.rglob("*")) == [], "nothing may be downloaded or cached under HOME"
    assert res.stderr == ""


def test_pooling_equals_wordllamas_own_embed() -> None:
    import wordllama
    from wordllama import WordLlama

    from engine.vectors.model import shared

    texts = ["Insurance pre-authorization 94481", "bill not paid yet", "Résumé — café 😕", "", "a " * 300]
    ours = shared().embed(texts)
    ref = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True).embed(texts[:3], norm=True)
    assert np.abs(ours[:3] - ref).max() < 1e-5
    assert not ours[3].any(), "an empty text gives a zero vector, not NaN"
    assert np.allclose(np.linalg.norm(ours[[0, 1, 2, 4]], axis=1), 1.0, atol=1e-5)
    spaced = shared().embed(["Insurance\n pre-authorization\t\t 94481 ", "  bill not\r\npaid yet"])
    assert np.abs(spaced - ours[:2]).max() < 1e-6, "line breaks and runs of spaces count as one space"


def test_token_table_is_mapped_from_the_wheel_and_equals_the_safetensors_read(tmp_path: Path) -> None:
    """The table is a read-only map of the installed file (a worker pays only for the pages it
    touches), byte for byte what the safetensors reader returns; a header this reader does not
    know falls back to that reader (None)."""
    from safetensors import safe_open

    from engine.vectors.model import TENSOR, _map_tensor, model_files

    files = model_files()
    assert files is not None
    mapped = _map_tensor(files[0], TENSOR)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    with safe_open(str(files[0]), framework="np", device="cpu") as f:
        copied = f.get_tensor(TENSOR)
    assert mapped.shape == copied.shape and mapped.dtype == copied.dtype
    assert np.array_equal(mapped[::997], copied[::997]) and np.array_equal(mapped[-3:], copied[-3:])
    odd = tmp_path / "odd.safetensors"
    header = orjson.dumps({TENSOR: {"dtype": "I8", "shape": [2, 2], "data_offsets": [0, 4]}})
    odd.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    assert _map_tensor(odd, TENSOR) is None


def test_word_cache_overflow_and_repeated_texts_give_the_same_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.vectors import model

    texts = [f"claim {i} denied by plan {i * 7} appeal window" for i in range(40)] + ["", "claim 3 denied"]
    texts = texts + texts[::-1]  # every text twice: repeats are embedded once
    want = model.Embedder().embed(texts)
    monkeypatch.setattr(model, "WORD_CACHE", 16)  # the 40 texts have ~90 distinct words
    small = model.Embedder()
    got = np.vstack([small.embed(texts[i:i + 7]) for i in range(0, len(texts), 7)])
    assert np.abs(got - want).max() < 1e-6
    assert len(small._index) <= 16 or len(small._index) <= len({w for t in texts[-7:] for w in t.split()})
    assert np.array_equal(want[:42], want[42:][::-1]), "a repeated text gets the same row"
    assert not want[40].any()
    only_empty = model.Embedder().embed(["", " \n "])
    assert only_empty.shape == (2, 256) and not only_empty.any(), "a first call with no word at all"


def test_dashboard_and_plain_queries_never_load_the_model() -> None:
    code = ("import sys, lorch_tui.app, lorch_tui.tui_main, lorch_tui.cli, engine.index.query\n"
            "lorch_tui.cli.build_parser()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wordllama', 'tokenizers', 'numpy')"
            " or m.startswith('engine.vectors')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# --- the loader: one vector per object, incremental -------------------------------------------

def _email(i: int, subject: str, body: str) -> dict[str, Any]:
    return {"kind": "email", "source": "mail", "account": "box", "source_id": f"m{i}", "subject": subject,
            "body_text": body, "receivedAt": f"2024-03-{1 + i:02d}T10:00:00Z", "dedupe_key": f"<{i}@x>"}


DOCS = [
    _email(0, "Pre-authorization for therapy", "Your plan approved twelve sessions."),
    _email(1, "Invoice 1042 overdue payment", "Please settle the balance."),
    _email(2, "Telehealth link not working", "The video call did not open on my phone."),
    _email(3, "Lab results", "Blood panel attached."),
]


def _write(ws: Path, docs: list[dict[str, Any]]) -> None:
    base = ws / "canonical" / "mail"
    base.mkdir(parents=True, exist_ok=True)
    data = b"".join(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n" for d in docs)
    (base / "box.jsonl").write_bytes(data)
    meta = {"inputs": {"run": {"dt": "2024-01-01", "run_id": "20240101T000000Z"}, "transforms": {}},
            "output": {"sha256": hashlib.sha256(data).hexdigest(), "records": len(docs)}}
    (base / "box.meta.json").write_bytes(orjson.dumps(meta))


def _vectors(ws: Path) -> dict[str, tuple[str, bytes]]:
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        return {s: (m, v) for s, m, v in con.execute("SELECT sha256, model, vector FROM vectors")}


def _shas(ws: Path) -> set[str]:
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        return {r[0] for r in con.execute("SELECT sha256 FROM documents")}


def _load(ws: Path, **kw: Any) -> Any:
    from engine.index.load import AccountLoader

    return AccountLoader(Workspace(ws), "mail", "box", **kw).run()


@pytest.mark.parametrize("batch", [512, 1], ids=["one-batch", "a-batch-per-line"])
def test_one_vector_per_object_and_only_changes_are_embedded(tmp_path: Path, batch: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.index import load
    from engine.vectors.model import shared
    from engine.vectors.text import embed_text

    monkeypatch.setattr(load, "BATCH", batch)
    ws = tmp_path / "ws"
    _write(ws, DOCS)
    first = _load(ws)
    assert (first.status, first.documents, first.vectors) == ("success", 4, 4)
    vecs = _vectors(ws)
    assert set(vecs) == _shas(ws)
    models = {m for m, _ in vecs.values()}
    assert len(models) == 1 and models.pop().startswith("wordllama/l2_supercat_256@0.4.0.post1+text")
    d = DOCS[0]
    derived = derive(d)
    sha0 = hashlib.sha256(orjson.dumps(d, option=orjson.OPT_SORT_KEYS) + b"\n").hexdigest()
    blob = vecs[sha0][1]
    assert len(blob) == 256 * 2, "float16 components"
    from engine.vectors.model import embed_documents
    want = embed_documents(shared(), [embed_text("email", derived.title, derived.names, derived.body)])[0]
    assert np.allclose(np.frombuffer(blob, dtype="<f2"), want, atol=1e-3)

    again = _load(ws)
    assert (again.status, again.vectors) == ("skipped", 0)

    changed = [*DOCS[:3], _email(3, "Lab results", "Cholesterol panel attached.")]
    _write(ws, changed)
    third = _load(ws)
    assert (third.status, third.inserted, third.vectors) == ("success", 1, 1)
    assert set(_vectors(ws)) == _shas(ws), "the replaced document's vector went with it"

    _write(ws, changed[:2])
    fourth = _load(ws)
    assert fourth.deleted == 2 and fourth.vectors == 0
    assert set(_vectors(ws)) == _shas(ws) and len(_shas(ws)) == 2


def test_a_model_change_re_embeds_without_reloading_documents(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _write(ws, DOCS)
    _load(ws)
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        con.execute("UPDATE vectors SET model = 'some-older-model'")
    res = _load(ws)
    assert (res.status, res.inserted, res.objects_written, res.vectors) == ("success", 0, 0, 4)
    assert {m for m, _ in _vectors(ws).values()} != {"some-older-model"}
    assert _load(ws).status == "skipped"


def test_vectors_of_an_older_storage_format_are_re_embedded(tmp_path: Path) -> None:
    """Vectors stored as float32 under the previous key (no format suffix) are replaced."""
    from engine.index.query import Query, Store
    from engine.index.ranked import Searcher
    from engine.vectors import store as vector_store

    ws = tmp_path / "ws"
    _write(ws, DOCS)
    _load(ws)
    current = {m for m, _ in _vectors(ws).values()}.pop()
    assert current.endswith(f"+{vector_store.FORMAT}")
    older = current.removesuffix(f"+{vector_store.FORMAT}").replace("+text3", "+text2")
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        con.execute("UPDATE vectors SET model = ?, vector = zeroblob(1024)", (older,))
    with Store.open(Workspace(ws)) as store:
        assert Searcher(store).coverage() == (4, 0), "old-format vectors are not read as current ones"
    res = _load(ws)
    assert (res.status, res.inserted, res.vectors) == ("success", 0, 4)
    assert {(m, len(v)) for m, v in _vectors(ws).values()} == {(current, 512)}
    with Store.open(Workspace(ws)) as store:
        hits = Searcher(store).search("approval from my health plan", Query(limit=1), "vector")
    assert hits[0].document.title == "Pre-authorization for therapy"


def test_embedding_goes_in_bounded_chunks_and_each_vector_is_returned_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading thread only appends until a chunk is full; ready() hands out finished
    vectors once each; add() waits when PENDING chunks are outstanding; take() has the rest."""
    from engine.vectors import pending
    from engine.vectors.model import embed_documents, shared
    from engine.vectors.store import DTYPE
    from engine.vectors.text import embed_text

    p = pending.EmbedPass()
    p.add("a", "email", "Lab results", None, "Blood panel attached.")
    p.add("b", "email", "Invoice 1042", "Ann Lee", "Please settle the balance.")
    p.add("a", "email", "Lab results", None, "Blood panel attached.")
    assert len(p._futures) == 1, "until a chunk is full, the background thread only loads the model"
    got = dict(p.take())
    assert sorted(got) == ["a", "b"] and p.embedded == 2, "a sha256 queued twice in a chunk is embedded once"
    want = embed_documents(shared(), [embed_text("email", "Invoice 1042", "Ann Lee", "Please settle the balance.")])
    assert np.abs(np.frombuffer(got["b"], dtype=DTYPE) - want[0]).max() < 1e-3
    assert p.take() == [] and p.ready() == [], "every vector is handed out once"
    p.close()

    monkeypatch.setattr(pending, "CHUNK", 2)
    monkeypatch.setattr(pending, "PENDING", 2)
    small = pending.EmbedPass()
    seen: list[str] = []
    for i in range(9):
        small.add(f"s{i}", "email", f"Subject {i}", None, f"Body number {i}.")
        assert len(small._futures) <= 2, "add() waits instead of queueing without bound"
        seen += [sha for sha, _ in small.ready()]
    seen += [sha for sha, _ in small.take()]
    assert sorted(seen) == [f"s{i}" for i in range(9)] and small.embedded == 9
    small.close()


def test_vectors_off_then_on_embeds_the_unchanged_documents(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _write(ws, DOCS)
    off = _load(ws, vectors=False)
    assert off.vectors == 0
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'vectors'").fetchone() == (0,)
    assert _load(ws, vectors=False).status == "skipped"
    on = _load(ws)
    assert (on.status, on.inserted, on.vectors) == ("success", 0, 4)
    assert set(_vectors(ws)) == _shas(ws)


def test_model_unavailable_still_indexes_and_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.vectors import model

    def broken() -> Any:
        raise model.ModelUnavailable("test")

    fresh = model.Embedder()
    monkeypatch.setattr(model, "_load_offline", broken)
    monkeypatch.setattr(model, "_SHARED", fresh)
    ws = tmp_path / "ws"
    _write(ws, DOCS)
    res = _load(ws)
    assert (res.status, res.documents, res.vectors_unavailable) == ("success", 4, True)
    assert _vectors(ws) == {}
    monkeypatch.setattr(model, "_SHARED", model.Embedder())
    monkeypatch.undo()
    retry = _load(ws)
    assert (retry.status, retry.vectors, retry.vectors_unavailable) == ("success", 4, False)


def test_weighted_rrf_puts_keyword_matches_first() -> None:
    from engine.index.ranked import Searcher

    fused = Searcher._fuse({"bm25": [(1, -5.0), (2, -4.0)], "vector": [(3, 0.9), (2, 0.8)]})
    order = [d for d, _, _ in fused]
    assert order[:2] == [2, 1] and order[2] == 3
    evidence = {d: {r.name: r.position for r in rs} for d, _, rs in fused}
    assert evidence[2] == {"bm25": 2, "vector": 2} and evidence[3] == {"vector": 1}


# --- the query command ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("vectors")
    exs = [demo_extractor("g1", "gmail", records=80, seed=5), demo_extractor("dv", "dataverse", records=30, seed=5)]
    cfg = write_config(tmp, exs, stages={"canonize": {"mappings": MAPPINGS}})
    res = run_cli("run", "--config", str(cfg), timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return cfg, tmp / "ws"


def _query(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    res = run_cli("query", "--config", str(cfg), *args, timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def _text(doc: dict[str, Any]) -> str:
    d = derive(doc)
    return f"{d.title} {d.body}".lower()


def test_similar_finds_paraphrases_with_no_shared_word(demo: tuple[Path, Path]) -> None:
    cfg, ws = demo
    res = _query(cfg, "--similar", "video visit url will not load on my mobile", "--limit", "5", "--json")
    assert res.returncode == 0, res.stderr
    docs = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert len(docs) == 5
    assert sum("telehealth link" in _text(d) for d in docs) >= 4
    assert all("video" not in _text(d) for d in docs[:1])


def test_text_is_hybrid_and_explained(demo: tuple[Path, Path]) -> None:
    cfg, _ = demo
    res = _query(cfg, "--text", "superbill", "--explain", "--json", "--limit", "5")
    assert res.returncode == 0, res.stderr
    lines = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert lines and all("superbill" in _text(x["document"]) or "superbill" in orjson.dumps(x["document"]).decode().lower()
                         for x in lines)
    first = lines[0]["explain"]
    assert first["bm25"]["position"] >= 1 and "vector" in first and first["fused"] > 0
    # no document has all these words, yet hybrid finds the meaning; words-only finds nothing
    res = _query(cfg, "--text", "video visit url broken", "--json", "--limit", "5")
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 5
    assert "no document has every word of --text" in res.stderr, "a misspelt name must not look like hits"
    assert "every word" not in _query(cfg, "--text", "superbill", "--limit", "3").stderr
    res = _query(cfg, "--text", "video visit url broken", "--words-only", "--json")
    assert res.returncode == 0 and res.stdout == ""
    res = _query(cfg, "--text", "superbill", "--explain", "--limit", "3")
    assert res.returncode == 0 and "fused" in res.stdout and "bm25" in res.stdout


def test_filters_apply_to_ranked_search(demo: tuple[Path, Path]) -> None:
    cfg, _ = demo
    res = _query(cfg, "--similar", "home address", "--kind", "contact", "--json", "--limit", "0")
    docs = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert res.returncode == 0 and docs and {d["kind"] for d in docs} == {"contact"}
    res = _query(cfg, "--text", "telehealth", "--since", "2030-01-01", "--json")
    assert res.returncode == 0 and res.stdout == ""


def test_usage_errors(demo: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = demo
    for args in (["--text", "a", "--similar", "b"], ["--explain"], ["--similar", "  "], ["--words-only"]):
        res = _query(cfg, *args)
        assert res.returncode == 2, (args, res.stderr)
    exs = [demo_extractor("g1", "gmail", records=10, seed=5)]
    off = write_config(tmp_path, exs, stages={"canonize": {"mappings": MAPPINGS}, "index": {"vectors": False}})
    assert run_cli("run", "--config", str(off), timeout=300).returncode == 0
    res = _query(off, "--similar", "telehealth")
    # vectors are off: an index run alone never adds them, so the hint says to switch them on
    assert res.returncode == 2 and "no document vectors" in res.stderr and "stages.index.vectors: true" in res.stderr
    assert "ranking by words only" not in res.stderr
    res = _query(off, "--text", "telehealth", "--json")
    assert res.returncode == 0 and "ranking by words only" in res.stderr and "switched off" in res.stderr


def test_catching_up_after_a_model_change_is_bounded_per_run(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.index import reading

    ws = tmp_path / "ws"
    _write(ws, DOCS)
    _load(ws)
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        con.execute("UPDATE vectors SET model = 'some-older-model'")
    monkeypatch.setattr(reading, "CATCH_UP_VECTORS", 3)  # the pass over the file lives in reading.py
    assert _load(ws).vectors == 3
    assert _load(ws).vectors == 1
    assert _load(ws).status == "skipped"


def test_a_first_load_with_a_repeated_entity_is_redone_as_a_diff(tmp_path: Path) -> None:
    """A first load inserts rows directly; an entity twice in the file makes it roll back and
    load through the diff: the later line wins, its vector is there, the loser's object goes."""
    ws = tmp_path / "ws"
    later = _email(1, "Invoice 1042 paid", "Thank you, the balance is settled.")
    _write(ws, [*DOCS, later])
    res = _load(ws)
    assert (res.status, res.documents, res.inserted, res.duplicates, res.vectors) == ("success", 4, 4, 1, 5)
    with sqlite3.connect(ws / "vector-store" / "index.sqlite") as con:
        got = con.execute("SELECT doc_id, entity_id FROM documents ORDER BY doc_id").fetchall()
    assert got == [(1, "m0"), (2, "m1"), (3, "m2"), (4, "m3")], "doc_ids follow each entity's first line"
    later_sha = hashlib.sha256(orjson.dumps(later, option=orjson.OPT_SORT_KEYS) + b"\n").hexdigest()
    assert later_sha in _shas(ws) and set(_vectors(ws)) == _shas(ws)
    on_disk = {p.name.removesuffix(".json") for p in (ws / "vector-store" / "objects").glob("*/*/*.json")}
    assert on_disk == _shas(ws) and res.objects_removed == 1
    assert not list((ws / "vector-store").glob(".load-*")), "the scratch file is removed"
    assert _load(ws).status == "skipped"


def test_validate_reports_the_model_files(demo: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = demo
    res = run_cli("validate", "--config", str(cfg), "--skip-permissions", timeout=120)
    assert "vectors: wordllama 0.4.0.post1: model files installed" in res.stdout, res.stdout
    off = write_config(tmp_path, [demo_extractor("g1", "gmail", records=5)],
                       stages={"canonize": {"mappings": MAPPINGS}, "index": {"vectors": False}})
    res = run_cli("validate", "--config", str(off), "--skip-permissions", timeout=120)
    assert "stages.index.vectors is false" in res.stdout, res.stdout
