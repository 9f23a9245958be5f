"""Helpers for dashboard tests: a small demo config, polling a running app, reading panes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.helpers import demo_extractor, write_config

# Three accounts over three source types; names sort differently from config order on purpose.
EXTRACTORS = (("mail-alpha", "gmail", 11), ("clinic-bravo", "dataverse", 12), ("books-charlie", "quickbooks", 13))
MAPPINGS = [
    {"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"},
    {"source": "dataverse", "stream": "contacts", "transform": "clinical/dataverse_contact_to_contact_v1"},
    {"source": "dataverse", "stream": "cr123_sessions",
     "transform": "clinical/dataverse_session_to_clinical_session_v1"},
    {"source": "quickbooks", "stream": "customers", "transform": "finance/qbo_customer_to_contact_v1"},
    {"source": "quickbooks", "stream": "invoices", "transform": "finance/qbo_invoice_to_invoice_v1"},
    {"source": "quickbooks", "stream": "payments", "transform": "finance/qbo_payment_to_payment_v1"},
]
NAMES = [name for name, _, _ in EXTRACTORS]


def dashboard_config(tmp: Path, records: int = 20,
                     extractors: tuple[tuple[str, str, int], ...] = EXTRACTORS) -> Path:
    """tmp/pipeline.yaml: demo extractors with canonize mappings, workspace tmp/ws."""
    exs = [demo_extractor(name, tap, records=records, seed=seed, retries=0, timeout_s=120)
           for name, tap, seed in extractors]
    return write_config(tmp, exs, stages={"extract": {"max_parallel": 3},
                                          "canonize": {"mappings": MAPPINGS}})


async def until(pilot: Pilot[Any], cond: Callable[[], Any], timeout: float = 10.0,
                what: str = "condition") -> Any:
    """Let the app run until ``cond()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


async def settle(seconds: float) -> None:
    """Give background work time to do something it must NOT do (only for negative checks)."""
    await asyncio.sleep(seconds)


def plain(value: object) -> str:
    """The text of a cell or a Static's content."""
    return value.plain if isinstance(value, Text) else str(value)


def cell(table: DataTable[Any], row: str, col: str) -> str:
    """The plain text of one cell (row and column by key)."""
    return plain(table.get_cell(row, col))


def row_keys(table: DataTable[Any]) -> list[str]:
    """The row keys in display order."""
    return [str(table.coordinate_to_cell_key((i, 0))[0].value) for i in range(table.row_count)]


def static_text(widget: Static) -> str:
    """What a Static shows, as plain text."""
    return plain(widget.content)


class Notes:
    """Records every notification the app posts (pass ``hook`` as run_test's message_hook)."""

    def __init__(self) -> None:
        self.items: list[Notification] = []

    def hook(self, message: Message) -> None:
        if isinstance(message, Notify):
            self.items.append(message.notification)

    def texts(self) -> list[str]:
        return [f"{n.title}: {n.message}" for n in self.items]

    def find(self, *words: str) -> Notification | None:
        """The first notification whose title+message contains every word."""
        for n in self.items:
            text = f"{n.title} {n.message}".lower()
            if all(w.lower() in text for w in words):
                return n
        return None
