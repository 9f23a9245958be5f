"""The index worker's embedding step: vectors for new documents, computed beside the loading.

The loader hands each new document's kind, title, names and body to :meth:`EmbedPass.add`
while it reads the canonical file. That costs the reading thread one list append: the text
table (:func:`~engine.vectors.text.embed_text`), the model load and the embedding all run in
one background thread. The queue is handed to that thread when the loader calls
:meth:`EmbedPass.start` (after reading, while it waits for the object files to be written: a
wait without the GIL, so the embedding's Python work costs the load no time), or earlier when
the queue holds ``DEFER_CHARS`` characters (a large account: memory stays bounded, the
work overlaps the reading). The model loads in that thread as soon as the first
document is queued (an unchanged account never loads it), overlapping the reading.
:meth:`EmbedPass.take` returns the vectors for the
transaction; documents whose rows were too many to keep in memory are embedded there with
:meth:`EmbedPass.now`.

When the model cannot load, the pass records it (``unavailable``) and yields no vectors: the
documents still index, the worker emits a ``VECTORS_UNAVAILABLE`` warning, and the next run
tries again (the account counts as incomplete while vectors are missing).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from engine.vectors.model import Embedder, ModelUnavailable, embed_documents, shared
from engine.vectors.store import to_blobs
from engine.vectors.text import DocText, embed_text

BATCH = 2048
"""Texts embedded per step in the background thread."""

DEFER_CHARS = 64 * 1024 * 1024
"""Characters of queued bodies after which the queue goes to the background thread before
:meth:`EmbedPass.start` (the queue holds references to strings the loader mostly keeps anyway)."""

Pending = tuple[str, str, str | None, str | None, str | None]
"""sha256, kind, title, names, body."""


class EmbedPass:
    """Collects new documents' texts and embeds them in a background thread."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or shared()
        self._pool: ThreadPoolExecutor | None = None
        self._queue: list[Pending] = []
        self._chars = 0
        self._futures: list[Future[tuple[list[str], list[bytes]]]] = []
        self._seen: set[str] = set()
        self._ready: dict[str, bytes] = {}
        self.unavailable = False
        self.embedded = 0

    def add(self, sha256: str, kind: str, title: str | None, names: str | None, body: str | None) -> None:
        """Queue one document (a sha256 queued before is ignored, in the background thread)."""
        if self._pool is None:
            self._begin()
        self._queue.append((sha256, kind, title, names, body))
        if body is not None:
            self._chars += len(body)
            if self._chars > DEFER_CHARS:
                self.start()

    def start(self) -> None:
        """Hand everything queued so far to the background thread."""
        queue, self._queue, self._chars = self._queue, [], 0
        if not queue or self.unavailable:
            return
        if self._pool is None:
            self._begin()
        assert self._pool is not None
        self._futures.append(self._pool.submit(self._embed_queue, queue))

    def _begin(self) -> None:
        """Start the background thread and load the model there now, while the loader reads."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embed")
        self._futures.append(self._pool.submit(self._load))

    def _load(self) -> tuple[list[str], list[bytes]]:
        self.embedder.load()
        return [], []

    def _embed_queue(self, queue: list[Pending]) -> tuple[list[str], list[bytes]]:
        """(sha256s, BLOBs) of the queue's documents not embedded before (background thread)."""
        seen = self._seen
        shas: list[str] = []
        texts: list[DocText] = []
        for sha, kind, title, names, body in queue:
            if sha not in seen:
                seen.add(sha)
                shas.append(sha)
                texts.append(embed_text(kind, title, names, body))
        blobs: list[bytes] = []
        for i in range(0, len(texts), BATCH):
            blobs += self._embed(texts[i:i + BATCH])
        return shas, blobs

    def _embed(self, texts: list[DocText]) -> list[bytes]:
        return to_blobs(embed_documents(self.embedder, texts))

    def take(self) -> dict[str, bytes]:
        """Wait for every queued batch; sha256 -> stored vector BLOB of every text queued so
        far (a loader that plans again keeps what the first plan embedded); empty if the model
        is unavailable."""
        self.start()
        futures, self._futures = self._futures, []
        for future in futures:
            try:
                shas, got = future.result()
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
