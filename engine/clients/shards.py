"""Chart folders written by two processes, so the project task uses both cores.

Rendering and staging a chart folder is pure Python work (Markdown tables, hard links,
file writes), about a third of the project task's CPU, and the folders do not depend on
each other: every folder is staged under its own hidden name and swapped in on its own
(:mod:`engine.clients.folders`). So the clients are dealt into two interleaved shards; a
forked child writes one, the task itself the other, each with its own read connection to
the index. The child:

* inherits the projection (clients, cards, the measurements) by ``fork``: nothing is
  serialised, and it never touches the parent's SQLite connections (it opens its own and
  leaves by ``os._exit``, so no finaliser runs on inherited state);
* dies with the task (``PR_SET_PDEATHSIG``: a ``kill -9`` of the task kills it too, so no
  orphan ever races the next run's recovery), and is killed when the task stops early
  (cancel, an error); whatever it staged is removed by the next run's ``folders.recover``,
  and every folder it swapped in is whole (``tests/engine/test_crash_project.py``);
* reports its PHI-free counts (:class:`engine.clients.charts.ChartStats`) through a pipe.

Below :data:`SHARD_MIN` clients, or without ``fork``, one process writes every folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson

from engine.clients import folders, forked
from engine.clients.charts import ChartStats, remove_gone, write_folders
from engine.clients.model import DocFacts, Link, Projection

SHARD_MIN = int(os.environ.get("LORCH_CHART_SHARD_MIN", "64"))
"""Clients below which forking a second writer costs more than it saves
(``LORCH_CHART_SHARD_MIN``: 1 always forks, as the crash harness does)."""

Items = Callable[[str], Iterable[tuple[Link, DocFacts]]]


ChartWriterFailed = forked.ChildFailed
"""The second chart writer process ended without its counts."""


def _counts(stats: ChartStats) -> bytes:
    return orjson.dumps(dataclasses.asdict(stats))


def write_charts(root: Path, p: Projection, now: str, *, items_of: Items,
                 child_items: Callable[[], Items],
                 on_folder: Callable[[int], None] | None = None,
                 extra: Callable[[str], dict[str, bytes]] | None = None,
                 ordered: bool = False) -> ChartStats:
    """Like :func:`engine.clients.charts.write_charts`, with the folders shared by two processes.

    ``child_items`` is called in the child to open its own way to the items (a connection);
    ``ordered``: both give them in chart order (:func:`engine.clients.charts.write_folders`).
    """
    folders.recover(root)
    ids = sorted(p.clients)
    if len(ids) < SHARD_MIN or not forked.can_fork():
        stats = write_folders(root, p, ids, now, on_folder, extra, items_of, ordered)
    else:
        mine, theirs = ids[0::2], ids[1::2]
        child = forked.Child(lambda: _counts(write_folders(root, p, theirs, now, None, extra, child_items(), ordered)))
        try:
            report = on_folder
            if on_folder is not None:  # the child does as many: count both halves
                report = lambda n: on_folder(min(2 * n, len(ids)))  # noqa: E731
            stats = write_folders(root, p, mine, now, report, extra, items_of, ordered)
            got = orjson.loads(child.result())
            other = ChartStats(**{f.name: int(got[f.name]) for f in dataclasses.fields(ChartStats)})
        finally:
            child.stop()
        stats.written += other.written
        stats.unchanged += other.unchanged
        stats.bytes += other.bytes
        if on_folder is not None:
            on_folder(len(ids))
    stats.removed = remove_gone(root, p)
    return stats
