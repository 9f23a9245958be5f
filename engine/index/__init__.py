"""The index stage's document store (the "vector-projector"): SQLite rows + content-addressed files.

* :mod:`engine.index.store` — schema, connections, the object layout and reads, garbage collection.
* :mod:`engine.index.objects` — the object writer (files created once, by writer threads, then
  by a helper process: :mod:`engine.index.objproc`; the file rules in :mod:`engine.index.objfiles`).
* :mod:`engine.index.fields` — which fields of each canonical kind feed titles, times, search.
* :mod:`engine.index.load` — replacing one account's documents atomically, the file read once.
* :mod:`engine.index.sink` — the load's insert thread (SQLite work beside the reading).
* :mod:`engine.index.diff` — a reload's diff in a scratch SQLite file, and the swap.
* :mod:`engine.index.outcome` — a load's result, failure codes, canonical paths.
* :mod:`engine.index.query` — the query API (``Store`` and ``AsyncStore``).
* :mod:`engine.index.ranked` — ranking by meaning and hybrid ranking (numpy and the model
  load only here and in the index worker's embedding step).

See docs/index.md. Nothing is imported here, so the index worker does not load the
async query machinery it never uses.
"""

from __future__ import annotations
