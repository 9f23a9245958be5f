"""What is on disk and how it is written: the lowest layer of the engine.

* :mod:`engine.store.workspace` — the workspace's paths and its permission checks.
* :mod:`engine.store.lock` — the workspace's run lock (one writer at a time).
* :mod:`engine.store.fsutil` — private (0600/0700), atomic writes.
* :mod:`engine.store.process` — no core dumps (set by every entry point and worker).
* :mod:`engine.store.fsgen` — generations: a folder of files replaced as one.
* :mod:`engine.store.state` — the run history ``state/lorch.sqlite``, written from events.
* :mod:`engine.store.history` — reading that history with plain ``sqlite3`` (no event models).
* :mod:`engine.store.logsink` — the JSON-lines log of events.

Its modules import only :mod:`engine.errors` and :mod:`engine.events` of the engine. Nothing
is imported here, so ``lorchestra status`` (which reads the history) loads no event models.
"""

from __future__ import annotations
