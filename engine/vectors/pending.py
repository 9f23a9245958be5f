"""The index worker's embedding step: vectors for new documents, computed beside the parsing.

The loader hands each new document's text to :meth:`EmbedPass.add` while it reads the
canonical file; batches are embedded by one background thread (the tokenizer and numpy
release the GIL, so this overlaps with parsing and with the object writer's threads), and the
model loads in that thread on the first batch, so an unchanged account never loads it.
:meth:`EmbedPass.take` returns the vectors for the transaction; documents whose rows were
too many to keep in memory are embedded there with :meth:`EmbedPass.now`.

When the model cannot load, the pass records it (``unavailable``) and yields no vectors: the
documents still index, the worker emits a ``VECTORS_UNAVAILABLE`` warning, and the next run
tries again (the account counts as incomplete while vectors are missing).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from engine.vectors.model import Embedder, ModelUnavailable, embed_documents, shared
from engine.vectors.store import to_blobs
from engine.vectors.text import DocText

BATCH = 2048
"""Texts per background batch."""


class EmbedPass:
    """Collects (sha256, DocText) pairs and embeds them in a background thread."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or shared()
        self._pool: ThreadPoolExecutor | None = None
        self._shas: list[str] = []
        self._texts: list[DocText] = []
        self._futures: list[tuple[list[str], Future[list[bytes]]]] = []
        self._seen: set[str] = set()
        self._ready: dict[str, bytes] = {}
        self.unavailable = False
        self.embedded = 0

    def add(self, sha256: str, text: DocText) -> None:
        """Queue one document's text (a sha256 queued before is ignored)."""
        if sha256 in self._seen or self.unavailable:
            return
        self._seen.add(sha256)
        self._shas.append(sha256)
        self._texts.append(text)
        if len(self._texts) >= BATCH:
            self._submit()

    def _submit(self) -> None:
        if not self._texts:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="embed")
        shas, texts = self._shas, self._texts
        self._shas, self._texts = [], []
        self._futures.append((shas, self._pool.submit(self._embed, texts)))

    def _embed(self, texts: list[DocText]) -> list[bytes]:
        return to_blobs(embed_documents(self.embedder, texts))

    def take(self) -> dict[str, bytes]:
        """Wait for every queued batch; sha256 -> stored vector BLOB of every text queued so
        far (a loader that plans again keeps what the first plan embedded); empty if the model
        is unavailable."""
        self._submit()
        futures, self._futures = self._futures, []
        for shas, future in futures:
            try:
                got = future.result()
            except ModelUnavailable:
                self.unavailable = True
                continue
            self._ready.update(zip(shas, got, strict=True))
            self.embedded += len(got)
        return {} if self.unavailable else self._ready

    def now(self, pairs: list[tuple[str, DocText]]) -> list[tuple[str, bytes]]:
        """Embed ``(sha256, text)`` pairs in this thread (for rows re-derived in the transaction)."""
        if self.unavailable or not pairs:
            return []
        try:
            blobs = self._embed([t for _, t in pairs])
        except ModelUnavailable:
            self.unavailable = True
            return []
        self.embedded += len(blobs)
        return [(sha, blob) for (sha, _), blob in zip(pairs, blobs, strict=True)]

    def close(self) -> None:
        """Stop the background thread (abandoning queued work on an error)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
