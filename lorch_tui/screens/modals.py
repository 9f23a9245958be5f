"""Modal screens: help, confirmation, filter input and the validate report.

Each is small and returns its answer with ``dismiss``; the app decides what to do.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

KEYS = (
    ("e", "extract the selected account"),
    ("c", "canonize the selected account"),
    ("i", "index the selected account"),
    ("p", "project: link every account's documents to clients, write the charts"),
    ("r", "rerun the whole chain for the selected account, then the project (all clients)"),
    ("R", "run everything: every stage for the default job (every account if none)"),
    ("x", "cancel the selected running task (asks first)"),
    ("X", "cancel the whole run (asks first)"),
    ("v", "validate the config and workspace"),
    ("/", "filter the focused pane (accounts: name, account, source or domain;"
          " log: level:error account:NAME words)"),
    ("s", "LATEST, Stage progress: sort by the next column (or click a header)"),
    ("f n N", "log: find a word, next match, previous match"),
    ("[ ]", "log: earlier day, later day (back to today follows the tail again)"),
    ("enter", "on a run: verify its checksums; in Stage progress: the task's detail"),
    ("l d", "task detail: open tap stderr / diagnostics file in $PAGER (may hold PHI)"),
    ("H", "run history: past runs and their tasks"),
    ("z", "maximise the focused pane, z again restores"),
    ("tab", "next pane"),
    ("ctrl+p", "command palette (every action)"),
    ("?", "this help"),
    ("q", "quit (asks if a run is in progress, then cancels it cleanly; ctrl+q too)"),
)


class HelpScreen(ModalScreen[None]):
    """The keys and what they do."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "close")]

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("lorchestra dashboard: keys\n\n", style="bold")
        for key, what in KEYS:
            text.append(f"  {key:>7}  ", style="bold cyan")
            text.append(what + "\n")
        text.append("\nSelection works from the vault tree and from the LATEST table alike.", style="dim")
        with Vertical(id="help-box", classes="modal-box"):
            with VerticalScroll():
                yield Static(text)
            yield Button("Close", id="help-close", variant="primary")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # up/down scroll the keys on a small terminal

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question."""

    BINDINGS = [Binding("escape,n", "answer(False)", "no"), Binding("y", "answer(True)", "yes")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Label(self.question, id="confirm-question")
            with Horizontal(classes="modal-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class FilterScreen(ModalScreen[str | None]):
    """Asks for the filter of the focused pane."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, pane: str, current: str, hint: str, *, title: str | None = None) -> None:
        super().__init__()
        self.pane, self.current, self.hint = pane, current, hint
        self.title_text = title or f"Filter the {pane} (empty clears)"

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal-box"):
            yield Label(self.title_text)
            yield Input(value=self.current, placeholder=self.hint, id="filter-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ValidateScreen(ModalScreen[None]):
    """Shows what `lorchestra validate` found."""

    BINDINGS = [Binding("escape,q,v", "close", "close")]

    def __init__(self, code: int | None, report: str) -> None:
        super().__init__()
        self.code, self.report = code, report

    def compose(self) -> ComposeResult:
        verdict = {0: ("all checks pass", "green"), 2: ("configuration problems", "red"),
                   4: ("permission problems", "red"), None: ("validating...", "yellow")}.get(
            self.code, (f"exit code {self.code}", "red"))
        with Vertical(classes="modal-box", id="validate-box"):
            yield Label(Text(f"validate: {verdict[0]}", style=f"bold {verdict[1]}"))
            with VerticalScroll():
                yield Static(Text(self.report), id="validate-report")
            yield Button("Close", id="validate-close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
