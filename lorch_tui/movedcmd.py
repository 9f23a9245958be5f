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
import re

from rich.console import Console

from engine.clients import moved
from engine.clients.read import ClientTables
from engine.clients.tables import read_meta
from engine.errors import ExitCode, UsageError
from lorch_tui.clientscmd import guard, json_lines, print_moved
from lorch_tui.repincmd import write_client_tables


def cmd_moved(ns: argparse.Namespace) -> int:
    """`lorchestra clients moved [--json] [--reviewed] [--wait SECONDS]`."""
    if ns.reviewed is not None:
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
        elif items:
            console.print("Once you have looked at each (and put back a wrong one with a link: override): "
                          f"lorchestra clients moved --reviewed {moved.newest(items) or 'all'}", markup=False)
        return int(ExitCode.OK)
    return guard(ns, act)


def _through(text: str) -> str:
    """``--reviewed``'s value: a time as `clients moved` prints it (a date alone is the whole
    day), or ``all``."""
    if text == "all":
        return "9999"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?)?", text):
        raise UsageError(f"--reviewed {text!r}: give the time `lorchestra clients moved` prints under its list "
                         "(moves found up to then are forgotten), or `all`")
    return text.replace(" ", "T") if "T" in text or " " in text else text + "T99"


def _reviewed(ns: argparse.Namespace) -> int:
    through = _through(ns.reviewed)
    n, left = write_client_tables(ns, "there is nothing to review", "lorchestra clients moved --reviewed",
                                  lambda conn: (moved.reviewed(conn, through), True))
    more = (f"; {left} found by a later projection stay listed (`lorchestra clients moved`)" if left else "")
    Console(highlight=False).print(f"forgot {n} reviewed move(s){more}; a document that moves again is listed anew",
                                   markup=False)
    return int(ExitCode.OK)
