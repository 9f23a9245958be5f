"""The task detail view (``enter`` in Stage progress): why a task ended the way it did.

It shows what the events say (state, error code and its meaning, exit code, attempts,
durations, counts) and where the detail lives: the tap's ``tap.stderr.log`` in the vault run
folder and the diagnostics or rejects file a worker named. Their content may be PHI, so it is
never shown here: ``l`` and ``d`` ask the app to open the file in ``$PAGER`` (the dashboard
suspends while the pager runs).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from engine.config import Extractor
from engine.store.workspace import Workspace
from lorch_tui.errorinfo import meaning
from lorch_tui.failinfo import detail_file, exit_text, not_found_hint, running_stderr, stderr_path
from lorch_tui.model import TaskRow
from lorch_tui.summary import human_bytes
from lorch_tui.widgets.progress import STATE_STYLE


def describe(row: TaskRow, stderr: Path | None, detail: Path | None, hint: str | None = None) -> Text:
    """Every field of the detail view, one per line (PHI-free)."""
    t = Text()
    t.append(f"{row.task_id}\n\n", style="bold")

    def field(name: str, value: str | Text, style: str = "") -> None:
        t.append(f"{name:>14}  ", style="bold cyan")
        t.append(value if isinstance(value, Text) else Text(value, style=style))
        t.append("\n")

    field("state", row.state, STATE_STYLE.get(row.state, ""))
    if row.error_code:
        field("error", row.error_code, "bold red")
        field("meaning", meaning(row.error_code))
        if hint:
            field("what to do", hint)
    last = row.last
    if last is not None and last.exit_code is not None:
        how = str(last.exit_code) if last.exit_code >= 0 else exit_text(row.error_code, last.exit_code, row.stage)
        field("exit code", how, "red" if last.exit_code else "")
    field("attempts", str(row.attempt or (last.attempt if last else 0)))
    if row.pid:
        field("worker pid", str(row.pid))
    field("elapsed", f"{row.elapsed:.1f}s" if row.started is not None else "not started")
    if last is not None:
        field("duration", f"{last.duration_s:.1f}s (last attempt)"
              + (f", cpu {last.cpu_s:.1f}s" if last.cpu_s is not None else ""))
        field("records", f"{last.records:,}")
        field("parts", f"{last.parts:,} ({human_bytes(last.bytes)})")
        if last.line:
            field("at line", str(last.line))
        for name in ("rejects", "duplicates", "unmapped", "stderr_lines"):
            n = getattr(last, name)
            if n:
                field(name.replace("_", " "), f"{n:,}")
        if last.vault_run:
            field("vault run", last.vault_run + ("  (LATEST moved)" if last.latest_moved else ""))
    else:
        field("records", f"{row.records:,} so far")
    for code, count in sorted(row.warnings.items()):  # each code with its count and meaning
        field("warning", f"{code} ({count:,}): {meaning(code)}", "yellow")
    t.append("\n")
    field("tap stderr", str(stderr) if stderr else "-", "" if stderr else "dim")
    field("diagnostics", str(detail) if detail else "-", "" if detail else "dim")
    if stderr or detail:
        t.append("\nThese files may hold PHI: they open only on request, in $PAGER "
                 f"({'l' if stderr else ''}{', ' if stderr and detail else ''}{'d' if detail else ''}).",
                 style="dim")
    return t


class TaskDetailScreen(ModalScreen[None]):
    """One task's outcome and where its details are."""

    BINDINGS = [
        Binding("escape,q,enter", "close", "close"),
        Binding("l", "open('stderr')", "tap stderr in $PAGER"),
        Binding("d", "open('detail')", "diagnostics in $PAGER"),
    ]

    class OpenFile(Message):
        """The user asked to read a file (possibly PHI) in $PAGER."""

        def __init__(self, path: Path | None, what: str) -> None:
            super().__init__()
            self.path, self.what = path, what

    def __init__(self, row: TaskRow, ws: Workspace, ex: Extractor | None) -> None:
        super().__init__()
        self.row = row
        self.stderr = stderr_path(ws, ex, row.last) or (
            running_stderr(ws, ex) if row.stage == "extract" and row.state in ("running", "retrying") else None)
        self.detail = detail_file(ws, row.last)
        self.hint = not_found_hint(ex) if row.error_code == "TAP_NOT_FOUND" else None

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box", id="task-detail-box"):
            yield Label(Text("Task detail", style="bold"))
            with VerticalScroll():
                yield Static(describe(self.row, self.stderr, self.detail, self.hint), id="task-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # up/down/page keys scroll a detail taller than the screen

    def action_open(self, which: str) -> None:
        path = self.stderr if which == "stderr" else self.detail
        what = "the tap's stderr" if which == "stderr" else "the diagnostics file"
        self.post_message(self.OpenFile(path, what))

    def action_close(self) -> None:
        self.dismiss(None)
