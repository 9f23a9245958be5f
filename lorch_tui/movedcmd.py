"""`lorchestra clients moved [--json] [--reviewed]`: documents that went to another person's chart.

Why a command of its own: the project stage says ``LINKS_MOVED`` once, on the night it finds
a document linked to another person than the projection before did (an address moved from
one client's record to another's takes past mail along). Under cron that warning is one log
line; the moves stay listed (:mod:`engine.clients.moved`) until the operator has looked at
each: a wrong one goes back with a ``link:`` override (then it leaves the list), and
``--reviewed`` forgets the rest. Forgetting writes the index, so it takes the workspace lock
(exit 3 when a run holds it, or ``--wait``). It prints names: PHI, on request, to the terminal.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from engine.clients import moved
from engine.clients.read import ClientTables
from engine.clients.tables import read_meta
from engine.errors import ExitCode, UsageError
from engine.index.store import begin_immediate, open_writer
from lorch_tui.cleancmd import take_lock
from lorch_tui.clientscmd import guard, json_lines, print_moved
from lorch_tui.querycmd import open_store


def cmd_moved(ns: argparse.Namespace) -> int:
    """`lorchestra clients moved [--json] [--reviewed] [--wait SECONDS]`."""
    if ns.reviewed:
        return _reviewed(ns)

    def act(t: ClientTables) -> int:
        meta = read_meta(t.conn)
        items = moved.listed(meta.get("moved_links"))
        if ns.json:
            return json_lines([{"document": d, "client_before": b, "name_before": n, "clients_now": now,
                                 "since": since or None} for d, b, n, now, since in items])
        console = Console(highlight=False)
        print_moved(console, t)
        if not moved.open_count(meta):
            console.print("no document went to another client's chart since the moves were last reviewed",
                          markup=False)
        return int(ExitCode.OK)
    return guard(ns, act)


def _reviewed(ns: argparse.Namespace) -> int:
    store, ws = open_store(ns)  # the index's own checks: missing, damaged, another version
    try:
        ready = ClientTables(store.conn).ready()
    finally:
        store.close()
    if not ready:
        raise UsageError(f"no clients have been projected in {ws.root} yet: there is nothing to review",
                         hint="run `lorchestra run` (or `lorchestra run --stage project`)")
    lock = take_lock(ws, ns.wait, command="lorchestra clients moved --reviewed")
    try:
        conn = open_writer(ws)
        try:
            begin_immediate(conn)
            n = moved.reviewed(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
    finally:
        lock.release()
    Console(highlight=False).print(f"forgot {n} reviewed move(s); a document that moves again is listed anew",
                                   markup=False)
    return int(ExitCode.OK)
