"""`lorchestra query --text/--similar [--explain]`: ranked search by words, meaning, or both.

Kept apart from :mod:`lorch_tui.querycmd` (plain listings) because only this path loads numpy
and the embedding model, and it has its own fallbacks: an index without vectors still answers
``--text`` by words (with a note on stderr), while ``--similar`` needs vectors and says how to
build them. Like every query output, results go to this process's stdout only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

import orjson
from rich.console import Console
from rich.table import Table

from engine.errors import ExitCode, LorchError, UsageError
from engine.index.query import ObjectMissing, Query, Store
from engine.index.store import REPAIR_HINT
from lorch_tui import docread
from lorch_tui.bigtable import clean, print_table
from lorch_tui.tables import QUERY_GIVES, QUERY_LEAVE_OUT, fitted_table, say_left_out

if TYPE_CHECKING:  # numpy and the model load only when a ranked query runs
    from engine.index.ranked import Hit, Mode, Searcher


def check_options(ns: argparse.Namespace) -> None:
    """Reject option combinations that mean nothing (exit 2)."""
    if ns.similar is not None and ns.text is not None:
        raise UsageError("--text and --similar cannot be combined",
                         hint="--text already ranks by words and meaning; --similar by meaning only")
    if ns.similar is not None and not ns.similar.strip():
        raise UsageError("--similar: the search text is empty")
    if ns.explain and ns.text is None and ns.similar is None:
        raise UsageError("--explain needs --text or --similar")
    if ns.words_only and ns.text is None:
        raise UsageError("--words-only needs --text")


def wants_ranking(ns: argparse.Namespace) -> bool:
    """Whether the query is a ranked search (--text or --similar)."""
    return ns.text is not None or ns.similar is not None


def _note(message: str) -> None:
    sys.stderr.write(f"note: {message}\n")


def more_note(limit: int | None) -> None:
    """Said on stderr after JSON lines cut at ``--limit``: a script must not take them for all."""
    _note(f"more documents match than the {limit} printed (--limit {limit}): use --limit N, "
          "or --limit 0 for all")


def _how_to_embed(ns: argparse.Namespace) -> str:
    """How the missing vectors get made: an index run, or first the config when they are off."""
    if getattr(ns, "vectors_on", True):
        return "`lorchestra run --stage index` adds them"
    return "they are switched off: set stages.index.vectors: true in the config, then run `lorchestra run --stage index`"


def run_ranked(ns: argparse.Namespace, store: Store, base: Query, limit: int | None) -> int:
    """Rank, print, return the exit code. ``base`` carries the filters (and no text)."""
    from engine.index.query import fts_query
    from engine.index.ranked import Searcher

    text = ns.similar if ns.similar is not None else ns.text
    mode: Mode = "vector" if ns.similar is not None else ("bm25" if ns.words_only else "hybrid")
    if mode != "vector":
        try:
            fts_query(text)
        except ValueError as exc:
            raise UsageError(f"--text: {exc}") from None
    searcher = Searcher(store)
    q = dataclasses.replace(base, limit=None if limit is None else limit + 1)
    total = int(store.conn.execute("SELECT count(*) FROM documents").fetchone()[0])
    for attempt in range(3):
        hits, mode = _search(searcher, text, q, mode, total, similar=ns.similar is not None,
                             how=_how_to_embed(ns))
        # counted by the vector ranking's own pass (a separate count cost 2 s at 1,000,000)
        if attempt == 0 and mode != "bm25" and searcher.embedded and searcher.embedded < total:
            fate = "are not found by --similar" if mode == "vector" else "rank by words only"
            _note(f"{total - searcher.embedded:,} of {total:,} documents have no vector yet and {fate} "
                  f"({_how_to_embed(ns)})")
        if attempt == 0 and mode == "hybrid" and hits and not any(
                r.name == "bm25" for h in hits for r in h.rankings):  # a typo in a name looked like hits
            _note("no document has every word of --text: these are ranked by meaning alone "
                  "(--words-only shows word matches only)")
        more = limit is not None and len(hits) > limit
        hits = hits[:limit] if limit is not None else hits
        if not ns.json:
            _print_hits(hits, more, limit, ns.dedupe, ns.explain)
            return int(ExitCode.OK)
        try:
            lines = docread.read_documents(store, [h.document for h in hits])
        except ObjectMissing:
            continue  # an index run replaced an account between the query and the read
        _print_json(hits, lines, ns.explain)
        if more:
            more_note(limit)
        return int(ExitCode.OK)
    raise LorchError("documents' object files were missing on three reads: an index run is replacing "
                         "them, or a file was removed",
                     hint="run the query again when the index run has finished; if it says this again, "
                              + REPAIR_HINT,
                     exit_code=ExitCode.TASK_FAILED)


def _search(searcher: Searcher, text: str, q: Query, mode: Mode, total: int, *,
            similar: bool, how: str) -> tuple[list[Hit], Mode]:
    """The hits and the mode that gave them: hybrid falls back to words when no document has
    a vector (with a note); errors become usage errors with their hint."""
    from engine.index.ranked import VectorsMissing
    from engine.vectors.model import ModelUnavailable

    try:
        try:
            return searcher.search(text, q, mode), mode
        except VectorsMissing:
            if total > 0 and mode == "hybrid":
                _note(f"the index has no document vectors yet: ranking by words only ({how})")
                return searcher.search(text, q, "bm25"), "bm25"
            hint = (f"{how} (unchanged documents are only embedded, not reloaded)" if total > 0 else how)
            raise UsageError("the index has no document vectors of the current model yet", hint=hint) from None
    except ModelUnavailable:
        raise LorchError("the embedding model shipped in the wordllama package cannot be loaded",
                         hint="reinstall the dependencies (`make setup`), or use --text with "
                              "--words-only", exit_code=ExitCode.TASK_FAILED) from None
    except ValueError as exc:
        raise UsageError(f"{'--similar' if similar else '--text'}: {exc}") from None


def _print_json(hits: list, lines: list[bytes], explain: bool) -> None:  # type: ignore[type-arg]
    from engine.index.ranked import explain_line

    out = sys.stdout.buffer
    for hit, line in zip(hits, lines, strict=True):
        if explain:
            out.write(b'{"document":' + line.rstrip(b"\n") + b',"explain":'
                      + orjson.dumps(explain_line(hit)) + b"}\n")
        else:
            out.write(line if line.endswith(b"\n") else line + b"\n")
    out.flush()


def _print_hits(hits: list, more: bool, limit: int | None, dedupe: bool, explain: bool) -> None:  # type: ignore[type-arg]
    console = Console(highlight=False)
    columns = ["#", "kind", "source", "account", "time", "title", "id"]
    columns += (["copies"] if dedupe else []) + (["bm25", "vector", "fused"] if explain else [])
    rows: list[list[object]] = []
    for n, h in enumerate(hits, start=1):
        d = h.document
        row: list[object] = [n, d.kind, d.source, d.account, d.time, d.title, d.entity_id]
        if dedupe:
            row.append(d.copies)
        if explain:
            by = {r.name: r for r in h.rankings}
            bm, vec = by.get("bm25"), by.get("vector")
            row += [f"#{bm.position} {bm.score:.3g}" if bm else "-",  # tiny on small indexes: never -0.00
                    f"#{vec.position} {vec.score:.3f}" if vec else "-", f"{h.score:.4f}"]
        rows.append(row)

    left_out: list[str] = []

    def rich_table() -> Table:
        table, out = fitted_table(columns, [[clean(v) for v in row] for row in rows], console.width,
                                    QUERY_GIVES, QUERY_LEAVE_OUT,
                                    right=("#", "copies", "bm25", "vector", "fused"))
        left_out.extend(out)
        return table
    print_table(console, columns, rows, rich_table)
    say_left_out(console, left_out)
    note = f"{len(hits)} document(s)"
    if more:
        note += f"; more match (limit {limit}: use --limit N, or --limit 0 for all)"
    if explain:
        note += ("; bm25: position and score (lower is better), vector: position and cosine "
                 "similarity, fused: reciprocal rank fusion (higher is better)")
    console.print(note, markup=False)
