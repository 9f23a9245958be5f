"""The JSON-lines pipeline log: one event per line in ``logs/pipeline-YYYY-MM-DD.log``.

Events are PHI-free, so the log is too; it is still created 0600 inside the workspace.
Lines are appended and flushed per event so that another process (the dashboard of a
second user session, ``tail -f``) sees them at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from engine.events import Event, TaskFinished, TaskRetry, TaskWarning, is_disk_full
from engine.fsutil import ensure_dir, open_private


def level_of(event: Event) -> str:
    """The log level of an event: error for failures, warning for warnings and retries."""
    if isinstance(event, TaskFinished):
        return "error" if event.status in ("failed", "timeout") else "info"
    if isinstance(event, TaskWarning | TaskRetry):
        return "warning"
    if getattr(event, "status", None) == "failed":
        return "error"
    return "info"


def log_path(logs_dir: Path, when: datetime | None = None) -> Path:
    """The log file for a day (UTC)."""
    day = (when or datetime.now(UTC)).strftime("%Y-%m-%d")
    return logs_dir / f"pipeline-{day}.log"


class JsonLogSink:
    """An event subscriber that appends JSON lines to the day's log file."""

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = ensure_dir(logs_dir)
        self._path: Path | None = None
        self._fh: IO[Any] | None = None
        self.disk_full = False
        """Set when a line could not be written for lack of space (the face reports DISK_FULL
        once at the end; later events are tried again, a torn line is closed first)."""

    def __call__(self, event: Event) -> None:
        try:
            self._write(event)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.disk_full = True
            self._drop()

    def _write(self, event: Event) -> None:
        path = log_path(self.logs_dir)
        if path != self._path or self._fh is None:
            self.close()
            self._fh = open_private(path, "ab")
            self._path = path
            if _ends_mid_line(path):  # a writer killed mid-line: keep every later line whole
                self._fh.write(b"\n")
        assert self._fh is not None
        record = {"level": level_of(event), **event.model_dump(mode="json", exclude_none=True)}
        self._fh.write(orjson.dumps(record) + b"\n")
        self._fh.flush()

    @property
    def path(self) -> Path:
        """The file currently written (today's)."""
        return self._path or log_path(self.logs_dir)

    def close(self) -> None:
        """Close the open file (a full disk while flushing only sets ``disk_full``)."""
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                self.disk_full = True
            finally:
                self._fh = None

    def _drop(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass  # its buffered bytes are lost; the next open ends the torn line


def _ends_mid_line(path: Path) -> bool:
    """Whether the file's last byte is not a newline (a process died while appending)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            if fh.tell() == 0:
                return False
            fh.seek(-1, 2)
            return fh.read(1) != b"\n"
    except OSError:
        return False
