"""The measures step's published files: measurements, meta, rejects and duplicates as one generation.

Split from :mod:`engine.measures.step` (which scores and links) because publishing is a
concern of its own: the four files of the account ``measures/scored`` are one
:class:`engine.store.fsgen.GenerationStore` generation, like a canonized account's
(:mod:`engine.canon.publish`), compared by size and sha256 with what is published so an
unchanged set is not republished, and streamed from the spill, never joined in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine.canon import publish
from engine.canon.publish import AccountFiles
from engine.measures.registry import Registry
from engine.measures.score import MEASURES_ACCOUNT, MEASURES_SOURCE
from engine.measures.spill import Spill
from engine.store.fsgen import GenerationMissing
from engine.store.fsutil import ensure_dir, json_bytes, open_private
from engine.store.workspace import Workspace

if TYPE_CHECKING:
    from engine.measures.step import Scored


class _File:
    """One published file, streamed from the spill: its lines, sha256 and size."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        h, size = hashlib.sha256(), 0
        for line in lines:
            h.update(line)
            size += len(line)
        self.sha256, self.size = h.hexdigest(), size


def publish_scored(ws: Workspace, scored: Scored, spill: Spill, reg: Registry) -> tuple[str, str]:
    """Publish the measurements, meta, rejects and duplicates as one generation.

    The four files are one :class:`engine.store.fsgen.GenerationStore` generation of the account
    ``measures/scored`` (like a canonized account's, :mod:`engine.canon.publish`): a reader
    through the store sees the old set or the new one, never new data beside old meta. What
    a killed attempt left is dropped first; an unchanged set is not republished (a rerun
    moves nothing). Returns the plain paths of the rejects and duplicates files. The lines
    are streamed from the spill twice (once hashed to compare, once written), never joined.
    """
    files = AccountFiles(ensure_dir(ws.canonical / MEASURES_SOURCE), MEASURES_ACCOUNT)
    publish.recover(files)  # the project stage holds the workspace lock: the only writer
    sources = {files.name("data"): "scored", files.name("rejects"): "rejects", duplicates_name(): "dups"}
    data = _File(spill.lines("scored"))
    meta = json_bytes({
        "output": {"sha256": data.sha256, "records": scored.scored},
        "inputs": {"measures_registry_sha256": reg.sha256},
    })
    want = {files.name("data"): data, files.name("meta"): _File([meta]),
            files.name("rejects"): _File(spill.lines("rejects")), duplicates_name(): _File(spill.lines("dups"))}
    if not _published(files, want):
        with files.store.stage() as gen:
            for name in want:
                with open_private(gen.path(name), "wb") as fh:
                    if name in sources:
                        for line in spill.lines(sources[name]):
                            fh.write(line)
                    else:
                        fh.write(meta)
            gen.commit()
    return str(files.rejects), str(files.folder / duplicates_name())


def duplicates_name() -> str:
    """The file name of the duplicates list (published with the measurements)."""
    return f"{MEASURES_ACCOUNT}.duplicates.jsonl"


def _same(fh: Any, want: _File) -> bool:
    """Whether the open file ``fh`` has ``want``'s size and sha256 (read in 1 MiB blocks)."""
    h, size = hashlib.sha256(), 0
    while block := fh.read(1 << 20):
        h.update(block)
        size += len(block)
        if size > want.size:
            return False
    return size == want.size and h.hexdigest() == want.sha256


def _published(files: AccountFiles, contents: dict[str, _File]) -> bool:
    """True when the current generation holds exactly ``contents`` (by size and sha256) and
    its plain names point at it (nothing to publish)."""
    gen = files.store.current()
    if gen is None or gen.number == 0 or not files.store.mirrors_current():
        return False
    if sorted(gen.names()) != sorted(contents):
        return False
    try:
        with files.store.open(*contents) as (_gen, handles):
            return all(fh is not None and _same(fh, contents[name])
                       for name, fh in handles.items())
    except (GenerationMissing, OSError):
        return False
