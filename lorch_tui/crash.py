"""What the dashboard prints when it stops on an unhandled exception: never a local value.

Textual's own crash report is a rich traceback with every frame's local variables: a
record being shown, a client's name, the config with its extractors' ``env`` values (API
tokens). The dashboard prints one line naming the exception type instead, like every
``lorchestra`` command (``lorch_tui.cli.guarded``); with ``--verbose`` the traceback,
without locals.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segments
from rich.text import Text
from rich.traceback import Traceback


def crash_report(app: Any, exc: BaseException | None, verbose: bool) -> None:
    """Queue the exit message for ``exc`` on ``app`` (a Textual App) and close it."""
    app.bell()
    name = type(exc).__name__ if exc is not None else "error"
    if verbose and exc is not None:
        shown: Any = Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=False,
                                              width=None)
    else:
        shown = Text(f"lorch-tui: internal error ({name}); rerun with --verbose for the traceback "
                     "(it never shows local values). Nothing of the workspace was lost: runs and "
                     "LATEST move only when complete.")
    app._exit_renderables.append(Segments(app.console.render(shown, app.console.options)))
    app._close_messages_no_wait()
