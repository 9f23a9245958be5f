"""Ranking by meaning and hybrid ranking over the index: exact cosine similarity, fused with bm25.

* **vector**: the query text is embedded with the same model as the documents; every document
  vector of that model is scored by cosine similarity (a dot product: all vectors are unit
  length) with numpy, brute force. Up to :data:`CACHE_ROWS` vectors the matrix is read once
  per :class:`Searcher` and kept until the index changes (``PRAGMA data_version``), so
  repeated queries cost one matrix-vector product (about 5-15 ms at 100,000 documents).
  Beyond that the vectors are streamed: read :data:`STREAM_ROWS` at a time and scored as
  they come, keeping only each document's score, so memory stays flat whatever the index's
  size (at 1,000,000 documents a query held 2.4 GB and took 8-10 s; streamed 0.13 GB, 1.7 s).
* **hybrid**: the bm25 ranking (:meth:`engine.index.query.Store.find`) and the vector ranking
  are fused by weighted reciprocal rank fusion: ``score = sum(weight / (RRF_K + position))``
  over the rankings a document appears in (``RRF_WEIGHTS``). Ranks, not scores, are fused, so bm25's and cosine's
  different scales never need calibrating.

Every filter of the :class:`~engine.index.query.Query` applies to every ranking through the
same :func:`~engine.index.query.filter_clauses`, so a filter added there (a client, from the
clients layer) holds for bm25, vector and hybrid alike. Nothing here is imported by the
dashboard: numpy and the model load only in a process that searches by meaning.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engine.index.query import COLUMNS, Document, Query, Store, document_from_row, filter_clauses
from engine.vectors import store as vector_store
from engine.vectors.model import Embedder, shared
from engine.vectors.text import TEXT_VERSION

if TYPE_CHECKING:
    import numpy.typing as npt

Mode = Literal["bm25", "vector", "hybrid"]

RRF_K = 60
"""The constant of reciprocal rank fusion (the usual 60: damps the weight of top positions)."""

RRF_WEIGHTS = {"bm25": 2.0, "vector": 1.0}
"""Weight of each ranking in the fusion. bm25's double weight means a document with every
word of the query, within bm25's first ~60 positions, outranks one found by meaning alone:
the vector ranking reorders the keyword matches and fills in after them, so a keyword query
loses nothing to hybrid ranking (measured in bench/search.py)."""

CANDIDATES = 100
"""How deep each ranking is read before fusion (more when the page asks for more)."""

CACHE_ROWS = 131_072
"""Vectors up to which a :class:`Searcher` keeps the float32 matrix (128 MiB) between queries."""
STREAM_ROWS = 16_384
"""Vectors read and scored per step above :data:`CACHE_ROWS` (8 MiB of float16 BLOBs)."""
SELECTIVE = 4
"""Above :data:`CACHE_ROWS`, a filter that keeps at most 1/SELECTIVE of the vectors' count has
only its documents' vectors read (:meth:`Searcher._of_documents`); with a wider one every
vector is scored and the best are checked against the filter (:meth:`Searcher._top_by_rowid`)."""
VECTORS_SQL = ("SELECT d.doc_id, v.vector FROM documents d JOIN vectors v ON v.sha256 = d.sha256 "
               "WHERE v.model = ?")


class VectorsMissing(Exception):
    """The index has no vectors of the current model (never built with vectors, or another model)."""


@dataclass(frozen=True)
class Ranking:
    """Where one ranking put a document."""

    name: str
    """``bm25`` or ``vector``."""
    position: int
    """1 for the best."""
    score: float
    """bm25 score (lower is better) or cosine similarity (higher is better)."""


@dataclass(frozen=True)
class Hit:
    """A ranked document with the evidence for its place."""

    document: Document
    score: float
    """The fused score (reciprocal rank fusion; higher is better)."""
    rankings: tuple[Ranking, ...]
    """The rankings the document appeared in (for ``--explain``)."""


def _dot(matrix: npt.NDArray[np.float32], qv: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each row's dot product with ``qv``, row by row: the same bits however the rows are
    split into blocks (BLAS's matrix-vector product varies in the last bits with the block's
    size), as fast."""
    out: npt.NDArray[np.float32] = np.einsum("ij,j->i", matrix, qv)
    return out


