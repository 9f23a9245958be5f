"""Fan-out of events from the engine to its subscribers (faces, log, state database).

Subscribers are plain callables; one that raises is reported once on stderr by class name
and detached, so a broken face never stops a pipeline run. Async faces (the dashboard)
read through :meth:`EventBus.queue`, which they drain in batches.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from engine.events import Event

Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out of validated events."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def queue(self) -> asyncio.Queue[Event]:
        """A queue that receives every later event (for async readers)."""
        q: asyncio.Queue[Event] = asyncio.Queue()
        self.subscribe(q.put_nowait)
        return q

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber, in subscription order."""
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception as exc:  # a face must never stop the pipeline
                self._subscribers.remove(callback)
                print(f"lorchestra: an event subscriber failed ({type(exc).__name__}) and was detached",
                      file=sys.stderr)
