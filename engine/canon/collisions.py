"""Two streams of one account must not produce the same canonical identity.

Downstream (the index, the client linker) a document is identified by (source, account, kind,
source_id): the stream is not part of it. When two mapped streams of an account have
transforms of the same kind (a generic tap's ``people`` and ``orgs`` tables both mapped to
``contact``, with per-table integer ids), a source_id both produce would make the index keep
one of the two documents and merge two different entities -- one person's records under
another's identity. Canonize (:mod:`engine.stages.canonize`) keeps the source_ids of those
streams here and fails the account with ``SOURCE_ID_COLLISION`` instead of publishing; the
same source_id repeated within one stream is an update, as always.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.canon.compiled import CompiledTransform
from engine.store.fsutil import open_regular
from engine.store.workspace import Workspace


def shared_kinds(compiled: dict[str, CompiledTransform]) -> dict[str, list[str]]:
    """Each canonical kind that two or more mapped streams produce -> those streams."""
    by_kind: dict[str, list[str]] = {}
    for stream, ct in sorted(compiled.items()):
        by_kind.setdefault(ct.kind, []).append(stream)
    return {kind: streams for kind, streams in by_kind.items() if len(streams) > 1}


class SourceIds:
    """The source_ids of the streams that share a canonical kind, as 16-byte digests.

    Downstream (the index, the client linker) a document is (source, account, kind,
    source_id): the stream is not part of it. Two streams whose transforms output the same
    kind must therefore never produce the same source_id, or the index keeps one of the two
    documents and merges two different entities. Only those streams are tracked: 16 bytes a
    record appended to one ``bytearray`` per stream (16 MB at 1,000,000 records). At the end
    each buffer is sorted in place with numpy and every pair of streams of a kind is compared
    by binary search, a chunk at a time, so the comparison needs no copy of the digests.
    Repeats within one stream (updates of a record) are allowed.
    """

    EXAMPLES = 20
    """Colliding source_ids named per pair of streams in the diagnostics file."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self.groups = groups
        self.digests: dict[str, bytearray] = {s: bytearray() for streams in groups.values() for s in streams}

    @classmethod
    def of(cls, compiled: dict[str, CompiledTransform]) -> SourceIds | None:
        """The tracker for these transforms, or None when no two streams share a kind."""
        groups = shared_kinds(compiled)
        return cls(groups) if groups else None

    def add(self, stream: str, doc: dict[str, Any]) -> None:
        """Remember the source_id of one output document of ``stream``."""
        ids = self.digests.get(stream)
        sid = doc.get("source_id")
        if ids is not None and isinstance(sid, str):  # the index refuses any other source_id
            ids += _digest(sid)

    def collisions(self) -> dict[str, list[Collision]]:
        """Each kind whose streams share source_ids -> per pair of streams, how many distinct
        source_ids they share and the digests of a few of them. Call once, after the last
        :meth:`add` (the buffers are sorted in place)."""
        import numpy as np

        found: dict[str, list[Collision]] = {}
        for kind, streams in self.groups.items():
            arrays = {s: np.frombuffer(self.digests[s], dtype="V16") for s in streams}
            for a in arrays.values():
                a.sort()  # in place, inside the bytearray
            rows = [Collision((s, t), *_shared(arrays[s], arrays[t], self.EXAMPLES))
                    for i, s in enumerate(streams) for t in streams[i + 1:]]
            if rows := [r for r in rows if r.count]:
                found[kind] = rows
        return found

    def report(self, found: dict[str, list[Collision]], data: Path, ex_name: str, source: str,
               account: str) -> bytes:
        """The diagnostics text: per kind, which streams share how many source_ids, and a few
        of them (read back from this attempt's unpublished ``data`` file: PHI, so it goes only
        into the workspace)."""
        wanted = {d: kind for kind, rows in found.items() for r in rows for d in r.examples}
        names: dict[bytes, str] = {}
        with open_regular(data) as fh:
            for line in fh:
                doc = orjson.loads(line)
                sid = doc.get("source_id")
                if isinstance(sid, str) and doc.get("kind") in found and \
                        wanted.get(d := _digest(sid)) == doc["kind"]:
                    names[d] = sid
        out = [f"SOURCE_ID_COLLISION: extractor {ex_name} (source {source}, account {account})", "",
               "Records of different streams became canonical documents with the same kind and",
               "source_id. The index and the client linker identify a document by (source, account,",
               "kind, source_id), not by stream, so they would keep one of each and merge two",
               "different entities. Nothing was published: the previous canonical output stays.", ""]
        for kind, rows in sorted(found.items()):
            out.append(f"kind {kind}: source_ids produced by more than one stream")
            for r in rows:
                out.append(f"  streams {', '.join(r.streams)}: {r.count}")
                for d in r.examples:
                    shown = orjson.dumps(names[d]).decode() if d in names else "?"
                    out.append(f"    source_id {shown} in {', '.join(r.streams)}")
                if r.count > len(r.examples):
                    out.append(f"    ... and {r.count - len(r.examples)} more")
            out.append("")
        out += ["Repair: make each of these transforms' source_id unique per stream, e.g. prefix it",
                'with the stream ("people/" & $string(id)), and update the references to them (for',
                "example clinical_session.subject.id) the same way; or, when two streams carry the",
                "same entities, map only one of them. Then run",
                f"`lorchestra run --stage canonize --account {ex_name}`. See docs/transforms.md,",
                '"The contract of the expression".', ""]
        return "\n".join(out).encode()


@dataclass(frozen=True)
class Collision:
    """Two streams of one kind that produced the same source_ids."""

    streams: tuple[str, str]
    count: int
    """Distinct source_ids the two share."""
    examples: list[bytes]
    """The digests of a few of them."""


SEARCH_CHUNK = 1 << 16
"""Digests looked up at a time (the lookup's temporary arrays: about 2 MB)."""


def _shared(a: Any, b: Any, limit: int) -> tuple[int, list[bytes]]:
    """How many distinct digests two sorted digest arrays share, and up to ``limit`` of them."""
    import numpy as np

    if len(a) > len(b):
        a, b = b, a  # look the smaller one up in the larger
    count = 0
    examples: list[bytes] = []
    if not len(a):
        return 0, []
    for start in range(0, len(a), SEARCH_CHUNK):
        chunk = a[start:start + SEARCH_CHUNK]
        idx = np.searchsorted(b, chunk)
        np.minimum(idx, len(b) - 1, out=idx)
        hit = b[idx] == chunk
        first = np.empty(len(chunk), dtype=bool)  # count a repeated digest once
        first[0] = start == 0 or bool(a[start - 1] != chunk[0])
        first[1:] = chunk[1:] != chunk[:-1]
        hit &= first
        count += int(hit.sum())
        if len(examples) < limit:
            examples += [bytes(d) for d in chunk[hit][: limit - len(examples)]]
    return count, examples


def _digest(source_id: str) -> bytes:
    return hashlib.blake2b(source_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def collisions_path(ws: Workspace, ex_name: str) -> Path:
    """The diagnostics file of an account's last SOURCE_ID_COLLISION (may hold PHI)."""
    return ws.diagnostics / "canonize" / f"{ex_name}.source-id-collisions.txt"