def _batches(cur: sqlite3.Cursor) -> Iterator[list[Any]]:
    """The cursor's rows, :data:`STREAM_ROWS` at a time."""
    while rows := cur.fetchmany(STREAM_ROWS):
        yield rows


def _scored(batches: Iterable[list[Any]], qv: npt.NDArray[np.float32]
            ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(id, score) of every ``(id, vector BLOB)`` row, batch by batch: only ids and scores
    stay. VectorsMissing when there is none."""
    id_parts: list[npt.NDArray[np.int64]] = []
    score_parts: list[npt.NDArray[np.float32]] = []
    for rows in batches:
        if not rows:
            continue
        id_parts.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        score_parts.append(_dot(vector_store.from_blobs([r[1] for r in rows]), qv))
    if not id_parts:
        raise VectorsMissing()
    return np.concatenate(id_parts), np.concatenate(score_parts)


def _at_least_kth(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Positions of every score at least the ``k``-th largest (more than ``k`` when tied)."""
    if k >= len(scores):
        return np.arange(len(scores))
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    return np.flatnonzero(scores >= kth)


def _best(ids: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` best by score, then by the larger doc_id: the same documents
    whatever order the vectors were read in (ties at the cut included by doc_id, not by chance)."""
    cand = _at_least_kth(scores, k)
    return cand[np.lexsort((-ids[cand], -scores[cand]))][:k]


class _Matrix:
    def __init__(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32], version: int) -> None:
        self.ids, self.vectors, self.version = ids, vectors, version


class Searcher:
    """Search one opened :class:`Store` by words, by meaning, or both."""

    def __init__(self, store: Store, embedder: Embedder | None = None) -> None:
        self.store = store
        self.embedder = embedder or shared()
        self.model = vector_store.model_key(self.embedder.model, TEXT_VERSION)
        self._matrix: _Matrix | None = None
        self._vectors = 0
        self.embedded: int | None = None
        """Documents with a vector of the current model, counted by the last vector ranking."""

    def coverage(self) -> tuple[int, int]:
        """(documents, documents with a vector of the current model)."""
        conn = self.store.conn
        total = int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
        if not vector_store.has_table(conn):
            return total, 0
        with_vec = conn.execute("SELECT count(*) FROM documents d JOIN vectors v ON v.sha256 = d.sha256 "
                                "WHERE v.model = ?", (self.model,)).fetchone()[0]
        return total, int(with_vec)

    def matrix(self) -> _Matrix:
        """The current model's vectors with their doc_ids (cached until the index changes)."""
        conn = self.store.conn
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if self._matrix is not None and self._matrix.version == version:
            return self._matrix
        if not vector_store.has_table(conn):
            raise VectorsMissing()
        rows = conn.execute(VECTORS_SQL, (self.model,)).fetchall()
        if not rows:
            raise VectorsMissing()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = vector_store.from_blobs([r[1] for r in rows])
        self._matrix = _Matrix(ids, vectors, version)
        return self._matrix

    def _cached(self) -> bool:
        """Whether the matrix is (or may be) kept in memory: at most :data:`CACHE_ROWS` vectors
        (counted by the vectors table's key, without reading a vector)."""
        if self._matrix is not None:
            return True
        conn = self.store.conn
        if not vector_store.has_table(conn):
            raise VectorsMissing()
        self._vectors = int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
        return self._vectors <= CACHE_ROWS

    def scores(self, qv: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(doc_ids, cosine scores) of every document with a vector of the current model;
        VectorsMissing when none has one. Sets :attr:`embedded` to their number."""
        if self._cached():
            m = self.matrix()
            ids, scores = m.ids, _dot(m.vectors, qv)
        else:
            ids, scores = self._streamed(qv)
        self.embedded = len(ids)
        return ids, scores

    def _streamed(self, qv: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Score the vectors :data:`STREAM_ROWS` at a time: only doc_ids and scores stay."""
        return _scored(_batches(self.store.conn.execute(VECTORS_SQL, (self.model,))), qv)

    def _of_documents(self, qv: npt.NDArray[np.float32], allowed: npt.NDArray[np.int64]
                      ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(doc_ids, scores) of these documents' vectors only, looked up 500 at a time: a
        filter that keeps few documents (a client, a kind) reads few vectors."""
        conn = self.store.conn
        wanted = [int(d) for d in np.sort(allowed)]
        batches = (conn.execute(
            "SELECT d.doc_id, v.vector FROM documents d JOIN vectors v ON v.sha256 = d.sha256 "
            f"WHERE d.doc_id IN ({','.join('?' * len(chunk))}) AND v.model = ?", [*chunk, self.model]).fetchall()
            for chunk in (wanted[i:i + 500] for i in range(0, len(wanted), 500)))
        try:
            return _scored(batches, qv)
        except VectorsMissing:  # none of these documents has a vector: nothing to rank
            return np.zeros(0, np.int64), np.zeros(0, np.float32)

    def search(self, text: str, query: Query, mode: Mode = "hybrid") -> list[Hit]:
        """Documents for ``text`` under ``query``'s filters, paging and dedupe, best first."""
        base = dataclasses.replace(query, text=None)
        page = (base.offset + base.limit) if base.limit is not None else None
        depth = None if page is None else max(CANDIDATES, 2 * page)
        lists: dict[str, list[tuple[int, float]]] = {}
        if mode in ("bm25", "hybrid"):
            docs = self.store.find(dataclasses.replace(base, text=text, limit=depth, offset=0, dedupe=False))
            lists["bm25"] = [(d.doc_id, float(d.rank or 0.0)) for d in docs]
        if mode in ("vector", "hybrid"):
            lists["vector"] = self._vector_ranking(text, base, depth)
        hits = self._fuse(lists)
        docs_by_id = self._documents([doc_id for doc_id, _, _ in hits])
        out = [Hit(docs_by_id[doc_id], score, rankings) for doc_id, score, rankings in hits
               if doc_id in docs_by_id]
        if base.dedupe:
            out = self._dedupe(out, base)
        end = None if base.limit is None else base.offset + base.limit
        return out[base.offset:end]

    def _vector_ranking(self, text: str, q: Query, depth: int | None) -> list[tuple[int, float]]:
        cached = self._cached()  # VectorsMissing before the model loads
        self.embedded = None  # counted below when every vector is read
        qv = self.embedder.embed([text])[0]
        if not qv.any():
            raise ValueError("the search text has no words the model knows")
        where, params = filter_clauses(q)
        if not cached and not where and depth is not None:
            return self._top_by_rowid(qv, depth)
        if where:
            allowed = np.fromiter((r[0] for r in self.store.conn.execute(
                f"SELECT d.doc_id FROM documents d WHERE {' AND '.join(where)}", params)), dtype=np.int64)
            if not cached and len(allowed) * SELECTIVE <= self._vectors:
                ids, scores = self._of_documents(qv, allowed)
            elif not cached and depth is not None:
                return self._top_by_rowid(qv, depth, allowed)
            else:
                ids, scores = self.scores(qv)
                scores = np.where(np.isin(ids, allowed), scores, -np.inf)
        else:
            ids, scores = self.scores(qv)
        eligible = int(np.count_nonzero(scores > -np.inf))
        k = eligible if depth is None else min(depth, eligible)
        if k == 0:
            return []
        top = _best(ids, scores, k)
        return [(int(ids[i]), float(scores[i])) for i in top]

    def _top_by_rowid(self, qv: npt.NDArray[np.float32], depth: int,
                      allowed: npt.NDArray[np.int64] | None = None) -> list[tuple[int, float]]:
        """The ``depth`` best documents (of ``allowed``, when given) on a large index: the
        vectors are scored in their table's own order (no look-up of their documents: at
        1,000,000 that look-up was 3 of 4 s), and only the best ones' documents are found,
        four times more each round while fewer than ``depth`` of them are allowed (or when a
        best vector has no document: it is removed with its last one, so rarely)."""
        keep = None if allowed is None else set(allowed.tolist())
        conn = self.store.conn
        rowids, scores = _scored(_batches(conn.execute("SELECT rowid, vector FROM vectors WHERE model = ?",
                                                       (self.model,))), qv)
        self.embedded = len(rowids)
        want = min(len(rowids), depth + 64)
        while True:  # every vector scoring at least the want-th best: ties are never cut here
            top = _at_least_kth(scores, want)
            score_of = {int(rowids[i]): float(scores[i]) for i in top}
            ranked: list[tuple[int, float]] = []
            keys = list(score_of)
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                ranked += [(int(doc_id), score_of[rid]) for rid, doc_id in conn.execute(
                    "SELECT v.rowid, d.doc_id FROM vectors v JOIN documents d ON d.sha256 = v.sha256 "
                    f"WHERE v.rowid IN ({','.join('?' * len(chunk))})", chunk)
                    if keep is None or doc_id in keep]
            if len(ranked) >= depth or want >= len(rowids):
                break
            want = min(len(rowids), want * 4)
        ranked.sort(key=lambda r: (-r[1], -r[0]))
        return ranked[:depth]

    @staticmethod
    def _fuse(lists: dict[str, list[tuple[int, float]]]) -> list[tuple[int, float, tuple[Ranking, ...]]]:
        fused: dict[int, float] = {}
        evidence: dict[int, list[Ranking]] = {}
        for name, ranking in lists.items():
            for position, (doc_id, score) in enumerate(ranking, start=1):
                fused[doc_id] = fused.get(doc_id, 0.0) + RRF_WEIGHTS[name] / (RRF_K + position)
                evidence.setdefault(doc_id, []).append(Ranking(name, position, score))
        order = sorted(fused, key=lambda d: (-fused[d], min(r.position for r in evidence[d]), -d))
        return [(d, fused[d], tuple(evidence[d])) for d in order]

    def _documents(self, ids: list[int]) -> dict[int, Document]:
        out: dict[int, Document] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.store.conn.execute(
                    f"SELECT {COLUMNS}, NULL, 1, d.source || '/' || d.account FROM documents d "
                    f"WHERE d.doc_id IN ({marks})", chunk):
                out[r[0]] = document_from_row(r)
        return out

    def _dedupe(self, hits: list[Hit], q: Query) -> list[Hit]:
        """One hit per dedupe key (the best ranked); copies counted among the filtered documents."""
        seen: set[str] = set()
        kept: list[Hit] = []
        for h in hits:
            key = h.document.dedupe_key
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            kept.append(h)
        keys = [h.document.dedupe_key for h in kept if h.document.dedupe_key is not None]
        copies: dict[str, tuple[int, tuple[str, ...]]] = {}
        where, params = filter_clauses(q)
        cond = "".join(f" AND {w}" for w in where)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, n, accounts in self.store.conn.execute(
                    f"SELECT d.dedupe_key, count(*), group_concat(d.source || '/' || d.account, ',') "
                    f"FROM documents d WHERE d.dedupe_key IN ({marks}){cond} GROUP BY d.dedupe_key",
                    [*chunk, *params]):
                copies[key] = (int(n), tuple(sorted(set(str(accounts).split(",")))))
        out: list[Hit] = []
        for h in kept:
            got = copies.get(h.document.dedupe_key or "")
            if got is not None:
                h = dataclasses.replace(h, document=dataclasses.replace(
                    h.document, copies=got[0], accounts=got[1]))
            out.append(h)
        return out


def explain_line(hit: Hit) -> dict[str, Any]:
    """The evidence of one hit as plain data (``--explain`` prints it)."""
    out: dict[str, Any] = {"fused": round(hit.score, 6)}
    for r in hit.rankings:
        out[r.name] = {"position": r.position, "score": round(r.score, 4)}
    return out
