"""The measures step of the project stage: form responses -> measurements in the index.

Before the client tables are written, every indexed ``form_response`` is scored
(:mod:`engine.measures.score`) against the registry. Each scored measure becomes a
``measurement`` document carrying the client the response was linked to (through the
respondent's e-mail, by the client layer). The same response arriving twice (the Forms API
and the form's linked sheet) is scored once: later copies are duplicates, counted apart
from what was not scored (a copy is not a failure) and listed in ``scored.duplicates.jsonl``
with the measurement they repeat. Copies are recognised by the respondent's e-mail, not by
the client each is linked to: when an override links one copy elsewhere, the override
decides whose the one measurement is, and copies whose overrides contradict each other are
scored for no one (``COPIES_DISAGREE``), never for two clients.
The measurements are published like a canonical account (``canonical/measures/scored.jsonl``
and its ``.meta.json``, sorted, so a rerun is byte-identical; with the rejects and
duplicates files as one generation behind one pointer, :mod:`engine.store.fsgen`) and loaded by
the index's own loader (in a process of its own when it embeds them: :mod:`engine.measures.load`); what was not scored goes with its reason to ``scored.rejects.jsonl`` (0600, inside
the workspace), one line per count of ``not_scored``. Each measurement is also a row of ``client_links`` so ``query --client``
finds it, written in the same transaction as the client tables (a reader never sees the
new tables without their measurement links). Counts go to ``clients_meta`` for the
dashboard; nothing here prints data.

Nothing grows with the number of responses in memory: the measurements, rejects, duplicates
and the duplicate check live in tables of the project task's scratch database
(:mod:`engine.measures.spill`) and are streamed out of it, in file order, to the published
files, the ``client_links`` rows and each client's ``measures.md``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine.clients import tables
from engine.clients.model import Projection
from engine.index.store import ObjectMissing, begin_immediate, objects_dir, read_object
from engine.measures import chart, copies, prescore
from engine.measures.load import Background, LoadError, Progress
from engine.measures.load import load as load_measurements
from engine.measures.load import start as start_load
from engine.measures.registry import Registry
from engine.measures.score import (
    COPIES_DISAGREE,
    DUPLICATE,
    MEASURES_ACCOUNT,
    MEASURES_SOURCE,
    Columns,
    Outcome,
    raised,
    score_response,
)
from engine.measures.scoredfiles import publish_scored
from engine.measures.spill import Spill
from engine.store.workspace import Workspace

LINK_RULE = "form_response"
"""``client_links.rule`` of a measurement (linked through its response's client)."""


class MeasuresFailed(Exception):
    """The measurements could not be indexed; ``code`` is an index error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class MeasuresResult:
    """What one measures step did (counts are PHI-free)."""

    responses: int = 0
    scored: int = 0
    """Measurements written (one per scored measure of a response)."""
    not_scored: int = 0
    """Measures (or whole responses) not scored."""
    duplicates: int = 0
    """Measures of a response already scored from another copy (not counted as not scored)."""
    reasons: Counter[str] = field(default_factory=Counter)
    """Not scored, by reason code."""
    critical_unlinked: int = 0
    """Measures with a critical item answered above its threshold, or whose answer is not known
    (:func:`engine.measures.score.raised`), in a response linked to no client: in no chart, so
    the task warns (``MEASURES_CRITICAL_UNLINKED``)."""
    rejects_path: str | None = None
    duplicates_path: str | None = None
    spill: Spill | None = None
    """Where the measurements are (for :func:`link` and :func:`chart_files`; never printed)."""
    load: Background | None = None
    """The measurements' load still running beside the task (``run(..., background=True)``):
    :meth:`wait_load` before the projection counts as done."""

    def wait_load(self, progress: Progress) -> None:
        """Wait for the background load (if any); MeasuresFailed(code) when it failed."""
        if self.load is None:
            return
        try:
            self.load.wait(progress)
        except LoadError as exc:
            raise MeasuresFailed(exc.code) from None
        finally:
            self.load.stop()
        self.load = None

    def close(self) -> None:
        """Stop a load still running (the task stops early) and close the connections to the
        measurements (the project task's scratch database is removed with them)."""
        if self.load is not None:
            self.load.stop()
        if self.spill is not None:
            self.spill.close()


def _read(objects: str, sha: str) -> dict[str, Any]:
    """The response's object, checked against its sha256 (ObjectCorrupt propagates: a
    damaged object fails the task rather than being scored as someone's answers)."""
    try:
        return prescore.parse(read_object(objects, sha))
    except (ObjectMissing, OSError):
        return {}


def _clients_of(p: Projection) -> dict[tuple[str, str, str], str | None]:
    """(source, account, entity_id) of each linked form response -> its one client (a
    projection resolved in memory; a streamed one answers from its scratch database)."""
    out: dict[tuple[str, str, str], str | None] = {}
    for link in p.links:
        if link.doc.kind == "form_response":
            key = (link.doc.source, link.doc.account, link.doc.entity_id)
            out[key] = link.client_id if key not in out else None  # several: none
    return out


def _copy_key(measure: str, who: str, effective_at: str | None) -> str:
    """What the copies of one submission share for one measure, whether each was scored or not
    (the Forms API's and its linked sheet's: one respondent, one time)."""
    return orjson.dumps([measure, who, effective_at]).decode()


def _dedupe_key(m: dict[str, Any], who: str) -> str:
    """What makes two measurements the same (as text: the bytes ``orjson.dumps`` returns keep
    a 4 KiB buffer each, measured 30 MiB for 7,900 keys kept in ``seen``)."""
    return orjson.dumps([m["measure"], m["measure_version"], who, m["effective_at"], m["items"]],
                        option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Scored:
    """What scoring every indexed form response gave (the rows are in the spill)."""

    responses: int
    """Form responses read."""
    scored: int
    """Measurements (one per scored measure of a response)."""
    rejects: int
    """What was not scored (a stable reason each)."""
    duplicates: int
    """Copies of an already scored measure."""
    reasons: Counter[str]
    """Not scored, by reason code."""


class _Scoring:
    """Scores responses one by one into the spill (with its duplicate check)."""

    EVERY = 512
    """Responses between two progress calls."""

    def __init__(self, clients: Callable[[str, str, str], str | None], reg: Registry, spill: Spill,
                 progress: Callable[[int], None]) -> None:
        self.client_of = clients
        self.reg = reg
        self.spill = spill
        self.columns = Columns()
        """What the rows of each linked sheet showed: learnt before any of them is scored."""
        self.reasons: Counter[str] = Counter()
        self.done = 0
        self.progress = progress

    def score(self, row: tuple[str, str, str, str], doc: dict[str, Any], client: str | None) -> None:
        """Score one response (``row``: source, account, entity_id, sha256) of ``client``."""
        self.take(row, prescore.email_of(doc), score_response(doc, self.reg, self.columns), client)

    def take(self, row: tuple[str, str, str, str], email: str, outcomes: list[Outcome],
             client: str | None) -> None:
        """One response's outcomes (scored here or by :mod:`engine.measures.prescore`) into
        the spill: the duplicate check, the client, the rejects."""
        source, account, entity, _sha = row
        ref = f"{source}/{account}/{entity}"
        who = copies.respondent(email, client, ref)
        self.done += 1
        if self.done % self.EVERY == 0:
            self.progress(self.done)
        for out in outcomes:
            if isinstance(out, dict):
                first = self.spill.first_copy(_dedupe_key(out, who), str(out["source_id"]), client, ref)
                if first is not None and copies.same_account(first[2], ref):
                    first = None  # two responses of one account are two submissions, never copies
                if first is not None:
                    first_id, first_client, first_ref = first
                    if (first_client or None) != (client or None):  # settled in _finish
                        self.spill.dispute(first_id, first_ref)
                    self.spill.duplicate({"response": ref, "reason": DUPLICATE, "measure": out["measure"],
                                          "binding": out["binding"], "duplicate_of": first_id}, client)
                    continue
                if client:
                    out["client_id"] = client
                self.spill.measurement(out, _copy_key(out["measure"], who, out["effective_at"]))
                continue
            self.reasons[out.reason] += 1
            line: dict[str, Any] = {"response": ref, "reason": out.reason, "measure": out.measure, "binding": out.binding,
                    "item": out.item}
            if out.flags:  # a critical item answered or unknown: said in the rejects file and the chart
                line["flags"] = list(out.flags)
            # a response without a time is matched to no other copy: two such submissions of
            # one person are two rows, each in the chart its own link names
            copy_key = _copy_key(out.measure, who, out.effective_at) if out.measure and out.effective_at else None
            self.spill.reject(line, client, out.effective_at, copy_key)


def score_all(conn: sqlite3.Connection, objects: str, p: Projection, reg: Registry, spill: Spill,
              scores: Path | None = None, progress: Callable[[int, int], None] | None = None,
              only: Collection[tuple[str, str]] | None = None) -> Scored:
    """Score every indexed form response into ``spill``, one parsed response in memory at a time.

    Copies with a response id (the Forms API's) go first, then the others (a linked sheet's
    copy of the same answers), each group in (source, account, entity_id) order. The
    responses are read sequentially from the scratch database, where the project task's
    reader kept their bytes (:func:`engine.clients.kept.kept_documents`); only when it
    did not keep every indexed response (an index whose ``accounts`` table misses one) are
    they read from their object files: the first pass scores those with a response id and
    only notes the others, which the second pass reads again. ``scores`` is the database of
    a forked scorer that scored every kept response already (:mod:`engine.measures.prescore`):
    their outcomes are taken from there, in the same order. ``progress`` is called with
    (responses done, responses in all) now and then. ``only``: the accounts the projection
    reads (the config's extractors'); other accounts' responses are neither counted nor read.
    """
    client_of: Callable[[str, str, str], str | None] = spill.client_of
    if p.streamed is None:
        in_memory = _clients_of(p)
        client_of = lambda s, a, e: in_memory.get((s, a, e))  # noqa: E731
    indexed = sum(n for source, account, n in conn.execute(
        "SELECT source, account, count(*) FROM documents WHERE kind = 'form_response' AND source != ? "
        "GROUP BY source, account", (MEASURES_SOURCE,)) if only is None or (source, account) in only)
    run = _Scoring(client_of, reg, spill, lambda n: progress(n, indexed) if progress else None)
    if spill.kept_count() == indexed:  # the reader kept every one (the usual case)
        if scores is not None:
            for source, account, entity, email, outcomes, client in spill.kept(scores):
                run.take((source, account, entity, ""), email, prescore.decode(outcomes), client)
        else:
            for _source, _account, _entity, data, _client in spill.kept():
                run.columns.learn(prescore.parse(data))
            for source, account, entity, data, client in spill.kept():
                run.score((source, account, entity, ""), prescore.parse(data), client)
        return _finish(spill, indexed, run, copies.Overridden(p, spill))
    responses = 0
    for row in conn.execute(
            "SELECT source, account, entity_id, sha256 FROM documents WHERE kind = 'form_response' "
            "AND source != ? ORDER BY source, account, entity_id", (MEASURES_SOURCE,)):
        if only is not None and (row[0], row[1]) not in only:
            continue
        responses += 1
        doc = _read(objects, row[3])
        run.columns.learn(doc)  # a sheet's rows have no response id: scored after all are read
        if doc.get("response_id"):
            run.score(row, doc, client_of(*row[:3]))
        else:
            spill.later(row)
        del doc  # one response at a time, not every response of the index
    for row in spill.later_rows():
        run.score(row, _read(objects, row[3]), client_of(*row[:3]))
    return _finish(spill, responses, run, copies.Overridden(p, spill))


def _finish(spill: Spill, responses: int, run: _Scoring, overridden: Callable[[str], bool]) -> Scored:
    """Settle the measurements whose copies were linked to different clients, then close the
    spill: one copy's override decides (the measurement goes to the client it names, or to
    no one); copies that still disagree (two overrides naming different clients, or no
    override deciding) are scored for no one, every copy a ``COPIES_DISAGREE`` reject. The
    not-scored submissions are settled the same way for the charts."""
    run.reasons[COPIES_DISAGREE] += copies.settle_all(spill, overridden)
    spill.settle_rejects(lambda pairs: copies.owner(pairs, overridden)[1])
    spill.finish()
    c = spill.counts
    return Scored(responses, c["scored"], c["rejects"], c["dups"], run.reasons)


def link(conn: sqlite3.Connection, result: MeasuresResult) -> None:
    """The measurements' ``client_links`` rows, client counts and meta (in the caller's transaction).

    Last, the client tables are complete: their totals are counted into ``clients_meta``
    (:func:`engine.clients.tables.store_counts`), so readers need not count a million links."""
    conn.execute("DELETE FROM client_links WHERE source = ? AND account = ?",
                 (MEASURES_SOURCE, MEASURES_ACCOUNT))
    conn.executemany(
        "INSERT OR REPLACE INTO client_links (client_id, source, account, kind, entity_id, "
        "rule, direction, via) VALUES (?, ?, ?, 'measurement', ?, ?, NULL, ?)",
        ((cid, MEASURES_SOURCE, MEASURES_ACCOUNT, sid, LINK_RULE, rid)
         for cid, sid, rid in (result.spill.links() if result.spill is not None else ())))
    conn.execute("UPDATE clients SET documents = (SELECT count(*) FROM client_links l "
                 "WHERE l.client_id = clients.client_id)")
    conn.executemany("INSERT OR REPLACE INTO clients_meta (key, value) VALUES (?, ?)", [
        ("measures_responses", str(result.responses)),
        ("measures_scored", str(result.scored)),
        ("measures_not_scored", str(result.not_scored)),
        ("measures_duplicates", str(result.duplicates)),
        ("measures_critical_unlinked", str(result.critical_unlinked)),  # said again by skipped runs
    ])
    tables.store_counts(conn)


def run(ws: Workspace, conn: sqlite3.Connection, p: Projection, reg: Registry, *, scratch: Path,
        vectors: bool = True, link_now: bool = True, prescorer: prescore.Prescorer | None = None,
        progress: Callable[[int, int], None] | None = None,
        load_progress: Callable[[int, int | None], None] | None = None, force: bool = False,
        accounts: Collection[tuple[str, str]] | None = None, background: bool = False) -> MeasuresResult:
    """Score, write, index and link the measurements of one project run.

    ``scratch`` is the project task's scratch database (closed by its writer): the
    measurements go into tables there (:mod:`engine.measures.spill`) until the charts are
    written; call :meth:`MeasuresResult.close` before it is removed.
    ``vectors`` is the index stage's setting: embed the measurements like other documents.
    With ``link_now`` False the ``client_links`` rows are left to the caller's transaction
    (:func:`link`), so the client tables and their measurement links commit as one.
    ``prescorer``: the forked scorer started when the reading ended, waited for first;
    ``progress``: (responses scored, responses in all), now and then; ``load_progress``:
    (measurements indexed, measurements in all) while they are indexed; ``accounts``: the
    accounts the projection read (None: every one); ``background``: with vectors, start the
    load in its own process and return at once (:attr:`MeasuresResult.load`: the caller
    writes the tables and charts meanwhile, then calls :meth:`MeasuresResult.wait_load`).
    """
    scores = prescorer.result() if prescorer is not None else None
    spill = Spill(scratch, scores)
    result = MeasuresResult(spill=spill)
    try:
        scored = score_all(conn, str(objects_dir(ws)), p, reg, spill, scores, progress, accounts)
        result.responses, result.scored = scored.responses, scored.scored
        result.not_scored, result.duplicates, result.reasons = scored.rejects, scored.duplicates, scored.reasons
        result.critical_unlinked = spill.critical_unlinked(raised)
        indexed = conn.execute("SELECT 1 FROM accounts WHERE source = ? AND account = ?",
                               (MEASURES_SOURCE, MEASURES_ACCOUNT)).fetchone() is not None
        if scored.responses or indexed:  # a pipeline without forms gets no measures account
            result.rejects_path, result.duplicates_path = publish_scored(ws, scored, spill, reg)
            if vectors and background:  # in a process of its own, beside the tables and charts
                result.load = start_load(ws.root, force=force)
            else:
                try:  # with vectors, in a process of its own: the model stays out of the task
                    load_measurements(ws.root, vectors=vectors, progress=load_progress, force=force)
                except LoadError as exc:
                    raise MeasuresFailed(exc.code) from None
        if link_now:
            begin_immediate(conn)
            try:
                link(conn, result)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except BaseException:
        result.close()
        raise
    return result


def chart_files(result: MeasuresResult, p: Projection, reg: Registry, client_id: str) -> dict[str, bytes]:
    """The measures file of one client's chart folder."""
    c = p.clients.get(client_id)
    name = c.card.name if c is not None else None
    got = result.spill.of_client(client_id) if result.spill is not None else []
    missed = result.spill.not_scored_of_client(client_id) if result.spill is not None else []
    return {"measures.md": chart.render(name, got, reg, missed, p.timezone).encode()}
