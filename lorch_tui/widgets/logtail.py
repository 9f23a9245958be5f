"""Log tail pane: follows today's ``logs/pipeline-*.log``, also when cron writes it.

The file is polled for new bytes on the app's flush tick (a cheap ``stat``), whole lines
are parsed (they are our own PHI-free events) and rendered readably: time, level colour,
event, task. Progress lines are folded away. A filter keeps lines by level, account and
free text; the last few thousand entries are kept so a filter change re-renders at once.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.highlighter import Highlighter
from rich.text import Text
from textual.widgets import Log

LEVELS = ("debug", "info", "warning", "error")
KEEP = 3000


@dataclass(frozen=True)
class Entry:
    """One rendered log line and what it can be filtered by."""

    level: str
    extractor: str
    text: str
    event: dict[str, Any]


def render(event: dict[str, Any]) -> str:
    """`10:02:11 INFO  task_finished extract:acct1 success 200 rec 0.5s`."""
    ts = str(event.get("ts", ""))[11:19]
    level = str(event.get("level", "info")).upper()
    kind = str(event.get("type", "?"))
    who = event.get("task_id") or event.get("run_id") or ""
    bits = [f"{ts} {level:<7} {kind:<13} {who}"]
    for key in ("status", "error_code", "code"):
        if event.get(key):
            bits.append(str(event[key]))
    if "records" in event and kind != "task_queued":
        bits.append(f"{event['records']:,} rec")
    if event.get("line"):
        bits.append(f"line {event['line']}")
    if "duration_s" in event:
        bits.append(f"{event['duration_s']:.1f}s")
    if kind == "task_retry":
        bits.append(f"retry in {event.get('delay_s')}s")
    return " ".join(bits)


def parse_filter(text: str) -> tuple[set[str], str, str]:
    """`level:error account:acct1 words` -> (levels, account, words)."""
    levels: set[str] = set()
    account, words = "", []
    for token in text.split():
        key, _, value = token.partition(":")
        if key == "level" and value:
            levels |= {lv for lv in LEVELS if lv.startswith(value.lower())}
        elif key == "account" and value:
            account = value.lower()
        else:
            words.append(token.lower())
    return levels, account, " ".join(words)


LEVEL_STYLE = {"ERROR": "bold red", "WARNING": "yellow", "INFO": "green", "DEBUG": "dim"}


class LevelHighlighter(Highlighter):
    """Colours the level word and dims the time of each rendered line."""

    def highlight(self, text: Text) -> None:
        plain = text.plain
        text.stylize("dim", 0, 8)
        level = plain[9:16].strip()
        if level in LEVEL_STYLE:
            text.stylize(LEVEL_STYLE[level], 9, 9 + len(level))


class LogTail(Log):
    """A Log widget fed in batches from the pipeline log file."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, highlight=True, max_lines=KEEP)
        self.highlighter = LevelHighlighter()
        self._flt: tuple[set[str], str, str] = (set(), "", "")
        self.path: Path | None = None
        self._offset = 0
        self._partial = b""
        self._entries: deque[Entry] = deque(maxlen=KEEP)
        self.filter_text = ""

    def on_mount(self) -> None:
        self.border_title = "Log"

    def follow(self, path: Path) -> None:
        """Start following ``path`` (today's log), from the last KEEP lines."""
        if path == self.path:
            return
        self.path, self._offset, self._partial = path, 0, b""
        try:
            size = path.stat().st_size
            self._offset = max(0, size - 512 * 1024)
        except OSError:
            pass

    def poll(self) -> list[dict[str, Any]]:
        """Read what was appended since the last poll; return the new events."""
        if self.path is None:
            return []
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return []
        if size < self._offset:  # rotated or truncated
            self._offset, self._partial = 0, b""
        if size == self._offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read(min(size - self._offset, 4 << 20))
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        events: list[dict[str, Any]] = []
        for raw in lines:
            try:
                ev = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(ev, dict):
                events.append(ev)
        self.add(events)
        return events

    def add(self, events: list[dict[str, Any]]) -> None:
        """Append events (progress lines are not shown) and render those the filter keeps."""
        fresh: list[Entry] = []
        for ev in events:
            if ev.get("type") == "task_progress":
                continue
            entry = Entry(str(ev.get("level", "info")), str(ev.get("extractor", "")), render(ev), ev)
            self._entries.append(entry)
            fresh.append(entry)
        shown = [e.text for e in fresh if self._keep(e)]
        if shown:
            self.write_lines(shown)

    def _keep(self, e: Entry) -> bool:
        levels, account, words = self._flt
        if levels and e.level not in levels:
            return False
        if account and account not in e.extractor.lower() and account not in e.text.lower():
            return False
        return not words or words in e.text.lower()

    def set_filter(self, text: str) -> None:
        """Keep only lines matching ``text`` (`level:`, `account:` and words)."""
        self.filter_text = text
        self._flt = parse_filter(text)
        self.clear()
        self.write_lines([e.text for e in self._entries if self._keep(e)])
