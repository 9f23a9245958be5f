"""The project worker: every indexed document -> clients, links, conflicts, chart folders.

It runs once per pipeline run, after the run's index tasks ended, in its own subprocess
like every stage, and reports only PHI-free events (counts, codes, workspace paths). The
work, in order: load the overrides; fingerprint the inputs (every account's canonical
file sha256 and fields version in the index, the ``clients`` config section, the overrides file, the code of
:mod:`engine.clients` and this module) and end ``skipped`` when the last complete run had
the same (unless ``--force``); read every document of the index into a scratch database of
facts (:mod:`engine.clients.reading`, :mod:`engine.clients.stream`: memory stays flat, two
processes read); decide by one ordered scan, while a forked child scores the form responses
(:mod:`engine.measures.prescore`); publish the measurements and start their load (with
vectors, a process of its own: :mod:`engine.measures.load`); replace the client tables in
one transaction; bring the chart folders in line, one atomic folder at a time, in two
processes (:mod:`engine.clients.shards`); wait for the measurements' load; then mark the
charts done. A kill at any point leaves the old or the new tables, each folder old or new,
and the next run finishes the job. Progress names the phase it counts (``read``,
``resolve``, ``measures``, ``tables``, ``charts``, then ``index-measures`` for what is left
of the load; without vectors the load is part of ``measures`` and reported as
``index-measures`` before ``tables``): no phase of a large run is silent.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import phonenumbers

from engine import cancel
from engine.canon.publish import AccountFiles
from engine.clients import charts, moved, reading, shards, stream, tables
from engine.clients.model import Projection
from engine.clients.overrides import (
    Overrides,
    OverridesError,
    check_pins,
    indexed_sha256,
    load_overrides,
    stored_pins,
)
from engine.clients.resolve import Resolver
from engine.clients.rules import RULES_VERSION
from engine.clients.stream import Scratch, scratch_path
from engine.config import ClientsConfig
from engine.events import (
    ErrorCode,
    EventBase,
    Phase,
    TaskFinished,
    TaskProgress,
    write_error_code,
)
from engine.index.outcome import sqlite_failure
from engine.index.store import (
    REPAIR_HINT,
    ObjectCorrupt,
    StoreError,
    begin_immediate,
    db_path,
    objects_dir,
    open_writer,
)
from engine.measures import registry as measures_registry
from engine.measures import step as measures_step
from engine.measures.prescore import Prescorer
from engine.measures.score import MEASURES_ACCOUNT, MEASURES_SOURCE
from engine.stages import projectwarn
from engine.stages.projectfail import NO_CLIENTS_TEXT, ProjectFailed, os_error_detail, write_detail
from engine.stages.spec import TaskSpec
from engine.store.workspace import Workspace

Emit = Callable[[EventBase], None]
Progress = Callable[[int, int | None, Phase], None]
"""(done, total, phase): the project task's progress within its current phase."""
PROGRESS_EVERY_S = 0.25
CODE_FILES = sorted(Path(__file__).resolve().parents[1].joinpath("clients").glob("*.py")) + sorted(
    Path(__file__).resolve().parents[1].joinpath("measures").glob("*.py")) + [
    Path(__file__).resolve()]


def clients_dir(ws: Workspace) -> Path:
    """``{workspace}/clients``: the chart folders."""
    return ws.root / "clients"


