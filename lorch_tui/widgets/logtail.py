"""Log tail pane: follows today's ``logs/pipeline-*.log``, also when cron writes it.

The file is polled for new bytes on the app's flush tick (a cheap ``stat``), whole lines
are parsed (they are our own PHI-free events) and rendered readably: time, level colour,
event, task. Progress lines are folded away. A filter keeps lines by level, account and
free text; the last few thousand entries are kept so a filter change re-renders at once
(and the pane follows the tail again). ``f`` searches the shown lines, ``n``/``N`` jump to
the next and previous match; ``[`` and ``]`` step to earlier and later days' logs (the pane
stops following today's until ``]`` comes back to it).
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Log

from engine.store.logsink import log_path

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
    """`10:02:11 INFO  task_finished extract:acct1 success 200 rec 0.5s`; a line whose fields
    are not of their types (a damaged or hand-edited log) as well as it goes, never an error."""
    try:
        return _render(event)
    except (TypeError, ValueError):
        return f"{str(event.get('ts', ''))[11:19]} {str(event.get('level', 'info')).upper():<7} {event.get('type')!s} (unreadable fields)"


def _render(event: dict[str, Any]) -> str:
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
    """Colours the level word, dims the time and marks search matches of each line."""

    def __init__(self) -> None:
        self.search = ""

    def highlight(self, text: Text) -> None:
        plain = text.plain
        text.stylize("dim", 0, 8)
        level = plain[9:16].strip()
        if level in LEVEL_STYLE:
            text.stylize(LEVEL_STYLE[level], 9, 9 + len(level))
        if self.search:
            low, n = plain.lower(), len(self.search)
            at = low.find(self.search)
            while at >= 0:
                text.stylize("reverse", at, at + n)
                at = low.find(self.search, at + n)


class LogTail(Log):
    """A Log widget fed in batches from the pipeline log file."""

    BINDINGS = [
        Binding("f", "app.search_log", "find"),
        Binding("n", "next_match(1)", "next", show=False),
        Binding("N", "next_match(-1)", "previous", show=False),
        Binding("left_square_bracket", "day(-1)", "earlier day", key_display="["),
        Binding("right_square_bracket", "day(1)", "later day", key_display="]"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, highlight=True, max_lines=KEEP)
        self.highlighter = LevelHighlighter()
        self._flt: tuple[set[str], str, str] = (set(), "", "")
        self.path: Path | None = None
        self._offset = 0
        self._partial = b""
        self._entries: deque[Entry] = deque(maxlen=KEEP)
        self._account_of: dict[str, str] = {}
        """Extractor -> its account, learnt from the events that carry both (a warning or a
        retry names only the extractor; `account:NAME` keeps its lines too)."""
        self.filter_text = ""
        self.search = ""
        self.match = -1
        self.today: Path | None = None
        self.pinned = False  # showing an earlier day: do not follow today's file
        self._looked = float("-inf")

    def on_mount(self) -> None:
        self._titles()

    def on_resize(self) -> None:
        """A new size leaves the view off the bottom, and Textual's ``Log`` only follows a
        view that is at the bottom: after a resize the pane froze on old lines. Following
        today's log (no search, not an earlier day), it goes back to the tail."""
        if not self.search and not self.pinned:
            self.call_after_refresh(self.scroll_end, animate=False)

    def _titles(self) -> None:
        title = "Log"
        if self.pinned and self.path is not None:
            title += f" · {self.path.name} (earlier day: ] for later)"
        if self.filter_text:
            title += f" · filter: {self.filter_text}"
        self.border_title = title
        if self.search:
            hits = self.matches()
            where = f"{hits.index(self.match) + 1}/{len(hits)}" if self.match in hits else f"{len(hits)} hits"
            self.border_subtitle = f"find {self.search!r}: {where} · n/N"
        else:
            self.border_subtitle = "f: find · [ ]: days"

    def follow_current(self, logs: Path) -> None:
        """Follow today's log, or, before today's first run, the newest day's: a night's cron
        run at 02:15 local time can fall on the day before in UTC, and the morning check must
        still show it (its failed tasks, its last errors)."""
        today = log_path(logs)
        if today == self.today and today == self.path:
            return
        if today.exists() or self.pinned:
            self.follow(today)
            return
        now = time.monotonic()
        if now - self._looked < 5.0 and self.path is not None:
            return  # looked for an older day a moment ago
        self._looked = now
        older = sorted(logs.glob("pipeline-*.log")) if logs.is_dir() else []
        self.follow(older[-1] if older else today)
        self.today = today

    def follow(self, path: Path) -> None:
        """Start following ``path`` (today's log), from the last KEEP lines."""
        self.today = path
        if path == self.path or self.pinned:
            return
        self._open(path)

    def _open(self, path: Path) -> None:
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
            if ev.get("extractor") and ev.get("account"):
                self._account_of[str(ev["extractor"])] = str(ev["account"]).lower()
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
        if account and account not in e.extractor.lower() and account not in e.text.lower() \
                and account not in self._account_of.get(e.extractor, ""):
            return False
        return not words or words in e.text.lower()

    def set_filter(self, text: str) -> None:
        """Keep only lines matching ``text`` (`level:`, `account:` and words)."""
        self.filter_text = text
        self._flt = parse_filter(text)
        self._rerender()
        self._titles()

    def _rerender(self) -> None:
        """Render the kept entries again and follow the tail (once the new lines are laid out:
        scrolled at once, the view stopped where the old, shorter content ended, off the
        bottom, and Textual's ``Log`` follows only a view at the bottom: clearing a filter
        left the pane on old lines while new ones came)."""
        self.clear()
        self.write_lines([e.text for e in self._entries if self._keep(e)], scroll_end=True)
        self.call_after_refresh(self.scroll_end, animate=False)

    # -- search ---------------------------------------------------------------------------
    def set_search(self, text: str) -> None:
        """Mark ``text`` in the shown lines and jump to its last occurrence."""
        self.search = text.lower()
        assert isinstance(self.highlighter, LevelHighlighter)
        self.highlighter.search = self.search
        self._render_line_cache.clear()
        self.match = -1
        self.action_next_match(-1)
        self.refresh()
        self._titles()

    def matches(self) -> list[int]:
        """Indices of the shown lines that contain the search text."""
        if not self.search:
            return []
        return [i for i, line in enumerate(self.lines) if self.search in line.lower()]

    def action_next_match(self, step: int) -> None:
        """Jump to the next (1) or previous (-1) line that matches the search."""
        hits = self.matches()
        if not hits:
            self._titles()
            return
        if step > 0:
            later = [i for i in hits if i > self.match]
            self.match = later[0] if later else hits[0]
        else:
            earlier = [i for i in hits if i < self.match] if self.match >= 0 else hits
            self.match = earlier[-1] if earlier else hits[-1]
        self.scroll_to(y=max(0, self.match - self.size.height // 2), animate=False)
        self._titles()

    # -- days -----------------------------------------------------------------------------
    def days(self) -> list[Path]:
        """Every day's log file next to today's, oldest first."""
        if self.today is None:
            return []
        files = set(self.today.parent.glob("pipeline-*.log")) | {self.today}
        return sorted(files)

    def action_day(self, step: int) -> None:
        """Show the previous (-1) or next (1) day's log; back at today it follows again."""
        files = self.days()
        if self.path not in files or self.today is None:
            return
        i = files.index(self.path) + step
        if not 0 <= i < len(files):
            self.app.notify("no earlier day's log" if step < 0 else "this is today's log",
                            severity="information")
            return
        self.pinned = files[i] != self.today
        self._entries.clear()
        self._open(files[i])
        self.clear()
        self.poll()
        self.scroll_end(animate=False)
        self._titles()
