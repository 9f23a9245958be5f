"""``lorchestra status``: the last run, its stages, and how fresh each account is.

The answer to "did last night's cron run work, and is everything up to date?" without
opening the dashboard or reading logs. It reads only PHI-free things (the run history in
``state/lorch.sqlite``, ``LATEST.json`` pointers, canonical provenance and the index's
accounts table) and never writes: it takes no lock and creates nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.padding import Padding
from rich.table import Table

from engine.config.cross import RESERVED_SOURCES
from engine.config.load import LoadedConfig, load
from engine.errors import ExitCode
from engine.index.store import (
    INDEX_CORRUPT,
    INDEX_UNREADABLE,
    UNREADABLE_HINT,
    StoreError,
    db_path,
    open_reader,
)
from engine.ops.cleanup import partial_targets
from engine.ops.inspect import AccountView, account_views, missing_charts
from engine.store import history as run_history
from engine.store.workspace import Workspace, check_not_a_file
from engine.vault.layout import read_latest
from lorch_tui.scan import client_counts, index_shas, lock_holder
from lorch_tui.summary import human_bytes
from lorch_tui.tables import say_left_out, whole_table


def log_path_of(ws: Workspace, run: dict[str, Any]) -> str:
    """The JSON log a run started in (the UTC day of its start)."""
    return str(ws.logs / f"pipeline-{str(run['started_at'])[:10]}.log")


def account_rows(loaded: LoadedConfig, ws: Workspace, *, index_state: str | None = None) -> list[dict[str, Any]]:
    """Freshness of every configured account (PHI-free: ids, run ids, counts, ages);
    ``index_state`` (``corrupt``, ``unreadable``) stands for every account's index column."""
    shas = index_shas(ws) if ws.root.is_dir() else None
    stale_after = loaded.config.stale_after_hours
    rows = [_account_row(v, shas, stale_after) for v in account_views(loaded.config, ws, shas)]
    if index_state:
        for row in rows:
            row["index"] = index_state
    return rows


def index_problem(ws: Workspace) -> dict[str, str] | None:
    """A problem entry when the index file exists but is damaged (never for a missing one)."""
    path = db_path(ws)
    if not path.is_file():
        return None
    try:
        open_reader(ws).close()
    except StoreError as exc:
        if exc.code == INDEX_UNREADABLE:
            return {"code": INDEX_UNREADABLE, "path": str(path),
                    "message": f"the index {exc}: it is there, and may be whole",
                    "hint": UNREADABLE_HINT}
        if exc.code == INDEX_CORRUPT:
            return {"code": INDEX_CORRUPT, "path": str(path),
                    "message": f"the index {path} is damaged (not a readable SQLite database)",
                    "hint": f"move {ws.vector_store} aside (mv {ws.vector_store} {ws.vector_store}.damaged) "
                            "and rebuild it with `lorchestra run --stage index --force`"}
    return None


def _account_row(v: AccountView, shas: dict[tuple[str, str], str] | None, stale_after: float) -> dict[str, Any]:
    ex = v.extractor
    if v.canonical_current is None:
        canonical = "missing"
    else:
        canonical = "current" if v.canonical_current else "outdated"
    if shas is None:
        index = "unknown"
    elif (ex.source, ex.account) not in shas:
        index = "missing"
    else:
        index = "current" if v.index_current else "outdated"
    age_h = None if v.latest_age_s is None else round(v.latest_age_s / 3600, 2)
    return {"extractor": ex.name, "domain": ex.domain, "source": ex.source, "account": ex.account,
            "latest_run": v.latest_run, "latest_records": v.latest_records, "latest_age_hours": age_h,
            "stale": v.stale(stale_after), "canonical": canonical,
            "canonical_records": v.canonical_records, "canonical_rejects": v.canonical_rejects,
            "index": index}


