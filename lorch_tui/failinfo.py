"""Where a task's details are: the tap's stderr file and the diagnostics file, as paths.

Shared by the dashboard's task detail view and the headless faces, so both name the same
files. Only paths and counts: the files themselves may hold PHI and are never read here.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import Extractor
from engine.events import TaskFinished
from engine.store.workspace import Workspace


def stderr_path(ws: Workspace, ex: Extractor | None, ev: TaskFinished | None) -> Path | None:
    """The tap's stderr file of an extract task that wrote a vault run folder."""
    if ex is None or ev is None or ev.stage != "extract" or not ev.vault_run:
        return None
    return ws.vault / ex.domain / ex.source / ex.account / ev.vault_run / "tap.stderr.log"


def detail_file(ws: Workspace, ev: TaskFinished | None) -> Path | None:
    """The diagnostics (or rejects) file the task's final event names."""
    if ev is None or not ev.detail_path:
        return None
    p = Path(ev.detail_path)
    return p if p.is_absolute() else ws.root / p


def failure_tail(ws: Workspace, extractors: list[Extractor], ev: TaskFinished) -> str:
    """`; exit 3; tap stderr (12 lines): PATH; diagnostics: PATH` for a task that did not succeed."""
    if ev.status in ("success", "skipped"):
        return ""
    bits: list[str] = []
    if ev.exit_code is not None:
        bits.append(f"killed by signal {-ev.exit_code}" if ev.exit_code < 0 else f"exit {ev.exit_code}")
    ex = next((e for e in extractors if e.name == ev.extractor), None)
    err = stderr_path(ws, ex, ev)
    if err is not None and ev.stderr_lines:
        bits.append(f"tap stderr ({ev.stderr_lines} line{'s' if ev.stderr_lines != 1 else ''}): {err}")
    detail = detail_file(ws, ev)
    if detail is not None:
        bits.append(f"diagnostics: {detail}")
    return "".join(f"; {b}" for b in bits)
