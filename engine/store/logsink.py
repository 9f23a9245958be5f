"""The JSON-lines pipeline log: one event per line in ``logs/pipeline-YYYY-MM-DD.log``.

Events are PHI-free, so the log is too; it is still created 0600 inside the workspace.
Lines are appended and flushed per event so that another process (the dashboard of a
second user session, ``tail -f``) sees them at once, each whole or not at all.
"""

from __future__ import annotations

import errno
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from engine.events import Event, TaskFinished, TaskRetry, TaskWarning, is_disk_full
from engine.store.fsutil import FILE_MODE, ensure_dir


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

    Each line goes out in one ``write`` on an ``O_APPEND`` descriptor; if the disk fills
    mid-line the file is cut back to where the line began, so the log never holds a torn
    line. A line that cannot be written is dropped (counted in :attr:`dropped`, reported
    once on stderr) and later events are still tried: the run goes on.
    """

    def __init__(self, logs_dir: Path) -> None:
        self.logs_dir = ensure_dir(logs_dir)
        self._path: Path | None = None
        self.first_path: Path | None = None
        """The file the run's first event went to (a run that crosses midnight UTC goes on in
        the next day's file, :attr:`path`)."""
        self._fd: int | None = None
        self._check_tail = True
        self.dropped = 0
        self.disk_full = False
        """Set when a line could not be written for lack of space: the face then reports
        DISK_FULL once at the end (no warning here, so there is one message)."""

    def __call__(self, event: Event) -> None:
        record = {"level": level_of(event), **event.model_dump(mode="json", exclude_none=True)}
        try:
            self._append(orjson.dumps(record) + b"\n")
        except OSError as exc:
            self.dropped += 1
            if is_disk_full(exc):
                self.disk_full = True
            elif not self.disk_full and self.dropped == 1:
                print(f"lorchestra: warning: the JSON log cannot be written ({type(exc).__name__}); "
                      f"events are dropped until it can: {self.path}", file=sys.stderr)

    def _append(self, line: bytes) -> None:
        path = log_path(self.logs_dir)
        if path != self._path or self._fd is None:
            self.close()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            os.fchmod(self._fd, FILE_MODE)
            self._path = path
            self.first_path = self.first_path or path
            self._check_tail = True
        fd = self._fd
        before = os.fstat(fd).st_size
        if self._check_tail:
            self._check_tail = False
            if before and _ends_mid_line(path):  # a writer killed mid-line: keep every later line whole
                line = b"\n" + line
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, "short write")
        except OSError:
            self._check_tail = True
            try:
                os.ftruncate(fd, before)  # no torn line: cut back to where this line began
            except OSError:
                pass
            raise

    @property
    def path(self) -> Path:
        """The file currently written (today's)."""
        return self._path or log_path(self.logs_dir)

    def close(self) -> None:
        """Close the open file."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


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
