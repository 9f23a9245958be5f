"""`lorchestra clients`: the client layer from the command line (shows PHI, on request).

``list``, ``show NAME|ID``, ``conflicts`` and ``unlinked`` read the client tables the project
stage writes into the index database. Like ``query``, this prints record content because
the user asked, to this process's stdout only: never to the log, events or the run
history. It takes no lock (read-only, WAL snapshot).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.clients import moved
from engine.clients.model import REASONS
from engine.clients.read import ClientLookupError, ClientTables
from engine.clients.tables import read_meta, stale_overrides
from engine.errors import ExitCode, LorchError, UsageError
from lorch_tui import measurescmd
from lorch_tui.bigtable import clean, print_table
from lorch_tui.querycmd import open_store
from lorch_tui.tables import Gives, fitted_table, say_left_out


def _tables(ns: argparse.Namespace) -> tuple[ClientTables, Any]:
    store, ws = open_store(ns)
    t = ClientTables(store.conn)
    if not t.ready():
        store.close()
        raise UsageError(f"no clients have been projected in {ws.root} yet",
                         hint="add a `clients:` section to the config and run `lorchestra run` "
                              "(or `lorchestra run --stage project`)")
    return t, store


def guard(ns: argparse.Namespace, action: Any) -> int:
    """Run ``action`` on the client tables; an unreadable table is exit 1 with the fix."""
    t, store = _tables(ns)
    try:
        return int(action(t))
    except sqlite3.Error:
        raise LorchError("the client tables in the index could not be read",
                         hint="run `lorchestra run --stage project --force`",
                         exit_code=ExitCode.TASK_FAILED) from None
    finally:
        store.close()


def json_lines(items: list[dict[str, Any]]) -> int:
    """Print one JSON object per line; exit code 0."""
    out = sys.stdout.buffer
    for item in items:
        out.write(orjson.dumps(item) + b"\n")
    out.flush()
    return int(ExitCode.OK)


GIVES = {"name": Gives(10), "folder": Gives(12), "title": Gives(10), "document": Gives(16, "fold"),
         "clients": Gives(16), "key": Gives(16, "fold"), "reason": Gives(16), "detail": Gives(12, "fold")}
"""Columns of the clients tables that wrap (names, titles, reasons between words; references
and keys anywhere) into what the others leave; ids, records, kinds, rules and times stay whole."""
LEAVE_OUT = ("detail", "document", "folder", "dir", "title")
"""The columns left out, in this order, when even that does not fit the terminal."""


def _table(console: Console, columns: list[str], rows: list[list[object]]) -> None:
    """Print the rows: a table that fits the terminal, or plain lines when there are many
    (:mod:`lorch_tui.bigtable`)."""
    left_out: list[str] = []

    def rich_table() -> Table:
        table, out = fitted_table(columns, [[clean(v) for v in r] for r in rows], console.width,
                                  {c: g for c, g in GIVES.items() if c in columns}, LEAVE_OUT,
                                  right=("documents", "documents unlinked"))
        left_out.extend(out)
        return table
    print_table(console, columns, rows, rich_table, whole=[c for c in columns if c not in GIVES])
    say_left_out(console, left_out)


def cmd_list(ns: argparse.Namespace) -> int:
    """`lorchestra clients list`."""
    def act(t: ClientTables) -> int:
        clients = t.clients()
        if ns.json:
            return json_lines(clients)
        console = Console(highlight=False)
        _table(console, ["id", "name", "record", "documents", "folder"], [
            [c["client_id"], c["sort_name"], f"{c['source']}/{c['account']}", c["documents"],
             c["folder"]] for c in clients])
        console.print(f"{len(clients)} client(s); projected at {t.meta().get('projected_at', '?')}",
                      markup=False)
        return int(ExitCode.OK)
    return guard(ns, act)


def cmd_show(ns: argparse.Namespace) -> int:
    """`lorchestra clients show NAME|ID`."""
    if ns.limit < 0:
        raise UsageError("--limit must be 0 (all) or a positive number")

    def act(t: ClientTables) -> int:
        client = _find(t, ns.client)
        docs = t.documents(client["client_id"], ns.limit or None)
        keys = t.keys(client["client_id"])
        measures = measurescmd.for_client(ns, client["client_id"]) if ns.measures else None
        critical = measurescmd.critical_unscored(ns, client["folder"]) if ns.measures else None
        if ns.json:
            extra = {"measurements": measures, "critical_not_scored": critical} if measures is not None else {}
            return json_lines([{**client, "keys": keys, "documents": docs, **extra}])
        console = Console(highlight=False)
        console.print(Text(clean(f"{client['sort_name']}  ({client['client_id']})"), style="bold"))
        console.print(clean(f"record: {client['source']}/{client['account']} {client['entity_id']}; "
                            f"born {client['birth_date'] or '-'}; folder: {client['folder']}"), markup=False)
        for k in keys:
            console.print(clean(f"  key {k['key']}") + ("  (shared: a conflict)" if k["shared"] else ""),
                          markup=False)
        _table(console, ["time", "kind", "rule", "dir", "title", "document"], [
            [d["time"], d["kind"], d["rule"], d["direction"], d["title"],
             f"{d['source']}:{d['account']}:{d['kind']}:{d['entity_id']}"] for d in docs])
        shown = len(docs)
        note = f"{shown} of {client['documents']} document(s)"
        if shown < client["documents"]:
            note += " (use --limit 0 for all)"
        console.print(note, markup=False)
        if measures is not None:
            measurescmd.print_trends(console, measures, getattr(ns, "client_zone", "UTC"))
        if critical:
            console.print(Text(f"{critical['responses']} response(s) of this client could not be scored and "
                               f"carry a critical flag ({', '.join(critical['flags'])}): the chart's measures.md "
                               "lists them", style="bold red"))
        return int(ExitCode.OK)
    return guard(ns, act)


def _find(t: ClientTables, text: str) -> dict[str, Any]:
    try:
        return t.find(text)
    except ClientLookupError as exc:
        hint = "run `lorchestra clients list` to see ids and names"
        if exc.candidates:
            hint = "candidates: " + "; ".join(f"{c['client_id']} {c['sort_name']}"
                                             for c in exc.candidates[:10])
        raise UsageError(str(exc), hint=hint) from None


def cmd_conflicts(ns: argparse.Namespace) -> int:
    """`lorchestra clients conflicts`."""
    def act(t: ClientTables) -> int:
        items = t.conflicts()
        if ns.json:  # typed like `clients list`: the clients as a list of ids
            return json_lines([{**c, "clients": str(c["clients"]).split(","), "reviewed": bool(c["reviewed"])}
                                for c in items])
        console = Console(highlight=False)
        rows: list[list[object]] = []
        for c in items:
            ids = c["clients"].split(",")
            names = t.names(ids)
            rows.append([c["key"], "; ".join(f"{i} {names[i]}" for i in ids), c["documents"],
                         "kept apart" if c["reviewed"] else "open"])
        _table(console, ["key", "clients", "documents unlinked", "state"], rows)
        open_ = sum(1 for c in items if not c["reviewed"])
        console.print(f"{open_} open conflict(s), {len(items) - open_} reviewed. Settle them in the "
                      "overrides file: merge, apart, link or ignore (docs/clients.md).", markup=False)
        _print_overrides(console, stale_overrides(t.conn), STALE_HEAD)
        _print_overrides(console, stale_overrides(t.conn, "unused_overrides"), UNUSED_HEAD)
        print_moved(console, t)
        twins = likely_same_person(items, _source_rank(t, getattr(ns, "client_sources", [])))
        if twins:
            console.print("These share a name and birth date (and more): if each pair is one person, "
                          "add to the overrides file (the first id is kept: the one of the source listed "
                          "first in clients.sources; a sheet's ids are row numbers, which move):", markup=False)
            console.print("merge:\n" + "".join(f"  - [{a}, {b}]\n" for a, b in twins), markup=False,
                          end="")
        return int(ExitCode.OK)
    return guard(ns, act)


STALE_HEAD = ("override(s) not applied (OVERRIDE_STALE): what they name is not what they were first applied "
              "to; look at each again: if it still holds, `lorchestra clients repin REF` (then project) or pin it "
              "with sha256; otherwise remove it (docs/clients.md, section 3):")
UNUSED_HEAD = ("override(s) name nothing the last projection had (OVERRIDE_UNUSED): check each id against "
               "`lorchestra clients list` and `clients unlinked` (full 16-character client ids, documents as "
               "source:account:kind:id):")


def _print_overrides(console: Console, items: list[tuple[str, str]], head: str) -> None:
    """Overrides the last projection did not apply, by name (the warnings only count them): a
    stale one (OVERRIDE_STALE), or one naming a document or client that is not there
    (OVERRIDE_UNUSED: a typo in an id, a space, a short folder id, upper case)."""
    if not items:
        return
    console.print(f"{len(items)} {head}", markup=False)
    for what, client in items:
        target = f" -> {client}" if client else (
            "" if what.startswith(("client:", "merge:", "apart:", "names:")) else " (to no one)")
        console.print(Text(f"  {clean(what)}{clean(target)}"))


HEAD = ("document(s) linked to another client than before (LINKS_MOVED), not reviewed yet: look at "
        "each (`clients show`); one that belongs to its former client goes back with a link: override, "
        "then `lorchestra clients moved` says how to forget the rest (docs/clients.md):")


def print_moved(console: Console, t: ClientTables) -> None:
    """The moves not reviewed yet, one line each (nothing when there are none)."""
    meta = read_meta(t.conn)
    items = moved.listed(meta.get("moved_links"))
    total = moved.open_count(meta)
    if not total:
        return
    console.print(f"{total} {HEAD}", markup=False)
    for doc, before, name, now, since in items:
        names = t.names(now)
        to = "; ".join(f"{c} {names[c]}" for c in now)
        when = f" (since {since[:10]})" if since else ""
        console.print(Text(f"  {clean(doc)}: {clean(before)} {clean(name)} -> {clean(to)}{when}"))
    if total > len(items):
        console.print(f"  ... and {total - len(items)} more (the first {len(items)} are listed)", markup=False)


def _source_rank(t: ClientTables, sources: list[str]) -> Any:
    """A client id's place in the merge suggestion: its record's source in the order of
    ``clients.sources`` (the practice's main system first), then the id."""
    home = dict(t.conn.execute("SELECT client_id, source FROM clients").fetchall())

    def rank(cid: str) -> tuple[int, str]:
        src = home.get(cid)
        return (sources.index(src) if src in sources else len(sources), cid)
    return rank


def likely_same_person(conflicts: list[dict[str, Any]], rank: Any = None) -> list[tuple[str, str]]:
    """Open conflicts' client pairs that share a name plus birth date and another key, each
    ordered by ``rank`` (the id a merge keeps first: :func:`_source_rank`)."""
    shared: dict[tuple[str, str], set[str]] = {}
    for c in conflicts:
        ids = sorted(c["clients"].split(","), key=rank)
        if c["reviewed"] or len(ids) != 2:
            continue
        shared.setdefault((ids[0], ids[1]), set()).add(str(c["key"]).split(":", 1)[0])
    return sorted(pair for pair, kinds in shared.items() if "name_dob" in kinds and len(kinds) > 1)


def cmd_unlinked(ns: argparse.Namespace) -> int:
    """`lorchestra clients unlinked [--kind K]`."""
    def act(t: ClientTables) -> int:
        items = t.unlinked(ns.kind, ns.reason)
        if ns.json:
            return json_lines(items)
        console = Console(highlight=False)
        _table(console, ["document", "time", "title", "reason", "detail"], [
            [f"{u['source']}:{u['account']}:{u['kind']}:{u['entity_id']}", u["time"], u["title"],
             f"{u['reason']}: {REASONS.get(u['reason'], '')}", u["detail"]] for u in items])
        per: dict[str, int] = {}
        for u in items:
            per[u["reason"]] = per.get(u["reason"], 0) + 1
        summary = ", ".join(f"{n} {r}" for r, n in sorted(per.items())) or "none"
        console.print(f"{len(items)} unlinked document(s): {summary}", markup=False)
        return int(ExitCode.OK)
    return guard(ns, act)
