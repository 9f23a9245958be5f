"""The JSON-lines pipeline log: one event per line in ``logs/pipeline-YYYY-MM-DD.log``.

Events are PHI-free, so the log is too; it is still created 0600 inside the workspace.
Lines are appended and flushed per event so that another process (the dashboard of a
second user session, ``tail -f``) sees them at once.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson

from engine.events import Event, TaskFinished, TaskRetry, TaskWarning, is_disk_full
from engine.fsutil import FILE_MODE, ensure_dir


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
    """An event subscriber that appends JSON lines to the day's log file.

    Each line goes out in one ``write`` on an ``O_APPEND`` descriptor (no user-space
    buffer, so readers see it at once). When the disk is full, a line that could not be
    written whole is cut off again (``ftruncate`` to where it began), so the log only ever
    holds whole lines; ``disk_full`` is set and the face reports DISK_FULL once at the end.
    """

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = ensure_dir(logs_dir)
        self._path: Path | None = None
        self._fd: int | None = None
        self.disk_full = False
        """Set when a line could not be written for lack of space (later events are tried again)."""

    def __call__(self, event: Event) -> None:
        path = log_path(self.logs_dir)
        if path != self._path or self._fd is None:
            self.close()
            self._fd = _open_append(path)
            self._path = path
            if _ends_mid_line(path):  # a writer killed mid-line: keep every later line whole
                self._append(b"\n")
        record = {"level": level_of(event), **event.model_dump(mode="json", exclude_none=True)}
        self._append(orjson.dumps(record) + b"\n")

    def _append(self, line: bytes) -> None:
        assert self._fd is not None
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            done = os.write(self._fd, line)
            while done < len(line):
                done += os.write(self._fd, line[done:])
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.disk_full = True
            try:
                os.ftruncate(self._fd, start)  # never leave half a line behind
            except OSError:
                pass

    @property
    def path(self) -> Path:
        """The file currently written (today's)."""
        return self._path or log_path(self.logs_dir)

    def close(self) -> None:
        """Close the open file."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _open_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


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
