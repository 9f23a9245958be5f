"""What the dashboard's helper modules may use of the app, as a Protocol.

``actions``, ``runcontrol``, ``runtoasts``, ``watch`` and the screens take a :class:`Host` instead of importing
``lorch_tui.app``: the app imports them, never the other way round, so there is no import
cycle (not even one hidden behind ``TYPE_CHECKING``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from engine.config.load import LoadedConfig
from engine.store.workspace import Workspace
from lorch_tui.engine_face import EngineFace
from lorch_tui.model import RunModel

if TYPE_CHECKING:
    from textual.widget import Widget


class Host(Protocol):
    """The dashboard app as its helpers see it (a subset of ``textual.app.App``)."""

    loaded: LoadedConfig
    ws: Workspace
    engine: EngineFace
    title: str
    model: RunModel
    selected: str | None
    runs_said: set[str]
    """Runs whose unsuccessful end a toast already said (each is said once)."""

    @property
    def focused(self) -> Widget | None:
        """The focused widget."""

    def query_one(self, selector: Any, expect_type: Any = ...) -> Any:
        """The one widget matching ``selector``."""

    def notify(self, message: str, *, title: str = ..., severity: Any = ..., timeout: float | None = ...,
               markup: bool = ...) -> None:
        """Show a toast."""

    def run_worker(self, work: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a coroutine or function as a worker."""

    def call_from_thread(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``callback`` on the event loop from a thread."""

    def push_screen(self, screen: Any, callback: Any = ..., wait_for_dismiss: bool = ...) -> Any:
        """Show a screen."""

    def exit(self, result: Any = ..., return_code: int = ..., message: Any = ...) -> None:
        """End the app with ``result``."""

    def flush(self) -> None:
        """Apply pending engine events and new log lines to the panes."""

    def request_scan(self) -> None:
        """Re-read the workspace in a thread."""

    def set_watch_state(self, text: str) -> None:
        """Say in the header whether live refresh works."""
