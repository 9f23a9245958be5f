"""The end of a headless run: a summary table on a terminal, one summary line otherwise.

On a terminal a table (records, parts, bytes, ratio and duration per task) precedes the
summary line; in plain mode (cron, pipes) the per-task lines were already printed as tasks
ended, so the run ends with exactly one summary line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.store.history import counted_stage, records_said

if TYPE_CHECKING:
    from engine.run.runner import RunResult


def human_bytes(n: int, compact: bool = False) -> str:
    """1536 -> '1.5 KiB' (or '1.5K' when ``compact``, for narrow panes)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            if compact:
                return f"{size:.0f}B" if unit == "B" else f"{size:.1f}{unit[0]}"
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


LEAVE_OUT = ("ratio", "parts", "bytes", "duration")
"""Columns the summary leaves out, in this order, on a terminal too narrow for all: the
others (names, status, counts, error code) are never cut (`3,…` and `re…` at 100 columns)."""


def print_summary(console: Console, result: RunResult, log_path: str, log_next: str | None = None) -> None:
    """Print one row per task and a totals line."""
    done = sorted(result.finished.values(), key=lambda f: f.task_id)
    rejects = any(f.rejects for f in done)  # a column only when some task rejected records
    columns = ["task", "status", "records", *(("rejected",) if rejects else ()), "parts", "bytes", "ratio",
               "duration", "error"]
    rows = [{"task": f.task_id, "status": f.status, "records": f"{f.records:,}",
             "rejected": f"{f.rejects:,}" if f.rejects else "", "parts": str(f.parts),
             "bytes": human_bytes(f.bytes), "ratio": f"{f.uncompressed_bytes / f.bytes:.1f}x" if f.bytes else "-",
             "duration": f"{f.duration_s:.1f}s", "error": f.error_code or ""} for f in done]
    width = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    left_out: list[str] = []
    empty_error = not any(r["error"] for r in rows)  # nothing failed: the column says nothing
    for col in (*LEAVE_OUT, *(("error",) if empty_error else ())):  # 3 a column (padding, rule) and 1
        if sum(width[c] + 3 for c in columns) + 1 <= console.width:
            break
        columns.remove(col)
        left_out.append(col)
    table = Table(title="lorchestra run summary", title_justify="left")
    right = {c: c not in ("task", "status", "error") for c in columns}
    for c in columns:
        table.add_column(c, justify="right" if right[c] else "left", no_wrap=True, min_width=width[c],
                         overflow="ignore")
    for f, r in zip(done, rows, strict=True):
        style = "green" if f.status in ("success", "skipped") else "red"
        table.add_row(*(Text(r[c], style=style if c == "status" else "yellow" if c == "rejected" else "",
                             justify="right" if right[c] else "left") for c in columns))
    needed = sum(width[c] + 3 for c in columns) + 1
    # still too wide: laid out at its own width (rich would squeeze columns to nothing) and
    # wrapped by the terminal, nothing cut
    narrow = console.width
    console.width = max(narrow, needed)
    try:
        console.print(table, crop=False)
    finally:
        console.width = narrow
    if left_out:
        console.print(f"(left out at this width: {', '.join(left_out)})", style="dim", highlight=False, markup=False)
    line = summary_line(result, log_path, log_next)
    if line is not None:
        console.print(line, highlight=False, markup=False)


def summary_line(result: RunResult, log_path: str, log_next: str | None = None) -> str | None:
    """The run's one-line outcome with the log path (the last line cron mails show)."""
    s = result.summary
    if s is None:
        return None
    targets = sorted({f.target for f in result.finished.values() if f.target})
    piped = (f"; records went to loader {', '.join(targets)}: vault and LATEST not touched"
             if targets else "")
    rejected = sum(f.rejects for f in result.finished.values() if f.stage == "canonize")
    dropped = f", {rejected:,} rejected by canonize (not indexed)" if rejected else ""
    return (f"run {s.run_id} {s.status}: {s.succeeded}/{s.tasks} tasks ok, {s.failed} failed, "
            f"{s.cancelled} cancelled, {records_phrase(result)}{dropped} in {s.duration_s:.1f}s{piped}; "
            + (f"log: {log_path}" if os.path.isfile(log_path) else f"log: not written ({log_path}: see the warning above)")
            + (f" (after midnight UTC: {log_next})" if log_next else ""))


def records_phrase(result: RunResult) -> str:
    """`1,234 records` (extracted); without an extract, the records the run counted (its
    summary's ``records``, the same count the log, the history and `status` show):
    `120 records canonized`, `120 records indexed`, `12 links to clients`."""
    s = result.summary
    assert s is not None
    stages = result.stages or {f.stage for f in result.finished.values()}
    if counted_stage(stages) == "extract":
        return f"{s.records:,} record{'' if s.records == 1 else 's'}"
    return records_said(stages, s.records)
