"""The same records under a new run id: republish the canonical output with new provenance.

A nightly run extracts every account again; when a source did not change, its tap writes the
same records, and the vault writer, byte for byte the same parts (their sha256 in the new
run's manifest equal the old run's). The canonical output is a function of those bytes, the
transforms and the engine (everything in the canonize fingerprint except the run ids), so
transforming them again gives the same file: at 1,000,000 records that was 81 CPU-s for
nothing. Here the current generation's data and rejects are hard-linked into a new
generation whose meta names the new run (``inputs``, ``runs``, ``part_stats``): the
provenance stays true and every reader sees old or new, as with any publish. The data is
first checked against the meta's sha256; anything unexpected (no current output, a differing
input, a damaged file) means a full canonize instead. The new run's parts are verified against
its manifest first, as when they are read (the caller: a damaged one fails the account with
its code, and the output keeps naming the run it was built from). ``--force`` always transforms.

Reuse leans on the compressor writing the same gzip bytes for the same lines. It does, run
after run, on one machine, but ISA-L promises no particular encoding (another build or CPU
may choose other matches); when the bytes differ, the records are simply transformed again.
Nothing else compares compressed bytes across runs: the crash tests compare the lines.
"""

from __future__ import annotations

from typing import Any

from engine.canon import publish
from engine.canon.publish import AccountFiles
from engine.store.fsutil import open_private


def content(fp: dict[str, Any]) -> dict[str, Any]:
    """A canonize fingerprint without the runs' identities (their dt and run id): what the
    output is a function of."""
    out = dict(fp)
    run = fp.get("run")
    out["run"] = {"parts": run.get("parts")} if isinstance(run, dict) else run
    chain = fp.get("incremental_chain")
    if isinstance(chain, list):
        out["incremental_chain"] = [{"parts": r.get("parts")} if isinstance(r, dict) else r for r in chain]
    return out


def reusable(files: AccountFiles, fp: dict[str, Any]) -> dict[str, Any] | None:
    """The current meta when its output was built from the same bytes as ``fp`` names (only
    the run ids differ) and its data is intact; else None."""
    current = publish.current_output(files)
    if current is None:
        return None
    meta, sha = current
    inputs, output = meta.get("inputs"), meta.get("output")
    if not isinstance(inputs, dict) or inputs == fp or content(inputs) != content(fp):
        return None
    if not isinstance(output, dict) or output.get("sha256") != sha:
        return None
    return meta


def republish(files: AccountFiles, meta: dict[str, Any], fp: dict[str, Any], runs: list[Any],
              verified: dict[str, list[int] | None]) -> None:
    """A new generation: the current data and rejects (hard links), the meta with the new
    run's provenance."""
    with files.store.stage() as gen:
        if not gen.carry(files.name("data")):
            raise FileNotFoundError(files.name("data"))
        gen.carry(files.name("rejects"))
        with open_private(gen.path(files.name("meta")), "wb") as fh:
            fh.write(publish.meta_bytes({**meta, "inputs": fp, "runs": runs, "part_stats": verified}))
        gen.commit()
