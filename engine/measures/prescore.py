"""Scoring the form responses on the second core while the project task resolves its clients.

Why a module of its own: after its reading, the project task's middle ran on one core, one
phase after the other: resolving (one ordered scan of every document's facts: 9 s at
1,000,000 demo records) and then the measures step, mostly scoring every form response
(:func:`engine.measures.score.score_response`: 6-7 s at 133,000 responses). Scoring a
response needs only the response and the registry; only what comes after it needs the
response's client (the duplicate check and the measurement's ``client_id``). So once the
reading is sealed (:meth:`engine.clients.stream.Scratch.seal`), a forked child
(:mod:`engine.clients.forked`) scores every kept response into a database of its own
(:func:`engine.clients.kept.scores_path`: beside the scratch database, 0600, inside the
workspace, removed with it) while the task resolves; the measures step then takes each
response's outcomes from there, in the order it scores in, and does only what needs the
clients (:func:`engine.measures.step.score_all`).

The outcomes are kept as JSON (a measurement as its document, a reason as its four fields):
the task's own spill stores them as JSON too, and every JSON value round-trips exactly, so
the published files, the links and the charts are the same bytes either way
(``python -m bench.project_check --dump``; ``tests/engine/test_project_reads.py``). Below
:data:`PRESCORE_MIN` responses, without ``fork``, or when the child fails for any reason,
the task scores them itself, as before: the child can only save time, never change a result.
The child reads only the kept responses (a file nothing writes any more) and writes only its
own file; it sends back one number, the responses it scored.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from engine.clients import forked, kept
from engine.clients.keys import address_case
from engine.measures.registry import Registry
from engine.measures.score import Columns, NotScored, Outcome, score_response
from engine.store.fsutil import create_private

PRESCORE_MIN = int(os.environ.get("LORCH_PRESCORE_MIN", "2000"))
"""Kept form responses below which the task scores them itself (``LORCH_PRESCORE_MIN``): a
fork and a second database cost more than they save on a few."""
BATCH = 1024
"""Rows per ``executemany`` into the scores database."""

SCHEMA = """
CREATE TABLE scores (
    pass      INTEGER NOT NULL,
    acct      INTEGER NOT NULL,
    entity_id TEXT NOT NULL,
    email     TEXT NOT NULL,
    outcomes  BLOB NOT NULL,
    PRIMARY KEY (pass, acct, entity_id)
) WITHOUT ROWID
"""
"""One row per kept response, keyed like ``kept.responses``: the respondent's e-mail
(ASCII case-folded, "" without one: the duplicate check's fallback identity) and the outcomes."""


def parse(data: bytes) -> dict[str, Any]:
    """A response's bytes as a dict ({} when they are not a JSON object)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def email_of(doc: dict[str, Any]) -> str:
    """The respondent's e-mail in the spelling keys compare (``keys.address_case``; "" without one)."""
    respondent = doc.get("respondent")
    if not isinstance(respondent, dict):
        return ""
    return address_case(str(respondent.get("email") or ""))


def encode(outcomes: list[Outcome]) -> bytes:
    """Outcomes as JSON: a measurement as its document, a reason as its six fields."""
    return orjson.dumps([o if isinstance(o, dict) else [o.reason, o.measure, o.binding, o.item, o.flags,
                                                        o.effective_at]
                         for o in outcomes])


def decode(blob: bytes) -> list[Outcome]:
    """The inverse of :func:`encode`."""
    return [o if isinstance(o, dict) else NotScored(o[0], o[1], o[2], o[3], tuple(o[4]), o[5])
            for o in orjson.loads(blob)]


class Prescorer:
    """A forked child scoring the kept responses of the scratch database at ``scratch``."""

    def __init__(self, scratch: Path, reg: Registry, responses: int) -> None:
        self.path = kept.scores_path(scratch)
        self.responses = responses
        """The responses the child is to score."""
        self._child: forked.Child | None = forked.Child(lambda: _score_all(scratch, self.path, reg))

    @classmethod
    def start(cls, scratch: Path, reg: Registry, responses: int) -> Prescorer | None:
        """A prescorer for ``responses`` kept responses, or None when the task had better
        score them."""
        if responses < max(PRESCORE_MIN, 1) or not forked.can_fork():
            return None
        return cls(scratch, reg, responses)

    def result(self) -> Path | None:
        """Wait for the child: the scores database when it scored every kept response, else
        None (the task scores them itself)."""
        child, self._child = self._child, None
        if child is None:
            return None
        try:
            scored = int(child.result())
        except (forked.ChildFailed, ValueError):
            return None
        finally:
            child.stop()
        return self.path if scored == self.responses else None

    def stop(self) -> None:
        """Kill the child if it still runs (the task stops early)."""
        if self._child is not None:
            self._child.stop()
            self._child = None


def _score_all(scratch: Path, out: Path, reg: Registry) -> bytes:
    """In the child: score every kept response into ``out``; return how many."""
    src = sqlite3.connect(f"file:{kept.kept_path(scratch)}?mode=ro", uri=True, isolation_level=None)
    create_private(out)
    dst = sqlite3.connect(out, isolation_level=None)
    for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = MEMORY"):
        dst.execute(f"PRAGMA {pragma}")
    dst.execute(SCHEMA)
    dst.execute("BEGIN")
    rows: list[tuple[int, int, str, str, bytes]] = []
    n = 0
    columns = Columns()  # a linked sheet's questions, from all its rows first
    for (data,) in src.execute("SELECT data FROM responses"):
        columns.learn(parse(data))
    for pass_, acct, entity, data in src.execute(
            "SELECT pass, acct, entity_id, data FROM responses ORDER BY pass, acct, entity_id"):
        doc = parse(data)
        rows.append((pass_, acct, entity, email_of(doc), encode(score_response(doc, reg, columns))))
        n += 1
        if len(rows) >= BATCH:
            dst.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)", rows)
            rows.clear()
    dst.executemany("INSERT INTO scores VALUES (?, ?, ?, ?, ?)", rows)
    dst.execute("COMMIT")
    dst.close()
    src.close()
    return str(n).encode()
