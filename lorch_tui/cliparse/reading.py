"""Parsers of the commands that read what the pipeline built: query, clients.

Only declarations: each command's function is a :class:`~lorch_tui.cliparse.base.Lazy` reference,
so building these parsers imports no command module (see the package docstring).
"""

from __future__ import annotations

import argparse
from typing import Any

from lorch_tui.argtypes import client_text, count, wait_seconds
from lorch_tui.cliparse.base import Lazy

DEFAULT_LIMIT = 50
"""``query --limit``'s default."""
UNLINKED_REASONS = ("conflict", "disagree", "internal", "no_key", "no_match", "no_rule", "override",
                    "ref_missing", "ref_unlinked")
"""What ``clients unlinked --reason`` accepts, sorted (``engine.clients.model.REASONS``; a test
keeps them equal)."""


def query(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra query``."""
    q = sub.add_parser(
        "query", parents=[common], help="query the document index (shows record content)",
        description="Find canonical documents in the index. Filters combine with AND. --text "
                    "ranks by words and meaning together (bm25 and vector rankings fused); "
                    "--similar ranks by meaning only; both run offline with the embedding model "
                    "shipped in the wordllama package. Output is a table, or with --json one "
                    "canonical document per line.",
    )
    q.add_argument("--kind", metavar="K", help="only documents of this kind (email, contact, ...)")
    q.add_argument("--source", metavar="S", help="only documents from this source (gmail, ...)")
    q.add_argument("--account", metavar="A", help="only documents of this account")
    q.add_argument("--since", metavar="DATE", help="main time on or after DATE (YYYY-MM-DD or ISO 8601)")
    q.add_argument("--until", metavar="DATE", help="main time on or before DATE (a date includes that day)")
    q.add_argument("--text", metavar="WORDS",
                   help="hybrid search: documents with every word (word* matches a prefix), ranked "
                        "by bm25 fused with similarity of meaning, plus documents that only mean it")
    q.add_argument("--similar", metavar="TEXT",
                   help="rank documents by similarity of meaning to TEXT (no shared word needed)")
    q.add_argument("--words-only", action="store_true",
                   help="with --text: rank by bm25 only (every word required), no vectors")
    q.add_argument("--explain", action="store_true",
                   help="with --text/--similar: show each ranking's position and score and the fused score")
    q.add_argument("--id", metavar="ENTITY_ID", dest="entity_id", help="documents with this source id")
    q.add_argument("--client", metavar="NAME|ID", type=client_text,
                   help="only documents linked to this client (id, id prefix or name; see `lorchestra clients`)")
    q.add_argument("--dedupe", action="store_true",
                   help="show the same email seen in several mailboxes once (by Message-ID)")
    q.add_argument("--limit", metavar="N", type=count, default=DEFAULT_LIMIT,
                   help=f"at most N documents (default {DEFAULT_LIMIT}; 0 for all)")
    q.add_argument("--counts", action="store_true", help="print document counts per kind and account instead (other filters do not apply)")
    q.add_argument("--json", action="store_true", help="print one canonical document per line")
    q.set_defaults(func=Lazy("lorch_tui.querycmd:cmd_query"))


def clients(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra clients list|show|conflicts|unlinked|moved|repin``."""
    c = sub.add_parser(
        "clients", parents=[common], help="clients, their documents, conflicts (shows PHI)",
        description="Read what the project stage decided: clients, the documents linked to each "
                    "(with the rule that linked them), keys several clients hold, and documents "
                    "linked to no one. Run `lorchestra run` (or `run --stage project`) first.")
    acts = c.add_subparsers(dest="clients_command", metavar="ACTION", required=True)
    ls = acts.add_parser("list", parents=[common], help="every client with document counts",
                         description="Every client: id, name, system of record, documents linked.")
    ls.add_argument("--json", action="store_true", help="one JSON object per client")
    ls.set_defaults(func=Lazy("lorch_tui.clientscmd:cmd_list"))
    sh = acts.add_parser("show", parents=[common], help="one client's card, keys and documents",
                         description="One client (by id, an id prefix of 4+ hex digits, or name): "
                                     "the contact card, keys and linked documents, newest first.")
    sh.add_argument("client", metavar="NAME|ID", type=client_text, help="client id, id prefix, or name")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.add_argument("--limit", type=count, default=50, metavar="N",
                    help="at most N documents (default 50; 0 for all)")
    sh.add_argument("--measures", action="store_true",
                    help="also the outcome measures over time (PHQ-9, GAD-7, ...; docs/measures.md)")
    sh.set_defaults(func=Lazy("lorch_tui.clientscmd:cmd_show"))
    cf = acts.add_parser("conflicts", parents=[common], help="keys several clients hold",
                         description="Keys (addresses, phones, name plus birth date) held by several "
                                     "clients: documents reached only through them link to no one. "
                                     "Settle them in the overrides file (docs/clients.md).")
    cf.add_argument("--json", action="store_true", help="one JSON object per conflict")
    cf.set_defaults(func=Lazy("lorch_tui.clientscmd:cmd_conflicts"))
    un = acts.add_parser("unlinked", parents=[common], help="documents linked to no one, and why",
                         description="Documents linked to no client, with the reason. Use the "
                                     "document column in the overrides file's `link:` list.")
    un.add_argument("--kind", metavar="K", help="only documents of this kind")
    un.add_argument("--reason", metavar="R", choices=list(UNLINKED_REASONS), help="only this reason")
    un.add_argument("--json", action="store_true", help="one JSON object per document")
    un.set_defaults(func=Lazy("lorch_tui.clientscmd:cmd_unlinked"))
    mv = acts.add_parser("moved", parents=[common], help="documents that went to another client's chart",
                         description="Documents a projection linked to another person than the projection "
                                     "before did (LINKS_MOVED: an address moved from one client's record to "
                                     "another's takes past mail along). Each stays listed until reviewed: "
                                     "put a wrong one back with a link: override, then --reviewed THROUGH "
                                     "forgets the rest you were shown (docs/clients.md, section 2).")
    mv.add_argument("--json", action="store_true", help="one JSON object per moved document")
    mv.add_argument("--reviewed", metavar="THROUGH",
                    help="forget the listed moves found up to THROUGH, the time `clients moved` prints "
                         "with the list (moves a later projection found stay; `all` forgets every one); "
                         "takes the workspace lock")
    mv.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                    help="with --reviewed: wait up to SECONDS for the workspace lock instead of exiting 3")
    mv.set_defaults(func=Lazy("lorch_tui.movedcmd:cmd_moved"))
    rp = acts.add_parser("repin", parents=[common], help="forget what stale overrides were first applied to",
                         description="A link: override holds for the document it was first applied to, and "
                                     "an override naming a client for the person whose record had that id "
                                     "then; these pins are kept for good, also while an entry is out of the "
                                     "overrides file. After looking at a stale override's document or client "
                                     "again (`clients conflicts` names them, `clients show`), repin forgets "
                                     "its pin: the next projection applies the override to what is in its "
                                     "place then and pins it anew (docs/clients.md, section 3).")
    rp.add_argument("refs", nargs="+", metavar="REF",
                    help="a document as source:account:kind:source_id, or client:ID, as `clients conflicts` "
                         "lists them")
    rp.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                    help="wait up to SECONDS for the workspace lock instead of exiting 3")
    rp.set_defaults(func=Lazy("lorch_tui.repincmd:cmd_repin"))