def gather(loaded: LoadedConfig, history_n: int) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready document."""
    ws = Workspace(loaded.workspace)
    db = ws.state_db
    problems: list[dict[str, str]] = []
    last_doc: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    try:
        last = run_history.last_run(db)
        if last is not None:
            tasks = run_history.task_rows(db, str(last["run_id"]))
            last_doc = {**last, "log_path": log_path_of(ws, last),
                        "stage_summary": run_history.stage_rows(db, str(last["run_id"])),
                        "failed_tasks": [t for t in tasks if t["status"] in ("failed", "timeout")]}
        runs = run_history.history(db, history_n) if history_n else []
        if last_doc is not None and last_doc["status"] == "running" and lock_holder(ws) is None:
            # no live process holds the workspace: the run's process was killed (SIGKILL, a
            # crash) before it recorded its end; it stayed "running" for good in `status`
            last_doc = run_history.as_abandoned(db, last_doc)
            runs = [run_history.as_abandoned(db, r) if r.get("run_id") == last_doc["run_id"]
                    and r.get("status") == "running" else r for r in runs]
        # what `records` counts: extract, or (a run without one) index, canonize or project
        last_doc = None if last_doc is None else counted(last_doc)
        runs = [counted(r) for r in runs]
    except run_history.HistoryCorrupt as bad:
        code = "STATE_DB_UNREADABLE" if isinstance(bad, run_history.HistoryUnreadable) else "STATE_DB_CORRUPT"
        problems.append({"code": code, "path": str(db), "message": str(bad), "hint": bad.hint})
    index_bad = index_problem(ws)
    if index_bad is not None:
        problems.append(index_bad)
    cfg = loaded.config
    problems += latest_problems(loaded, ws)
    return {
        "problems": problems,
        "pipeline": {"name": cfg.pipeline.name, "version": cfg.pipeline.version},
        "config": str(loaded.path), "config_origin": loaded.origin,
        "workspace": str(ws.root), "workspace_exists": ws.root.is_dir(), "state_db": str(db),
        "stale_after_hours": cfg.stale_after_hours,
        "last_run": last_doc,
        "history": runs,
        "accounts": account_rows(loaded, ws, index_state=None if index_bad is None else
                                 "unreadable" if index_bad["code"] == INDEX_UNREADABLE else "corrupt"),
        "unconfigured": unconfigured_accounts(loaded, ws),
        "clients": _clients(ws) if cfg.clients is not None else None,
        # unfinished run folders a killed extract left (PHI that no stage reads); a run in
        # progress writes one too, so they are counted only while no process holds the lock
        "partials": len(partial_targets(ws)) if ws.vault.is_dir() and lock_holder(ws) is None else 0,
    }


def _clients(ws: Workspace) -> dict[str, int] | None:
    """The client layer's counts, with ``charts_missing``: clients without a chart folder
    (counted only when no run holds the lock: a projection swaps folders one at a time)."""
    counts = client_counts(ws)
    if counts is None:
        return None
    missing = missing_charts(ws) if lock_holder(ws) is None else None
    return {**counts, "charts_missing": missing or 0}


def counted(run: dict[str, Any]) -> dict[str, Any]:
    """A run row with ``records_stage``: the stage whose tasks' records ``records`` sums."""
    return {**run, "records_stage": run_history.counted_stage(run.get("stages"))}


def latest_problems(loaded: LoadedConfig, ws: Workspace) -> list[dict[str, str]]:
    """A problem entry per account whose LATEST.json exists but does not read as a pointer
    (it was shown as "no LATEST" and the account as never extracted)."""
    out = []
    for ex in loaded.config.extractors:
        path = ws.account_dir(ex.domain, ex.source, ex.account) / "LATEST.json"
        if not path.exists():
            continue
        try:
            latest = read_latest(path.parent)
        except (OSError, ValueError):
            out.append({"code": "LATEST_INVALID", "path": str(path),
                        "message": f"{ex.name}: {path} does not read as a LATEST pointer",
                        "hint": "run `lorchestra verify` to check the account's runs; the next successful "
                                f"`lorchestra extract {ex.name}` writes a new LATEST"})
            continue
        run = path.parent / f"dt={latest['dt']}" / f"run_id={latest['run_id']}" if latest else None
        if run is not None and not run.is_dir():  # status said nothing; canonize then fails
            out.append({"code": "RUN_MISSING", "path": str(run),
                        "message": f"{ex.name}: {path} names a run folder that does not exist ({run.name})",
                        "hint": "restore the run folder from a backup, or run `lorchestra extract "
                                f"{ex.name}`: its next successful run writes a new LATEST"})
    return out


def unconfigured_accounts(loaded: LoadedConfig, ws: Workspace) -> list[str]:
    """``source/account`` of the index's accounts that no extractor of the config names (an
    extractor removed from the config): left out of the charts, still in the index."""
    shas = index_shas(ws) if ws.root.is_dir() else None
    configured = {(e.source, e.account) for e in loaded.config.extractors}
    return sorted(f"{s}/{a}" for s, a in (shas or {}) if (s, a) not in configured and s not in RESERVED_SOURCES)


