"""Search by meaning: per-document vectors from a model that ships inside an installed package.

* :mod:`engine.vectors.model` — the offline embedding model (wordllama, loaded lazily).
* :mod:`engine.vectors.text` — which text of each kind is embedded.
* :mod:`engine.vectors.store` — the ``vectors`` table in the index database.
* :mod:`engine.vectors.pending` — the index worker's embedding step.

Ranking with these vectors (similarity, hybrid ranking, explain) is a query concern and
lives in :mod:`engine.index.ranked`. See docs/index.md. Nothing is imported here: numpy and the model load only where they are
used (the index worker, the query command), never in the dashboard.
"""

from __future__ import annotations