def code_sha256() -> str:
    """The sha256 of the client layer's code: a new version re-projects everything."""
    h = hashlib.sha256(f"rules={RULES_VERSION};schema={tables.CLIENTS_SCHEMA_VERSION};"
                       f"phonenumbers={phonenumbers.__version__}".encode())  # its data makes phone keys
    for path in CODE_FILES:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(conn: sqlite3.Connection, cfg: ClientsConfig, overrides_raw: bytes,
                measures_sha256: str = "", only: frozenset[tuple[str, str]] | None = None) -> str:
    """The skip fingerprint: what each account's documents are, config section, overrides,
    measures, code.

    An account's documents in the index are a function of the canonical file they were loaded
    from (``canonical_sha256``, the file's bytes) and of the derived columns' version
    (``fields_version``: time, title). Its provenance (``inputs_sha256``: the LATEST run) and
    ``generation`` (every committed load) are left out: a nightly run that extracts the same
    records again under a new run id reloads nothing, and the projection, the same, is skipped
    (at 1,000,000 records it was redone in full: 48 s)."""
    accounts = [a for a in conn.execute(
        "SELECT source, account, canonical_sha256, fields_version "
        "FROM accounts WHERE source != ? ORDER BY source, account", (MEASURES_SOURCE,)).fetchall()
        if only is None or (a[0], a[1]) in only]
    blob = orjson.dumps({
        "measures": measures_sha256,
        "accounts": accounts,
        "clients": cfg.model_dump(mode="json"),
        "overrides": hashlib.sha256(overrides_raw).hexdigest(),
        "code": code_sha256(),
    }, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Project:
    """One project run over a workspace."""

    def __init__(self, ws: Workspace, cfg: ClientsConfig, *, force: bool = False, vectors: bool = True,
                 progress: Progress | None = None, accounts: Iterable[tuple[str, str]] | None = None) -> None:
        self.ws = ws
        self.cfg = cfg
        self.accounts = frozenset(accounts) if accounts is not None else None
        """(source, account) of the config's extractors: the index's other accounts (an
        extractor removed from the config) are left out of the projection. None: every one."""
        self.force = force
        self.on_progress: Progress = progress or (lambda done, total, phase: None)
        self.phase: Phase = "read"
        """The phase running now (its progress is reported under its name)."""
        self.projection: Projection | None = None
        self.stats = charts.ChartStats()
        self.documents = 0
        self.links = 0
        self.stale_overrides = 0
        """Pinned links whose document's content changed (not applied)."""
        self.moved = 0
        """Documents linked to another person than by the previous projection (LINKS_MOVED)."""
        self.skipped_meta: dict[str, str] = {}
        """The stored totals when the projection was skipped (its warnings are said again)."""
        self.measures: measures_step.MeasuresResult | None = None
        self.registry = measures_registry.load(cfg.measures)
        self.vectors = vectors
        self.phases: dict[str, tuple[float, float]] = {}
        """Wall and CPU seconds of each phase (read, resolve, measures, tables, charts): for
        the benchmarks (``bench.project_check``), never printed by the worker."""

    def progress(self, done: int, total: int | None) -> None:
        """Progress of the phase running now; where the engine's cancel stops the job."""
        cancel.check()
        self.on_progress(done, total, self.phase)

    def _indexing(self, done: int, total: int | None) -> None:
        """Progress of the measurements' load, a phase of its own inside ``measures``."""
        self.phase = "index-measures"
        self.progress(done, total)

    @contextlib.contextmanager
    def _phase(self, name: Phase, total: int | None = None) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        self.phase = name
        self.progress(0, total)  # a new phase is reported at once
        try:
            yield
        finally:
            self.phases[name] = (time.perf_counter() - wall, time.process_time() - cpu)

    def overrides(self) -> tuple[Overrides, bytes]:
        """The overrides file, or ProjectFailed(OVERRIDES_INVALID) with a detail file."""
        try:
            return load_overrides(self.cfg.overrides)
        except OverridesError as exc:
            raise ProjectFailed(ErrorCode.OVERRIDES_INVALID.value, write_detail(self.ws, str(exc))) from None

    def run(self) -> str:
        """Do the work; return ``success`` or ``skipped``."""
        overrides, raw = self.overrides()
        if self.registry.problems:  # a measure left out would take its scores out of every chart
            raise ProjectFailed(ErrorCode.MEASURES_INVALID.value, write_detail(
                self.ws, "MEASURES_INVALID: nothing was replaced (the client tables, the charts and "
                         "the scores stay as they were) until these files load:\n"
                         + "\n".join(self.registry.problems)
                         + "\n`lorchestra validate` lists them too (docs/measures.md)."))
        if not db_path(self.ws).is_file():
            raise ProjectFailed(ErrorCode.NO_INDEX.value)
        conn = open_writer(self.ws)
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # see CACHE_KIB
        try:
            fp = fingerprint(conn, self.cfg, raw, self.registry.sha256, self.accounts)
            if not self.force and self._unchanged(conn, fp):
                return "skipped"
            path = scratch_path(db_path(self.ws).parent)
            overrides, pinned_stale = check_pins(overrides, indexed_sha256(conn))
            self.stale_overrides = len(pinned_stale)
            with Scratch(path, Resolver(self.cfg, overrides, stored_pins(conn))) as scratch:
                with self._phase("read"):
                    self._read(conn, scratch)
                scratch.seal()  # the kept responses are complete: the second core scores them
                scorer = Prescorer.start(path, self.registry, scratch.kept_count())
                try:
                    with self._phase("resolve", self.documents):
                        p = scratch.resolve(lambda n: self.progress(n, self.documents))
                    if not p.clients and (self._source_contacts(conn) or self._had_clients(conn)):
                        raise ProjectFailed(ErrorCode.NO_CLIENTS.value, write_detail(self.ws, NO_CLIENTS_TEXT))
                    scratch.close()
                    charts.assign_folders(p.clients)
                    p.timezone = self.cfg.timezone
                    self.stale_overrides += p.stale_overrides
                    p.stale = [*pinned_stale, *p.stale]
                    self.projection = p
                    self._write(conn, p, fp, path, scorer)
                finally:
                    if scorer is not None:
                        scorer.stop()
        finally:
            conn.close()
        return "success"

    def _write(self, conn: sqlite3.Connection, p: Projection, fp: str, scratch: Path,
               scorer: Prescorer | None = None) -> None:
        """Measures, tables, charts, from the decisions in the scratch database; the
        measurements' load (with vectors: a process of its own) runs beside the tables and
        charts and is waited for before the charts count as done."""
        now = _now()
        with self._phase("measures"):
            m = self.measures = measures_step.run(self.ws, conn, p, self.registry, scratch=scratch,
                                                  vectors=self.vectors, link_now=False, prescorer=scorer,
                                                  progress=self.progress, load_progress=self._indexing,
                                                  force=self.force, accounts=self.accounts, background=True)
        conn.execute("ATTACH DATABASE ? AS scratch", (str(scratch),))
        try:
            self._tables(conn, p, fp, now, m, scratch)
            folders = len(p.clients)
            with self._phase("charts", folders):
                self.stats = shards.write_charts(
                    clients_dir(self.ws), p, now,
                    on_folder=lambda n: self.progress(n, folders),
                    extra=lambda cid: measures_step.chart_files(m, p, self.registry, cid),
                    items_of=lambda cid: stream.chart_items_in_order(conn, "scratch", cid),
                    child_items=lambda: self._items_reader(scratch), ordered=True)
            loading = m.load
            if loading is not None:
                with self._phase("index-measures"):  # its lines are read from here on
                    m.wait_load(self.progress)  # MeasuresFailed: charts_done stays unset
        finally:
            m.close()  # a load still running (an error, a cancel) is stopped
            conn.execute("DETACH DATABASE scratch")
        begin_immediate(conn)
        unused = self.projection.unused_overrides if self.projection is not None else 0
        tables.set_meta(conn, charts_done="1", overrides_unused=str(unused),  # said again by skipped runs
                        overrides_stale=str(self.stale_overrides), **(moved.mark_now(conn) if loading is not None else {}))
        conn.execute("COMMIT")

    def _tables(self, conn: sqlite3.Connection, p: Projection, fp: str, now: str,
                m: measures_step.MeasuresResult, scratch: Path) -> None:
        """Replace the client tables and the measurements' links in one transaction."""
        with self._phase("tables"), moved.own_database(conn, scratch) as moves:
            begin_immediate(conn)  # the tables and their measurement links: one commit
            try:
                tables.ensure_schema(conn)
                mark = moved.snapshot(conn, moves)  # the links before, to say which moved
                tables.write_projection(conn, p, fp, now, scratch="scratch")
                found = moved.find(conn, moves, mark)
                tables.set_meta(conn, **moved.meta(conn, found))
                self.moved = len(found)
                measures_step.link(conn, m)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.links = (tables.counts(conn) or {}).get("links", 0)  # stored by the commit

    def _items_reader(self, scratch: Path) -> shards.Items:
        """Chart items through a connection of its own (the second chart writer's)."""
        conn = sqlite3.connect(f"file:{db_path(self.ws)}?mode=ro", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA temp_store = MEMORY")  # the items' ORDER BY sorts here: never PHI in /tmp
        conn.execute("ATTACH DATABASE ? AS scratch", (f"file:{scratch}?mode=ro",))
        return lambda cid: stream.chart_items_in_order(conn, "scratch", cid)

    def _had_clients(self, conn: sqlite3.Connection) -> bool:
        """Whether charts of the last projection are on disk: a source that now gives no
        contact (a tap that synced an empty page, an expired permission) must not delete every
        chart. After ``clean --stage project`` there is none left to keep."""
        root = clients_dir(self.ws)
        try:
            folders = conn.execute("SELECT folder FROM clients").fetchall()
        except sqlite3.OperationalError:  # no client tables yet: a first projection
            return False
        return any((root / f).is_dir() for (f,) in folders)

    def _source_contacts(self, conn: sqlite3.Connection) -> bool:
        """Whether the index holds a contact of ``clients.sources``: then a projection with no
        client means ``where`` matched none (a typo, most likely), and replacing the tables
        would delete every chart; the task fails with ``NO_CLIENTS`` instead."""
        marks = ",".join("?" * len(self.cfg.sources))
        row = conn.execute(f"SELECT 1 FROM documents WHERE kind = 'contact' AND source IN ({marks}) "  # noqa: S608
                           "LIMIT 1", tuple(self.cfg.sources)).fetchone()
        return row is not None

    def _unchanged(self, conn: sqlite3.Connection, fp: str) -> bool:
        meta = tables.read_meta(conn)
        if meta.get("inputs_sha256") != fp or meta.get("charts_done") != "1":
            return False
        root = clients_dir(self.ws)
        folders = [r[0] for r in conn.execute("SELECT folder FROM clients")]
        if not all((root / f / "client.md").is_file() for f in folders):
            return False
        count = conn.execute("SELECT count(*) FROM client_links").fetchone()[0]
        self.documents = conn.execute("SELECT count(*) FROM documents WHERE source != ?",
                                      (MEASURES_SOURCE,)).fetchone()[0]
        self.links = int(count)
        self.skipped_meta = meta
        return True

    def _read(self, conn: sqlite3.Connection, scratch: Scratch) -> None:
        """Every indexed document into the scratch database (two processes above
        ``reading.READ_SHARD_MIN`` documents: :mod:`engine.clients.reading`)."""
        self.documents = reading.read_all(self.ws.canonical, str(objects_dir(self.ws)), db_path(self.ws),
                                          conn, scratch, self.progress, skip_source=MEASURES_SOURCE,
                                          only=self.accounts)


CACHE_KIB = 8192
"""SQLite page cache of the project task's connection (the index stage's writer keeps 16 MiB).
The task reads the documents table once, account by account, and writes the client tables
in one transaction: a big cache only held pages it never read again (docs/performance.md)."""

GC_THRESHOLD = (50_000, 50, 100)
"""The project task builds one large graph that lives until the task ends (every document's
facts, every client): with the default gen-0 threshold (700) the collector walks it over and
over. Measured on 56,000 documents: 3.0 -> 2.4 CPU-s, same RSS (docs/performance.md)."""


def tune_gc() -> None:
    """Freeze what is loaded so far (modules, config: never garbage) and collect less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def run_project(spec: TaskSpec, emit: Emit) -> int:
    """Run the project task; emit events; return the worker's exit code."""
    started = time.monotonic()
    ex = spec.extractor
    last = [0.0]
    shown: list[Phase | None] = [None]

    def progress(done: int, total: int | None, phase: Phase) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == total or phase != shown[0]:
            last[0], shown[0] = now, phase
            emit(TaskProgress(task_id=spec.task_id, stage="project", extractor=ex.name,
                              records=done, total=total, phase=phase))

    tune_gc()
    job = Project(Workspace(spec.workspace), spec.clients or ClientsConfig(), force=spec.force,
                  vectors=spec.index.vectors, progress=progress,
                  accounts=spec.accounts)
    status, code, detail = "success", None, None
    try:
        with cancel.on_sigterm():  # SIGTERM: the job stops at its next progress or phase
            status = job.run()
    except ProjectFailed as exc:
        status, code, detail = "failed", exc.code, exc.detail_path
    except measures_step.MeasuresFailed as exc:
        status, code = "failed", exc.code
    except ObjectCorrupt as exc:  # nothing was replaced: the tables and charts stay as they were
        status, code = "failed", ErrorCode.OBJECT_CORRUPT.value
        detail = write_detail(job.ws, f"OBJECT_CORRUPT: the index object {exc.path} does not match its "
                                      f"sha256, so the documents cannot be trusted. {REPAIR_HINT}.")
    except StoreError as exc:
        status, code = "failed", exc.code
    except cancel.Cancelled:
        status, code = "cancelled", ErrorCode.CANCELLED.value
    except sqlite3.Error as exc:  # a garbage index.sqlite is INDEX_CORRUPT, as the index tasks say
        status, code = "failed", sqlite_failure(exc)
    except OSError as exc:
        status, code = "failed", write_error_code(exc).value
        detail = os_error_detail(job.ws, exc)
    links = job.links  # every client_links row, measurements too (as a skipped run counts them)
    if job.projection is not None:
        projectwarn.projected(spec, job.projection, job.measures, job.stale_overrides, emit, moved=job.moved)
    elif status == "skipped" and job.skipped_meta:  # what stays true is said every night
        projectwarn.stored(spec, job.skipped_meta, emit,
                           AccountFiles(job.ws.canonical / MEASURES_SOURCE, MEASURES_ACCOUNT).rejects)
    m = job.measures
    kept = job.skipped_meta if status == "skipped" else {}
    emit(TaskFinished(
        task_id=spec.task_id, stage="project", extractor=ex.name, account=ex.account,
        status=status, attempt=spec.attempt, records=links,  # type: ignore[arg-type]
        rejects=m.not_scored if m is not None else projectwarn.count(kept.get("measures_not_scored")),
        duplicates=m.duplicates if m is not None else projectwarn.count(kept.get("measures_duplicates")),
        bytes=job.stats.bytes, uncompressed_bytes=job.stats.bytes,
        duration_s=round(time.monotonic() - started, 3), error_code=code, detail_path=detail,
    ))
    return 0 if status in ("success", "skipped") else 1

