"""The index worker's embedding step: vectors for new documents, computed beside the loading.

The loader hands each new document's kind, title, names and body to :meth:`EmbedPass.add`
while it reads the canonical file. That costs the reading thread one list append: the text
table (:func:`~engine.vectors.text.embed_text`), the model load and the embedding all run in
one background thread. Every ``CHUNK`` documents (or ``CHUNK_CHARS`` characters of bodies)
the queue goes to that thread; the loader collects finished vectors with :meth:`ready` as it
goes (they go into the index transaction right away) and the rest with :meth:`take` at the
end. At most ``PENDING`` chunks wait for the thread: :meth:`add` then waits, so the memory
held by queued texts and computed vectors is bounded whatever the account's size. The
model loads in that thread as soon as the first document is queued (an unchanged account
never loads it), overlapping the reading.

When the model cannot load, the pass records it (``unavailable``) and yields no vectors: the
documents still index, the worker emits a ``VECTORS_UNAVAILABLE`` warning, and the next run
tries again (the account counts as incomplete while vectors are missing).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from engine.vectors.model import Embedder, ModelUnavailable, embed_documents, shared
from engine.vectors.store import to_blobs
from engine.vectors.text import DocText, embed_text

CHUNK = 1024
"""Documents handed to the background thread at a time."""

CHUNK_CHARS = 4 * 1024 * 1024
"""Characters of queued bodies after which the queue goes to the thread before ``CHUNK``."""

PENDING = 4
"""Chunks queued for (or finished by) the thread before :meth:`EmbedPass.add` waits."""

Pending = tuple[str, str, str | None, str | None, str | None]
"""sha256, kind, title, names, body."""

Vectors = list[tuple[str, bytes]]
"""(sha256, stored vector BLOB) pairs."""


class EmbedPass:
    """Collects new documents' texts and embeds them in a background thread, in bounded chunks."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or shared()
        self._pool: ThreadPoolExecutor | None = None
        self._queue: list[Pending] = []
        self._chars = 0
        self._futures: deque[Future[Vectors]] = deque()
        self._done: Vectors = []
        self.unavailable = False
        self.embedded = 0

    def add(self, sha256: str, kind: str, title: str | None, names: str | None, body: str | None) -> None:
        """Queue one document (a sha256 queued twice in one chunk is embedded once)."""
        if self._pool is None:
            self._begin()
        self._queue.append((sha256, kind, title, names, body))
        if body is not None:
            self._chars += len(body)
        if len(self._queue) >= CHUNK or self._chars > CHUNK_CHARS:
            self.start()

    def start(self) -> None:
        """Hand everything queued so far to the background thread (waiting while it is behind)."""
        queue, self._queue, self._chars = self._queue, [], 0
        if not queue or self.unavailable:
            return
        if self._pool is None:
            self._begin()
        assert self._pool is not None
        while len(self._futures) >= PENDING:
            self._collect(self._futures.popleft())
        self._futures.append(self._pool.submit(self._embed_queue, queue))

    def _begin(self) -> None:
        """Start the background thread and load the model there now, while the loader reads."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embed")
        self._futures.append(self._pool.submit(self._load))

    def _load(self) -> Vectors:
        self.embedder.load()
        return []

    def _embed_queue(self, queue: list[Pending]) -> Vectors:
        """(sha256, BLOB) of the queue's documents (background thread)."""
        texts: dict[str, DocText] = {}
        for sha, kind, title, names, body in queue:
            if sha not in texts:
                texts[sha] = embed_text(kind, title, names, body)
        blobs = to_blobs(embed_documents(self.embedder, list(texts.values())))
        return list(zip(texts, blobs, strict=True))

    def _collect(self, future: Future[Vectors]) -> None:
        try:
            got = future.result()
        except ModelUnavailable:
            self.unavailable = True
            return
        self._done += got
        self.embedded += len(got)

    def ready(self) -> Vectors:
        """The vectors finished so far (each returned once; empty if the model is unavailable)."""
        while self._futures and self._futures[0].done():
            self._collect(self._futures.popleft())
        done, self._done = self._done, []
        return [] if self.unavailable else done

    def take(self) -> Vectors:
        """Embed what is still queued, wait for the thread, and return every vector not yet
        returned by :meth:`ready` (empty if the model is unavailable)."""
        self.start()
        while self._futures:
            self._collect(self._futures.popleft())
        return self.ready()

    def close(self) -> None:
        """Stop the background thread (abandoning queued work on an error)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
