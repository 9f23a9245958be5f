"""Progress of an extract (into the vault or piped into a target): rate-limited events.

Shared by :mod:`engine.stages.extract` and :mod:`engine.stages.to_target`, so neither
imports the other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from engine.events import EventBase, TaskProgress
from engine.stages.spec import TaskSpec

Emit = Callable[[EventBase], None]
PROGRESS_EVERY_S = 0.25


class Counts(Protocol):
    """What progress reports: the vault writer, or the counter of a piped target run."""

    @property
    def records(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    @property
    def part_count(self) -> int: ...


class Progress:
    """Emits TaskProgress at most every PROGRESS_EVERY_S seconds.

    The reader calls :meth:`tick` as records flow; a heartbeat thread also reports every
    second when the count changed, so a slow or stalled tap still shows where it is.
    """

    def __init__(self, spec: TaskSpec, writer: Counts, emit: Emit) -> None:
        self.spec, self.writer, self.emit = spec, writer, emit
        self.last = 0.0
        self.reported = -1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(1.0):
            if self.writer.records != self.reported:
                self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or now - self.last >= PROGRESS_EVERY_S):
            return
        with self._lock:
            self.last = now
            self.reported = self.writer.records
            demo = self.spec.extractor.demo
            self.emit(TaskProgress(task_id=self.spec.task_id, stage="extract",
                                   extractor=self.spec.extractor.name, records=self.writer.records,
                                   bytes=self.writer.bytes, parts=self.writer.part_count,
                                   total=demo.records if demo is not None else None))

    def stop(self) -> None:
        """Stop the heartbeat and report the final count."""
        self._stop.set()
        self.tick(force=True)


def count_lines(path: Path) -> int:
    """Lines in a file, counted in chunks (the file may be huge); a last line without its
    newline counts too (a tap's ``fatal: token expired`` written without one was 0 lines, and
    the faces then named no stderr file): a file that is not empty has at least one."""
    n = 0
    last = b"\n"
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return 0
    return n if last == b"\n" else n + 1
