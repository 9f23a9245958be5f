"""The command palette's entries (ctrl+p): every action of the dashboard, by name.

Each entry calls the same action as its key, so the palette and the keys can never
disagree; the key is named in the help text so the palette also teaches the keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from textual.app import SystemCommand

# action, title, help (with the key)
ENTRIES = (
    ("run_all", "Run everything", "every stage for the default job: stages.extract.job, or every account (R)"),
    ("run_stage('all')", "Rerun the selected account", "extract, canonize and index it (r)"),
    ("run_stage('extract')", "Extract the selected account", "run its tap into the vault (e)"),
    ("run_stage('canonize')", "Canonize the selected account", "rebuild its canonical records (c)"),
    ("run_stage('index')", "Index the selected account", "reload it into the index (i)"),
    ("cancel_task", "Cancel the selected task", "asks first (x)"),
    ("cancel_run", "Cancel the whole run", "every task, asks first (X)"),
    ("validate", "Validate", "check the config and the workspace (v)"),
    ("filter", "Filter the focused pane", "accounts, or log lines (/)"),
    ("history", "Run history", "past runs and their tasks (H)"),
    ("zoom", "Maximise or restore the focused pane", "(z)"),
    ("help", "Help: the keys", "(?)"),
    ("quit_app", "Quit lorchestra", "asks first when a run is in progress (q)"),
)


def palette_commands(app: Any) -> Iterator[SystemCommand]:
    """One palette entry per dashboard action."""
    for action, title, help_text in ENTRIES:
        yield SystemCommand(title, help_text, _runner(app, action))


def _runner(app: Any, action: str) -> Any:
    async def run() -> None:
        await app.run_action(action)

    return run
