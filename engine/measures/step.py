"""The measures step of the project stage: form responses -> measurements in the index.

Before the client tables are written, every indexed ``form_response`` is scored
(:mod:`engine.measures.score`) against the registry. Each scored measure becomes a
``measurement`` document carrying the client the response was linked to (through the
respondent's e-mail, by the client layer). The same response arriving twice (the Forms API
and the form's linked sheet) is scored once: later copies are duplicates, counted apart
from what was not scored (a copy is not a failure) and listed in ``scored.duplicates.jsonl``
with the measurement they repeat.
The measurements are published like a canonical account (``canonical/measures/scored.jsonl``
and its ``.meta.json``, sorted, so a rerun is byte-identical; with the rejects and
duplicates files as one generation behind one pointer, :mod:`engine.store.fsgen`) and loaded by
the index's own loader; what was not scored goes with its reason to ``scored.rejects.jsonl`` (0600, inside
the workspace), one line per count of ``not_scored``. Each measurement is also a row of ``client_links`` so ``query --client``
finds it, written in the same transaction as the client tables (a reader never sees the
new tables without their measurement links). Counts go to ``clients_meta`` for the
dashboard; nothing here prints data.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.canon import publish
from engine.canon.publish import AccountFiles
from engine.clients import tables
from engine.clients.model import Projection
from engine.index.load import AccountLoader
from engine.index.outcome import LoadFailed
from engine.index.store import ObjectMissing, begin_immediate, objects_dir, read_object
from engine.measures import chart
from engine.measures.registry import Registry
from engine.measures.score import DUPLICATE, MEASURES_ACCOUNT, MEASURES_SOURCE, score_response
from engine.store.fsgen import GenerationMissing
from engine.store.fsutil import ensure_dir, json_bytes, open_private
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
    by_client: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejects_path: str | None = None
    duplicates_path: str | None = None
    measurements: list[dict[str, Any]] = field(default_factory=list)
    """Every measurement (for :func:`link`; never printed)."""


def _read(objects: str, sha: str) -> dict[str, Any]:
    """The response's object, checked against its sha256 (ObjectCorrupt propagates: a
    damaged object fails the task rather than being scored as someone's answers)."""
    try:
        doc = orjson.loads(read_object(objects, sha))
    except (ObjectMissing, OSError, orjson.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _clients_of(p: Projection) -> dict[tuple[str, str, str], str | None]:
    """(source, account, entity_id) of each linked form response -> its one client."""
    if p.streamed is not None:
        return p.streamed.form_clients
    out: dict[tuple[str, str, str], str | None] = {}
    for link in p.links:
        if link.doc.kind == "form_response":
            key = (link.doc.source, link.doc.account, link.doc.entity_id)
            out[key] = link.client_id if key not in out else None  # several: none
    return out


def _dedupe_key(m: dict[str, Any], who: str) -> str:
    """What makes two measurements the same (as text: the bytes ``orjson.dumps`` returns keep
    a 4 KiB buffer each, measured 30 MiB for 7,900 keys kept in ``seen``)."""
    return orjson.dumps([m["measure"], m["measure_version"], who, m["effective_at"], m["items"]],
                        option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Scored:
    """What scoring every indexed form response gave."""

    measurements: list[dict[str, Any]]
    """One per scored measure of a response, sorted by ``source_id``."""
    rejects: list[dict[str, Any]]
    """What was not scored, and why (a stable reason)."""
    duplicates: list[dict[str, Any]]
    """Copies of an already scored measure, with the ``source_id`` they repeat."""
    responses: int
    """Form responses read."""


class _Scoring:
    """The outputs of scoring responses one by one, with the duplicate check's memory."""

    def __init__(self, clients: dict[tuple[str, str, str], str | None], reg: Registry) -> None:
        self.clients = clients
        self.reg = reg
        self.seen: dict[str, str] = {}
        self.measurements: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []
        self.duplicates: list[dict[str, Any]] = []

    def score(self, row: tuple[str, str, str, str], doc: dict[str, Any]) -> None:
        """Score one response (``row``: source, account, entity_id, sha256)."""
        source, account, entity, _sha = row
        ref = f"{source}/{account}/{entity}"
        client = self.clients.get((source, account, entity))
        respondent = doc.get("respondent") if isinstance(doc.get("respondent"), dict) else {}
        assert isinstance(respondent, dict)
        who = client or str(respondent.get("email") or "").casefold() or ref
        for out in score_response(doc, self.reg):
            if isinstance(out, dict):
                key = _dedupe_key(out, who)
                if key in self.seen:
                    self.duplicates.append({"response": ref, "reason": DUPLICATE, "measure": out["measure"],
                                            "binding": out["binding"], "duplicate_of": self.seen[key]})
                    continue
                self.seen[key] = str(out["source_id"])
                if client:
                    out["client_id"] = client
                self.measurements.append(out)
                continue
            self.rejects.append({"response": ref, "reason": out.reason, "measure": out.measure,
                                 "binding": out.binding, "item": out.item})


def score_all(conn: sqlite3.Connection, objects: str, p: Projection, reg: Registry) -> Scored:
    """Score every indexed form response, one parsed response in memory at a time.

    Copies with a response id (the Forms API's) go first, then the others (a linked sheet's
    copy of the same answers), each group in (source, account, entity_id) order: the first
    pass scores the former and only notes the latter, which the second pass reads again.
    """
    rows = conn.execute(
        "SELECT source, account, entity_id, sha256 FROM documents WHERE kind = 'form_response' "
        "AND source != ? ORDER BY source, account, entity_id", (MEASURES_SOURCE,)).fetchall()
    run = _Scoring(_clients_of(p), reg)
    later: list[tuple[str, str, str, str]] = []
    for row in rows:
        doc = _read(objects, row[3])
        if doc.get("response_id"):
            run.score(row, doc)
        else:
            later.append(row)
        del doc  # one response at a time, not every response of the index
    for row in later:
        run.score(row, _read(objects, row[3]))
    measurements, rejects, duplicates = run.measurements, run.rejects, run.duplicates
    measurements.sort(key=lambda m: str(m["source_id"]))
    rejects.sort(key=lambda r: (r["response"], str(r["measure"])))
    duplicates.sort(key=lambda r: (r["response"], str(r["measure"])))
    return Scored(measurements, rejects, duplicates, len(rows))


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n" for r in rows)


def _write(ws: Workspace, scored: Scored, reg: Registry) -> tuple[str, str]:
    """Publish the measurements, meta, rejects and duplicates as one generation.

    The four files are one :class:`engine.store.fsgen.GenerationStore` generation of the account
    ``measures/scored`` (like a canonized account's, :mod:`engine.canon.publish`): a reader
    through the store sees the old set or the new one, never new data beside old meta. What
    a killed attempt left is dropped first; an unchanged set is not republished (a rerun
    moves nothing). Returns the plain paths of the rejects and duplicates files.
    """
    files = AccountFiles(ensure_dir(ws.canonical / MEASURES_SOURCE), MEASURES_ACCOUNT)
    publish.recover(files)  # the project stage holds the workspace lock: the only writer
    data = _jsonl(scored.measurements)
    contents = {
        files.name("data"): data,
        files.name("meta"): json_bytes({
            "output": {"sha256": hashlib.sha256(data).hexdigest(), "records": len(scored.measurements)},
            "inputs": {"measures_registry_sha256": reg.sha256},
        }),
        files.name("rejects"): _jsonl(scored.rejects),
        duplicates_name(): _jsonl(scored.duplicates),
    }
    if not _published(files, contents):
        with files.store.stage() as gen:
            for name, content in contents.items():
                with open_private(gen.path(name), "wb") as fh:
                    fh.write(content)
            gen.commit()
    return str(files.rejects), str(files.folder / duplicates_name())


def duplicates_name() -> str:
    """The file name of the duplicates list (published with the measurements)."""
    return f"{MEASURES_ACCOUNT}.duplicates.jsonl"


def _published(files: AccountFiles, contents: dict[str, bytes]) -> bool:
    """True when the current generation holds exactly ``contents`` and its plain names
    point at it (nothing to publish)."""
    gen = files.store.current()
    if gen is None or gen.number == 0 or not files.store.mirrors_current():
        return False
    if sorted(gen.names()) != sorted(contents):
        return False
    try:
        with files.store.open(*contents) as (_gen, handles):
            return all(fh is not None and fh.read() == contents[name]
                       for name, fh in handles.items())
    except (GenerationMissing, OSError):
        return False


def link(conn: sqlite3.Connection, result: MeasuresResult) -> None:
    """The measurements' ``client_links`` rows, client counts and meta (in the caller's transaction).

    Last, the client tables are complete: their totals are counted into ``clients_meta``
    (:func:`engine.clients.tables.store_counts`), so readers need not count a million links."""
    measurements = result.measurements
    conn.execute("DELETE FROM client_links WHERE source = ? AND account = ?",
                 (MEASURES_SOURCE, MEASURES_ACCOUNT))
    conn.executemany(
        "INSERT OR REPLACE INTO client_links (client_id, source, account, kind, entity_id, "
        "rule, direction, via) VALUES (?, ?, ?, 'measurement', ?, ?, NULL, ?)",
        [(m["client_id"], MEASURES_SOURCE, MEASURES_ACCOUNT, m["source_id"], LINK_RULE,
          m["response_id"] or "") for m in measurements if m.get("client_id")])
    conn.execute("UPDATE clients SET documents = (SELECT count(*) FROM client_links l "
                 "WHERE l.client_id = clients.client_id)")
    conn.executemany("INSERT OR REPLACE INTO clients_meta (key, value) VALUES (?, ?)", [
        ("measures_responses", str(result.responses)),
        ("measures_scored", str(result.scored)),
        ("measures_not_scored", str(result.not_scored)),
        ("measures_duplicates", str(result.duplicates)),
    ])
    tables.store_counts(conn)


def run(ws: Workspace, conn: sqlite3.Connection, p: Projection, reg: Registry, *,
        vectors: bool = True, link_now: bool = True) -> MeasuresResult:
    """Score, write, index and link the measurements of one project run.

    ``vectors`` is the index stage's setting: embed the measurements like other documents.
    With ``link_now`` False the ``client_links`` rows are left to the caller's transaction
    (:func:`link`), so the client tables and their measurement links commit as one.
    """
    scored = score_all(conn, str(objects_dir(ws)), p, reg)
    measurements = scored.measurements
    result = MeasuresResult(responses=scored.responses, scored=len(measurements),
                            not_scored=len(scored.rejects), duplicates=len(scored.duplicates),
                            reasons=Counter(r["reason"] for r in scored.rejects))
    indexed = conn.execute("SELECT 1 FROM accounts WHERE source = ? AND account = ?",
                           (MEASURES_SOURCE, MEASURES_ACCOUNT)).fetchone() is not None
    if scored.responses or indexed:  # a pipeline without forms gets no measures account
        result.rejects_path, result.duplicates_path = _write(ws, scored, reg)
        try:
            AccountLoader(ws, MEASURES_SOURCE, MEASURES_ACCOUNT, vectors=vectors).run()
        except LoadFailed as exc:
            raise MeasuresFailed(exc.code) from None
    result.measurements = measurements
    if link_now:
        begin_immediate(conn)
        try:
            link(conn, result)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    for m in measurements:
        if m.get("client_id"):
            result.by_client.setdefault(m["client_id"], []).append(m)
    return result


def chart_files(result: MeasuresResult, p: Projection, reg: Registry, client_id: str) -> dict[str, bytes]:
    """The measures file of one client's chart folder."""
    c = p.clients.get(client_id)
    name = c.card.name if c is not None else None
    return {"measures.md": chart.render(name, result.by_client.get(client_id, []), reg).encode()}