UNCONFIGURED_HINT = ("their documents are left out of the charts but still in the index (`query` finds "
                     "them); to remove them: `lorchestra clean --stage index`, then `lorchestra run --stage "
                     "index` rebuilds the index from this config's accounts")


def cmd_status(ns: argparse.Namespace) -> int:
    """`lorchestra status [--history N] [--json]`."""
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    check_not_a_file(loaded.workspace)
    doc = gather(loaded, ns.history)
    code = int(ExitCode.TASK_FAILED if doc["problems"] else ExitCode.OK)
    if ns.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return code
    console = Console(highlight=False)
    print_status(console, doc)
    return code


def _dur(seconds: Any) -> str:
    return "-" if seconds is None else f"{float(seconds):.1f}s"


def _style(status: str) -> str:
    return {"success": "green", "failed": "red", "running": "yellow"}.get(status, "yellow")


def print_status(console: Console, doc: dict[str, Any]) -> None:
    """The human view of :func:`gather`'s document."""
    p = doc["pipeline"]
    console.print(f"pipeline: {p['name']} {p['version']}")
    console.print(f"config: {doc['config']} ({doc['config_origin']})")
    console.print(f"workspace: {doc['workspace']}" + ("" if doc["workspace_exists"] else " (does not exist yet)"))
    for problem in doc["problems"]:
        console.print(f"[red]{problem['code']}[/]: ", end="")
        console.print(f"{problem['message']}\n  fix: {problem['hint']}", markup=False)
    run = doc["last_run"]
    if any(p["code"] in ("STATE_DB_CORRUPT", "STATE_DB_UNREADABLE") for p in doc["problems"]):
        console.print("last run: unknown (the run history could not be read, see above)")
    elif run is None:
        console.print("last run: none recorded yet (run `lorchestra run` or `lorch-tui --no-ui`)")
    else:
        console.print(f"last run: {run['run_id']} ({run['trigger']}) [{_style(run['status'])}]{run['status']}[/], "
                      f"started {run['started_at']}, duration {_dur(run['duration_s'])}")
        if run["status"] == "abandoned":
            console.print("  its process ended without recording the end (killed, or the machine went down); "
                          "the next run records it as abandoned and does what it left undone: run "
                          "`lorchestra run` (or wait for the next scheduled one)", markup=False)
        if run["status"] == "running":  # the run's totals are written when it ends: count its tasks so far
            done = run["stage_summary"]
            console.print(f"  tasks so far: {sum(int(x['succeeded'] or 0) for x in done)} ok, "
                          f"{sum(int(x['failed'] or 0) for x in done)} failed (the run goes on; its totals "
                          "are written when it ends)", markup=False)
        else:
            console.print(f"  tasks: {run['succeeded']}/{run['tasks']} ok, {run['failed']} failed, "
                          f"{run['cancelled']} cancelled; {run_history.records_said(run['stages'], run['records'])}")
        table = Table(box=None, pad_edge=False, show_edge=False)
        for col, just in (("stage", "left"), ("tasks", "right"), ("ok", "right"), ("failed", "right"),
                          ("records", "right"), ("bytes", "right"), ("duration", "right")):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for s in run["stage_summary"]:
            table.add_row(s["stage"], str(s["tasks"]), str(s["succeeded"]), str(s["failed"]),
                          f"{s['records'] or 0:,}", human_bytes(int(s["bytes"] or 0)), _dur(s["duration_s"]))
        console.print(Padding(table, (0, 0, 0, 2), expand=False))
        for t in run["failed_tasks"]:
            console.print(f"  [red]{t['task_id']}[/] {t['status']} {t['error_code'] or ''} "
                          f"(attempt {t['attempt']})")
        console.print(f"  log: {run['log_path']}")
    console.print(f"accounts (LATEST is stale after {doc['stale_after_hours']:g}h):")
    plain, shown = [], []
    for a in doc["accounts"]:
        records = "-" if a["latest_records"] is None else f"{a['latest_records']:,}"
        rejected = f" ({a['canonical_rejects']:,} rejected)" if a["canonical_rejects"] else ""
        fresh = "stale" if a["stale"] else "fresh"
        cells = [a["extractor"], a["latest_run"] or "-", records, _age(a["latest_age_hours"]), fresh]
        plain.append([*cells, a["canonical"] + rejected, a["index"]])
        shown.append([*cells[:4], f"[{'red' if a['stale'] else 'green'}]{fresh}[/]",
                      _mark(a["canonical"]) + (f" [yellow]{rejected.strip()}[/]" if rejected else ""),
                      _mark(a["index"])])
    acc, left_out = whole_table(ACCOUNT_COLUMNS, plain, shown, console.width - 2,
                                drop=("LATEST run", "age", "records"), right=("records", "age"))
    console.print(Padding(acc, (0, 0, 0, 2), expand=False))
    say_left_out(console, left_out)
    if doc["unconfigured"]:
        console.print(f"[yellow]index: {len(doc['unconfigured'])} account(s) no extractor of this config names:[/] "
                      + ", ".join(doc["unconfigured"]), highlight=False)
        console.print(f"  {UNCONFIGURED_HINT}", markup=False)
    c = doc.get("clients")
    if c is not None:
        console.print(f"clients: {c['clients']:,} clients, {c['links']:,} links, {c['conflicts']:,} open "
                      f"conflicts, {c['unlinked']:,} unlinked documents (`lorchestra clients`)")
        if not c.get("charts_complete", 1):
            console.print("[yellow]charts: incomplete[/]: the chart folders are being written, or the last "
                          "projection stopped while writing them (each folder is whole, but some may be "
                          "the previous run's and clients that are gone may still have one); the next run "
                          "completes them (`lorchestra run --stage project`)", highlight=False)
        elif c.get("charts_missing"):
            console.print(f"[yellow]charts: {c['charts_missing']:,} client(s) without a chart folder[/] "
                          "(removed by hand, or left out of a restore): the next run writes them again "
                          "(`lorchestra run --stage project`)", highlight=False)
        if c.get("moves_open"):
            console.print(f"[yellow]links moved: {c['moves_open']:,} document(s) went to another client's "
                          "chart than before[/], not reviewed yet (LINKS_MOVED): `lorchestra clients moved`",
                          highlight=False)
        if c.get("measures_scored") or c.get("measures_not_scored"):
            console.print(f"measures: {c['measures_scored']:,} scored, {c['measures_not_scored']:,} "
                          "not scored (reasons: canonical/measures/scored.rejects.jsonl), "
                          f"{c.get('measures_duplicates', 0):,} duplicate copies "
                          "(canonical/measures/scored.duplicates.jsonl)")
    if doc.get("partials"):
        console.print(f"[yellow]vault: {doc['partials']} unfinished run folder(s)[/] left by extracts that "
                      "were killed (they hold PHI and no stage reads them): `lorchestra clean --partials`",
                      highlight=False)
    if doc["history"]:
        n = len(doc["history"])
        console.print(f"history (last {n} run{'' if n == 1 else 's'}):")
        plain = [[h["run_id"], h["trigger"], h["started_at"], h["status"], f"{h['succeeded']}/{h['tasks']}",
                  str(h["failed"]), run_history.records_cell(h), _dur(h["duration_s"])] for h in doc["history"]]
        shown = [[*r[:3], f"[{_style(r[3])}]{r[3]}[/]", *r[4:]] for r in plain]
        hist, left_out = whole_table(HISTORY_COLUMNS, plain, shown, console.width - 2,
                                     drop=("trigger", "failed", "duration", "started", "records"),
                                     right=("tasks ok", "failed", "records", "duration"))
        console.print(Padding(hist, (0, 0, 0, 2), expand=False))
        say_left_out(console, left_out)


ACCOUNT_COLUMNS = ("extractor", "LATEST run", "records", "age", "fresh", "canonical", "index")
HISTORY_COLUMNS = ("run", "trigger", "started", "status", "tasks ok", "failed", "records", "duration")


def _age(hours: float | None) -> str:
    if hours is None:
        return "-"
    if hours < 0:
        return f"in the future ({-hours:.1f}h: the clock was set back?)"
    if hours < 1:
        return f"{hours * 60:.0f}m"
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"


def _mark(value: str) -> str:
    colour = {"current": "green", "outdated": "yellow", "missing": "red", "corrupt": "red"}.get(value, "dim")
    return f"[{colour}]{value}[/]"

