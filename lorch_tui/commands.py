"""The command palette's entries (ctrl+p): every action of the dashboard, by name.

Each entry calls the same action as its key, so the palette and the keys can never
disagree; the key is named in the help text so the palette also teaches the keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from textual.app import SystemCommand

# action, title, help (with the key), and the pane whose action it is (None: the app's)
ENTRIES: tuple[tuple[str, str, str, str | None], ...] = (
    ("run_all", "Run everything", "every stage for the default job: stages.extract.job, or every account (R)", None),
    ("run_stage('all')", "Rerun the selected account", "extract, canonize and index it, then the project (r)", None),
    ("run_stage('extract')", "Extract the selected account", "run its tap into the vault (e)", None),
    ("run_stage('canonize')", "Canonize the selected account", "rebuild its canonical records (c)", None),
    ("run_stage('index')", "Index the selected account", "reload it into the index (i)", None),
    ("run_project", "Run the project stage", "clients and charts over every account (p)", None),
    ("cancel_task", "Cancel the selected task", "asks first (x)", None),
    ("cancel_run", "Cancel the whole run", "every task, asks first (X)", None),
    ("validate", "Validate", "check the config and the workspace (v)", None),
    ("filter", "Filter the focused pane", "accounts, or log lines (/)", None),
    ("cycle_sort", "Sort LATEST", "by the next column (s in LATEST)", "#latest"),
    ("cycle_sort", "Sort Stage progress", "by the next column (s in Stage progress)", "#progress"),
    ("search_log", "Find in the log", "a word; then n and N go to its next and previous line (f)", None),
    ("next_match(1)", "Log: next line with the word", "(n in the log)", "#log"),
    ("next_match(-1)", "Log: previous line with the word", "(N in the log)", "#log"),
    ("day(-1)", "Log: the previous day", "the day before's log file ([ in the log)", "#log"),
    ("day(1)", "Log: the next day", "back at today it follows the tail again (] in the log)", "#log"),
    ("history", "Run history", "past runs and their tasks (H)", None),
    ("zoom", "Maximise or restore the focused pane", "(z)", None),
    ("help", "Help: the keys", "(?)", None),
    ("quit_app", "Quit lorchestra", "asks first when a run is in progress (q)", None),
)


def palette_commands(app: Any) -> Iterator[SystemCommand]:
    """One palette entry per dashboard action."""
    for action, title, help_text, pane in ENTRIES:
        yield SystemCommand(title, help_text, _runner(app, action, pane))


def _runner(app: Any, action: str, pane: str | None) -> Any:
    async def run() -> None:
        await app.run_action(action, app.query_one(pane) if pane is not None else None)

    return run
