"""The end-of-run summary table: records, parts, bytes, ratio and duration per task."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from engine.runner import RunResult


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def print_summary(console: Console, result: RunResult, log_path: str) -> None:
    """Print one row per task and a totals line."""
    table = Table(title="lorchestra run summary", title_justify="left")
    for col, just in (("task", "left"), ("status", "left"), ("records", "right"), ("parts", "right"),
                      ("bytes", "right"), ("ratio", "right"), ("duration", "right"), ("error", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for f in sorted(result.finished.values(), key=lambda f: f.task_id):
        ratio = f"{f.uncompressed_bytes / f.bytes:.1f}x" if f.bytes else "-"
        style = "green" if f.status in ("success", "skipped") else "red"
        table.add_row(f.task_id, f"[{style}]{f.status}[/]", f"{f.records:,}", str(f.parts),
                      human_bytes(f.bytes), ratio, f"{f.duration_s:.1f}s", f.error_code or "")
    console.print(table)
    s = result.summary
    if s is not None:
        console.print(f"{s.status}: {s.succeeded}/{s.tasks} tasks ok, {s.failed} failed, "
                      f"{s.cancelled} cancelled, {s.records:,} records in {s.duration_s:.1f}s; "
                      f"log: {log_path}", highlight=False)
