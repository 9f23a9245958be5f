"""The demo taps' stderr: a few human log lines, METRIC lines and, on purpose, PHI.

Real taps log record content when they fail or run verbose, so the engine must treat tap
stderr as PHI and keep it inside the workspace. The demo taps make that testable: their log
lines carry the canary patient (see ``canary.py``), and the stderr-flood fault writes many
megabytes of such lines to prove the engine drains stderr without blocking or leaking it.
"""

from __future__ import annotations

import sys
from typing import TextIO

import orjson

from engine.demo_taps.canary import CANARY_SENTENCE, canary_log_line

_FLOOD_CHUNK = 1 << 20


class TapLog:
    """Writes the tap's log lines to stderr (line-buffered text)."""

    def __init__(self, tap: str, stream: TextIO | None = None) -> None:
        self.tap = tap
        self.stream = stream if stream is not None else sys.stderr

    def info(self, message: str) -> None:
        """``INFO <message>``."""
        self.stream.write(f"INFO {message}\n")

    def error(self, message: str) -> None:
        """``ERROR <message>``."""
        self.stream.write(f"ERROR {message}\n")

    def phi(self) -> None:
        """The line that carries the canary patient."""
        self.stream.write(canary_log_line() + "\n")

    def metric(self, metric: str, value: int, stream: str) -> None:
        """A Singer SDK style ``METRIC:`` line."""
        body = {"type": "counter", "metric": metric, "value": value, "tags": {"stream": stream}}
        self.stream.write(f"INFO METRIC: {orjson.dumps(body).decode()}\n")

    def flood(self, nbytes: int) -> None:
        """Exactly ``nbytes`` of PHI-bearing log lines, written in 1 MiB chunks."""
        line = f"DEBUG retrying page for patient {CANARY_SENTENCE}\n".encode()
        chunk = line * (_FLOOD_CHUNK // len(line) + 1)
        self.stream.flush()
        raw = self.stream.buffer if hasattr(self.stream, "buffer") else None
        remaining = nbytes
        while remaining > 0:
            piece = chunk[: min(remaining, len(chunk))]
            if remaining <= len(chunk) and not piece.endswith(b"\n"):
                piece = piece[:-1] + b"\n"
            if raw is not None:
                raw.write(piece)
            else:
                self.stream.write(piece.decode())
            remaining -= len(piece)
        if raw is not None:
            raw.flush()

    def flush(self) -> None:
        """Flush stderr."""
        self.stream.flush()
