"""`lorchestra clients repin REF...`: forget what an override was first applied to.

A ``link:`` override without ``sha256`` holds for the document it was first applied to, and
an override naming a client holds for the person whose record had that id then; the project
stage keeps each of these pins for good, also once the entry leaves the overrides file (an
entry restored from a backup must not hold for whoever is in its place by then). So when the
operator has looked at a stale override's document (or client) again and it is still theirs,
this is how they say so: the pins named here are forgotten, and the next projection pins
those overrides to what is in their places then. It writes the index, so it takes the
workspace lock (exit 3 when a run holds it, or ``--wait``).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.text import Text

from engine.clients.read import ClientTables
from engine.clients.tables import forget_pins
from engine.errors import ExitCode, UsageError
from engine.index.store import begin_immediate, open_writer
from lorch_tui.bigtable import clean
from lorch_tui.cleancmd import take_lock
from lorch_tui.querycmd import open_store

_CLIENT = re.compile(r"client:[0-9a-f]{16}")
T = TypeVar("T")


def _checked(refs: list[str]) -> list[str]:
    """The references as given; a usage error for one that is neither form."""
    for ref in refs:
        parts = ref.split(":", 3)
        if ref.startswith("client:") and not _CLIENT.fullmatch(ref):
            raise UsageError(f"{clean(ref)!r}: a client is written client:ID (the 16 hex digits of "
                             "`lorchestra clients list`)")
        if not ref.startswith("client:") and (len(parts) != 4 or not all(parts)):
            raise UsageError(f"{clean(ref)!r}: a document is written source:account:kind:source_id, as "
                             "`lorchestra clients conflicts` names it")
    return refs


def write_client_tables(ns: argparse.Namespace, nothing: str, command: str,
                        change: Callable[[sqlite3.Connection], tuple[T, bool]]) -> T:
    """Run ``change`` on the index in one transaction under the workspace lock (exit 3 when a
    run holds it, or ``--wait``); ``change`` returns its result and whether to commit.
    ``nothing``: what there is not before any projection (a usage error then)."""
    store, ws = open_store(ns)  # the index's own checks: missing, damaged, another version
    try:
        ready = ClientTables(store.conn).ready()
    finally:
        store.close()
    if not ready:
        raise UsageError(f"no clients have been projected in {ws.root} yet: {nothing}",
                         hint="run `lorchestra run` (or `lorchestra run --stage project`)")
    lock = take_lock(ws, ns.wait, command=command)
    try:
        conn = open_writer(ws)
        try:
            begin_immediate(conn)
            result, commit = change(conn)
            conn.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            conn.close()
    finally:
        lock.release()
    return result


def cmd_repin(ns: argparse.Namespace) -> int:
    """`lorchestra clients repin REF [REF ...] [--wait SECONDS]`."""
    refs = _checked(ns.refs)

    def forget(conn: sqlite3.Connection) -> tuple[tuple[dict[str, int], list[str]], bool]:
        forgotten, missing = forget_pins(conn, refs)
        return (forgotten, missing), not missing
    forgotten, missing = write_client_tables(ns, "there is nothing pinned", "lorchestra clients repin", forget)
    if missing:
        raise UsageError("no pin is stored for " + ", ".join(clean(m) for m in missing) + ": nothing was "
                         "forgotten", hint="repin takes the references `lorchestra clients conflicts` lists "
                                           "under OVERRIDE_STALE, as written there; a link with sha256: "
                                           "is held by that sha256 instead: write the document's new one")
    console = Console(highlight=False)
    console.print(f"forgot the pin(s) of {len(forgotten)} override reference(s):", markup=False)
    for ref, n in forgotten.items():
        console.print(Text(f"  {clean(ref)}" + (f" ({n} links)" if n > 1 else "")))
    console.print("The next projection (`lorchestra run`, or `lorchestra run --stage project`) applies the "
                  "overrides naming them to the documents and clients in their places then, and pins them "
                  "anew: check each with `lorchestra clients show` afterwards.", markup=False)
    return int(ExitCode.OK)
