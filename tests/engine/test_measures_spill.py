"""The measures step's on-disk spill gives what the in-memory lists gave, in the same order.

The published files and ``measures.md`` must stay byte-identical to what a stable Python
sort of the lists produced: ties keep their insertion order, non-ASCII sorts by code point,
a missing measure sorts as ``"None"``; a forked chart writer reads through its own connection.
"""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from engine.measures.copies import owner
from engine.measures.spill import Spill


def _scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch.sqlite"
    sqlite3.connect(path).close()
    return path


def _measurements(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(7)
    ids = ["a/1", "a/10", "a/2", "é/1", "z", "Z", "a/1"]  # ties and non-ASCII
    return [{"source_id": rnd.choice(ids), "n": i, "client_id": rnd.choice(["c1", "c2", None]),
             "response_id": rnd.choice(["r", None, 5])} for i in range(n)]


def test_lines_follow_a_stable_sort(tmp_path: Path) -> None:
    spill = Spill(_scratch(tmp_path))
    ms = _measurements(5000)  # more than one insert batch
    rejects = [{"response": r, "measure": m, "reason": "NO_TIME", "i": i}
               for i, (r, m) in enumerate([("x", None), ("x", "PHQ9"), ("ä", "GAD7"), ("x", None), ("b", "N")])]
    for m in ms:
        stored = {k: v for k, v in m.items() if v is not None or k != "client_id"}
        spill.measurement(stored)
    for r in rejects:
        spill.reject(r)
        spill.duplicate(r)
    spill.finish()
    clean = [{k: v for k, v in m.items() if v is not None or k != "client_id"} for m in ms]
    want = [orjson.dumps(m, option=orjson.OPT_SORT_KEYS) + b"\n"
            for m in sorted(clean, key=lambda m: str(m["source_id"]))]
    assert list(spill.lines("scored")) == want
    want_r = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
              for r in sorted(rejects, key=lambda r: (r["response"], str(r["measure"])))]
    assert list(spill.lines("rejects")) == want_r
    assert list(spill.lines("dups")) == want_r
    ordered = sorted(clean, key=lambda m: str(m["source_id"]))
    assert spill.of_client("c1") == [m for m in ordered if m.get("client_id") == "c1"]
    assert spill.of_client("nobody") == []
    assert list(spill.links()) == [(m["client_id"], m["source_id"], m["response_id"] or "")
                                   for m in ordered if m.get("client_id")]
    assert spill.counts == {"scored": 5000, "rejects": 5, "dups": 5}
    spill.close()


def test_duplicate_check_and_second_pass(tmp_path: Path) -> None:
    spill = Spill(_scratch(tmp_path))
    assert spill.seen("k1", "first") is None
    assert spill.seen("k2", "other") is None
    assert spill.seen("k1", "second") == "first"
    rows = [("s", "a", f"e{i}", f"{i:064x}") for i in range(4500)]
    for row in rows:
        spill.later(row)
    assert list(spill.later_rows()) == rows
    spill.finish()
    spill.close()


def test_a_fresh_spill_forgets_a_previous_runs_rows(tmp_path: Path) -> None:
    path = _scratch(tmp_path)
    old = Spill(path)
    old.measurement({"source_id": "old", "client_id": "c1"})
    old.finish()
    old.close()
    new = Spill(path)
    new.finish()
    assert list(new.lines("scored")) == []
    new.close()


def test_a_forked_reader_opens_its_own_connection(tmp_path: Path) -> None:
    spill = Spill(_scratch(tmp_path))
    spill.measurement({"source_id": "s1", "client_id": "c1", "value": 3})
    spill.finish()
    assert spill.of_client("c1") == [{"client_id": "c1", "source_id": "s1", "value": 3}]
    parent = spill.reader()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new connection, the parent's left alone
        try:
            ok = spill.reader() is not parent and spill.of_client("c1")[0]["value"] == 3
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"
    assert spill.reader() is parent
    spill.close()


def test_not_scored_rows_follow_their_submission_s_copies(tmp_path: Path) -> None:
    """One submission, two copies (the Forms API's, its linked sheet's), possibly linked to
    different clients: a not-scored row is in the one chart the copies agree on (or the
    overridden copies name), in none when they disagree, and in none when another copy of
    the submission was scored (the measure has its score)."""
    spill = Spill(_scratch(tmp_path))

    def reject(response: str, client: str | None, key: str) -> None:
        spill.reject({"response": response, "reason": "UNKNOWN_ANSWER", "measure": "phq9", "binding": "b",
                      "item": "phq9_3", "flags": ["phq9_9_positive"]}, client, "2025-07-15T00:00:00Z", key)

    spill.measurement({"source_id": "m/1", "client_id": "c1", "measure": "gad7"}, "scored-key")
    reject("forms/a/1", "c1", "agree")
    reject("sheets/b/1", "c1", "agree")
    reject("forms/a/2", "c1", "disagree")
    reject("sheets/b/2", "c2", "disagree")
    reject("forms/a/3", "c1", "override")
    reject("sheets/b/3", "c2", "override")
    reject("sheets/b/4", "c2", "scored-key")  # its other copy was scored for c1
    spill.settle_rejects(lambda pairs: owner(pairs, lambda ref: ref == "sheets/b/3")[1])
    spill.finish()
    shown = {c: [r["response"] for r in spill.not_scored_of_client(c)] for c in ("c1", "c2")}
    assert shown == {"c1": ["forms/a/1", "sheets/b/1"], "c2": ["forms/a/3", "sheets/b/3"]}, shown
    assert all(r["flags"] == ["phq9_9_positive"] and r["effective_at"] == "2025-07-15T00:00:00Z"
               for r in spill.not_scored_of_client("c1"))
    assert len(list(spill.lines("rejects"))) == 7, "the rejects file keeps every copy"
    spill.close()


def test_critical_items_of_responses_linked_to_no_one_are_counted(tmp_path: Path) -> None:
    """A positive item 9 in a response linked to no client is in no chart: the task warns
    with their count (MEASURES_CRITICAL_UNLINKED), and so is an item 9 whose answer is not
    known (it may be positive). A linked one, a blank item 9 and a rejected copy of a
    submission scored from its other copy are not counted."""
    from engine.measures.score import raised

    spill = Spill(_scratch(tmp_path))
    pos = ["phq9_9_positive", "prorated"]
    spill.measurement({"source_id": "a/1/phq9.v1", "flags": pos}, "k1")  # no client: counted
    spill.measurement({"source_id": "a/2/phq9.v1", "flags": pos, "client_id": "c1"}, "k2")
    spill.measurement({"source_id": "a/3/phq9.v1", "flags": ["phq9_9_unanswered", "prorated"]}, "k3")
    spill.reject({"response": "s/7", "measure": "phq9", "reason": "UNKNOWN_ANSWER", "item": "phq9_9",
                  "flags": ["phq9_9_unreadable"]}, None, "2026-01-02T00:00:00Z", "k7")  # counted
    spill.reject({"response": "s/4", "measure": "phq9", "reason": "NO_TIME", "flags": ["phq9_9_positive"]})  # counted
    spill.reject({"response": "s/5", "measure": "phq9", "reason": "UNKNOWN_ANSWER", "flags": ["phq9_9_positive"]},
                 None, "2026-01-01T00:00:00Z", "k1")  # its copy a/1 was scored: counted there
    spill.reject({"response": "s/6", "measure": "phq9", "reason": "UNKNOWN_ANSWER", "flags": ["phq9_9_positive"]},
                 "c2", "2026-01-01T00:00:00Z", "k6")
    spill.finish()
    assert spill.critical_unlinked(raised) == 3
