"""`lorchestra query`: look things up in the document index from the command line.

This command's output is the one place where lorchestra shows record content, because the
user asked for it: it goes to this process's stdout only, never to the pipeline log, events
or the state database. Errors name paths and options, never content.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.config.load import load
from engine.errors import ExitCode, LorchError, UsageError
from engine.index.query import Document, ObjectMissing, Query, Store, build_sql
from engine.index.store import (
    INDEX_CORRUPT,
    INDEX_UNREADABLE,
    REPAIR_HINT,
    UNREADABLE_HINT,
    StoreError,
    db_path,
)
from engine.store.workspace import Workspace, check_not_a_file
from lorch_tui import docread, rankcmd
from lorch_tui.bigtable import clean, print_table
from lorch_tui.tables import QUERY_GIVES, QUERY_LEAVE_OUT, fitted_table, say_left_out


def open_store(ns: argparse.Namespace) -> tuple[Store, Workspace]:
    """The index of the configured workspace; a usage error (exit 2) when there is none."""
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    ns.vectors_on = loaded.config.stages.index.vectors  # the ranked search's hints depend on it
    clients = loaded.config.clients  # `clients show --measures` shows its days in their zone
    ns.client_zone = clients.timezone if clients is not None else "UTC"
    ns.client_sources = list(clients.sources) if clients is not None else []  # the merge suggestion's order
    check_not_a_file(loaded.workspace)
    ws = Workspace(loaded.workspace)
    try:
        return Store.open(ws), ws
    except StoreError as exc:
        if exc.code == "INDEX_MISSING":
            raise UsageError(f"there is no index in the workspace {ws.root} yet ({db_path(ws)} is missing)",
                             hint="build it with `lorchestra run` (or `lorchestra run --stage index` "
                                  "once canonical files exist)") from None
        if exc.code == INDEX_UNREADABLE:
            raise LorchError(f"the index {exc}: it is there, and may be whole", hint=UNREADABLE_HINT,
                             exit_code=ExitCode.TASK_FAILED) from None
        if exc.code == INDEX_CORRUPT:
            raise LorchError(f"the index {db_path(ws)} is damaged: it is not a readable SQLite database",
                             hint=f"move {ws.vector_store} aside (mv {ws.vector_store} {ws.vector_store}.damaged) "
                                  "and rebuild it from the canonical files with `lorchestra run --stage index "
                                  "--force`", exit_code=ExitCode.TASK_FAILED) from None
        raise UsageError(f"the index {db_path(ws)} was written by another version of lorchestra",
                         hint=f"move {ws.vector_store} aside and run `lorchestra run --stage index`") from None


def client_of(ns: argparse.Namespace, store: Store) -> str | None:
    """The client id ``--client`` names (exit 2 when none, or several, match)."""
    if getattr(ns, "client", None) is None:
        return None
    from engine.clients.read import ClientLookupError, ClientTables

    tables = ClientTables(store.conn)
    if not tables.ready():
        raise UsageError("--client: no clients have been projected yet",
                         hint="add a `clients:` section to the config and run `lorchestra run`")
    try:
        return str(tables.find(ns.client)["client_id"])
    except ClientLookupError as exc:
        hint = "run `lorchestra clients list` to see ids and names"
        if exc.candidates:
            hint = "candidates: " + "; ".join(f"{c['client_id']} {c['sort_name']}" for c in exc.candidates[:10])
        raise UsageError(f"--client: {exc}", hint=hint) from None


def build_query(ns: argparse.Namespace, limit: int | None, client_id: str | None = None) -> Query:
    """The Query for the command line, checking dates and search words (exit 2 on bad input)."""
    if ns.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")
    q = Query(kind=ns.kind, source=ns.source, account=ns.account, since=ns.since, until=ns.until,
              text=ns.text, entity_id=ns.entity_id, client_id=client_id, dedupe=ns.dedupe,
              limit=limit)
    try:
        build_sql(q)
    except ValueError as exc:
        option = "--text" if "search text" in str(exc) else "--since/--until"
        raise UsageError(f"{option}: {exc}") from None
    return q


def check_kind(store: Store, kind: str | None) -> None:
    """Refuse a kind the index does not hold, naming the kinds it does (exit 2).

    Index seeks only (no count over the documents: that took seconds at a million)."""
    if kind is None or store.has_kind(kind):
        return
    known = store.kinds()
    import difflib

    close = difflib.get_close_matches(kind, known, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"--kind {kind!r}: the index holds no documents of that kind",
                     hint=f"{guess}kinds in the index: {', '.join(known) or 'none yet'}")


def cmd_query(ns: argparse.Namespace) -> int:
    """`lorchestra query ...`."""
    limit = ns.limit or None
    rankcmd.check_options(ns)
    store, ws = open_store(ns)
    try:
        if ns.counts:
            return _print_counts(store, ns.json)
        check_kind(store, ns.kind)
        client_id = client_of(ns, store)
        if rankcmd.wants_ranking(ns):
            return rankcmd.run_ranked(ns, store, build_query(_without_text(ns), limit, client_id), limit)
        q = build_query(ns, None if limit is None else limit + 1, client_id)
        for _attempt in range(3):
            docs = store.find(q)
            more = limit is not None and len(docs) > limit
            docs = docs[:limit] if limit is not None else docs
            if not ns.json:
                _print_table(docs, more, limit, ns.dedupe)
                return int(ExitCode.OK)
            try:
                lines = docread.read_documents(store, docs)
            except ObjectMissing:
                continue  # an index run replaced an account between the query and the read
            out = sys.stdout.buffer
            for line in lines:
                out.write(line if line.endswith(b"\n") else line + b"\n")
            out.flush()
            if more:
                rankcmd.more_note(limit)
            return int(ExitCode.OK)
        raise LorchError("documents' object files were missing on three reads: an index run is replacing "
                         "them, or a file was removed",
                         hint="run the query again when the index run has finished; if it says this again, "
                              + REPAIR_HINT,
                         exit_code=ExitCode.TASK_FAILED)
    except sqlite3.Error:
        raise LorchError(f"the index could not be read ({db_path(ws)})",
                         hint=f"it may be damaged past its first page: move it aside (mv {ws.vector_store} "
                              f"{ws.vector_store}.damaged) and rebuild it with `lorchestra run --stage index --force`",
                         exit_code=ExitCode.TASK_FAILED) from None
    finally:
        store.close()


def _without_text(ns: argparse.Namespace) -> argparse.Namespace:
    copy = argparse.Namespace(**vars(ns))
    copy.text = None
    return copy


def _print_table(docs: list[Document], more: bool, limit: int | None, dedupe: bool) -> None:
    console = Console(highlight=False)
    columns = ["kind", "source", "account", "time", "title", "id"] + (["copies"] if dedupe else [])
    rows = [[d.kind, d.source, d.account, d.time or "", d.title or "", d.entity_id]
            + ([d.copies] if dedupe else []) for d in docs]

    left_out: list[str] = []

    def rich_table() -> Table:
        table, out = fitted_table(columns, [[clean(v) for v in row] for row in rows], console.width,
                                  QUERY_GIVES, QUERY_LEAVE_OUT, right=("copies",))
        left_out.extend(out)
        return table
    print_table(console, columns, rows, rich_table)
    say_left_out(console, left_out)
    note = f"{len(docs)} document(s)"
    if more:
        note += f"; more match (limit {limit}: use --limit N, or --limit 0 for all)"
    console.print(note, markup=False)


def _print_counts(store: Store, as_json: bool) -> int:
    counts = store.counts()
    totals = store.kind_counts()
    if as_json:
        for c in counts:
            sys.stdout.write(orjson.dumps({"kind": c.kind, "source": c.source, "account": c.account,
                                           "documents": c.documents}).decode() + "\n")
        return int(ExitCode.OK)
    console = Console(highlight=False)
    table = Table(title="documents per kind and account", title_justify="left")
    for col, just in (("kind", "left"), ("source", "left"), ("account", "left"), ("documents", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for c in counts:
        table.add_row(Text(clean(c.kind)), Text(c.source), Text(c.account), f"{c.documents:,}")
    console.print(table)
    for kind, (n, unique) in totals.items():
        console.print(f"{kind}: {n:,} documents, {unique:,} after collapsing duplicates", markup=False)
    return int(ExitCode.OK)
