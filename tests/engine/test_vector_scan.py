"""Ranking by meaning on a large index: the vectors streamed, not held (engine/index/ranked.py).

Above ``CACHE_ROWS`` vectors a search reads them ``STREAM_ROWS`` at a time and keeps only
scores; without a filter it scores them in the vectors table's own order and looks up the
documents of the best ones only; with a filter that keeps few documents it reads only their
vectors. Both must rank exactly like the matrix held in memory:
here the thresholds are lowered on a real demo index (real pipeline run, real SQLite, the
real model) and every way of ranking is compared with the held matrix.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from engine.index import ranked
from engine.index.query import Query, Store
from engine.store.workspace import Workspace
from tests.helpers import REPO, demo_extractor, run_cli, write_config

MAPPINGS = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["stages"]["canonize"]["mappings"]
EXTRACTORS = [demo_extractor("g1", "gmail", records=80, seed=5), demo_extractor("dv", "dataverse", records=30, seed=5)]
TEXTS = ("video visit url will not load", "home address", "superbill", "appointment")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("vector-scan")
    cfg = write_config(tmp, EXTRACTORS, stages={"canonize": {"mappings": MAPPINGS}})
    res = run_cli("run", "--config", str(cfg), timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return tmp / "ws"


def ranking(ws: Path, text: str, query: Query, mode: ranked.Mode) -> list[tuple[int, float, tuple[ranked.Ranking, ...]]]:
    with Store.open(Workspace(ws)) as store:
        return [(h.document.doc_id, h.score, h.rankings) for h in ranked.Searcher(store).search(text, query, mode)]


def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranked, "CACHE_ROWS", 0)
    monkeypatch.setattr(ranked, "STREAM_ROWS", 7)  # many steps, and a short last one


QUERIES = [Query(limit=5), Query(limit=20, offset=3), Query(limit=None), Query(kind="contact", limit=5),
           Query(since="2020-01-01", limit=10), Query(limit=5, dedupe=True)]


def test_streamed_rankings_equal_the_held_matrix(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = {(t, i, m): ranking(demo, t, q, m) for t in TEXTS for i, q in enumerate(QUERIES)
            for m in ("vector", "hybrid")}
    assert all(held.values()) and len({tuple(v) for v in held.values()}) > 10
    streamed(monkeypatch)
    calls: list[str] = []
    for name in ("_streamed", "_top_by_rowid", "_of_documents", "matrix"):
        real = getattr(ranked.Searcher, name)
        monkeypatch.setattr(ranked.Searcher, name, lambda self, *a, _r=real, _n=name: calls.append(_n) or _r(self, *a))
    for selective in (0, 10**9):  # a filter's documents' vectors only, or every vector and the filter after
        monkeypatch.setattr(ranked, "SELECTIVE", selective)
        for (t, i, m), want in held.items():
            assert ranking(demo, t, QUERIES[i], m) == want, (t, QUERIES[i], m, selective)
    assert "matrix" not in calls and {"_streamed", "_top_by_rowid", "_of_documents"} <= set(calls)


def test_a_vector_without_its_document_never_shortens_the_page(demo: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(demo, ws)
    text = TEXTS[0]
    best = ranking(ws, text, Query(limit=80), "vector")
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    with con:  # the 70 best documents go, their vectors stay
        con.executemany("DELETE FROM documents WHERE doc_id = ?", [(d,) for d, _, _ in best[:70]])
    con.close()
    held = ranking(ws, text, Query(limit=5), "vector")
    streamed(monkeypatch)
    assert ranking(ws, text, Query(limit=5), "vector") == held
    assert [d for d, _, _ in held] == [d for d, _, _ in best[70:75]]


def test_the_query_command_counts_documents_without_a_vector(demo: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, EXTRACTORS, stages={"canonize": {"mappings": MAPPINGS}})
    shutil.copytree(demo, tmp_path / "ws")
    con = sqlite3.connect(tmp_path / "ws" / "vector-store" / "index.sqlite")
    total = con.execute("SELECT count(*) FROM documents").fetchone()[0]
    with con:
        con.execute("DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors LIMIT 3)")
    con.close()
    res = run_cli("query", "--config", str(cfg), "--text", "telehealth", "--limit", "3", timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"3 of {total:,} documents have no vector yet" in res.stderr
    res = run_cli("query", "--config", str(cfg), "--text", "telehealth", "--words-only", "--limit", "3", timeout=120)
    assert res.returncode == 0 and "no vector" not in res.stderr
