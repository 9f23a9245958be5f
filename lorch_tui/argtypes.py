"""Argument types shared by the command-line faces (no engine work, no Textual)."""

from __future__ import annotations

import argparse
import math

MAX_WAIT_S = 7 * 86400
"""The longest ``--wait``: a week."""
DEMO_HELP = ("without a terminal: run the bundled demo config on purpose (otherwise refused when "
             "no --config, $LORCH_CONFIG or ./config/pipeline.yaml is found, so cron never runs the "
             "demo by mistake)")
"""Help text of ``--demo``, the same for every face that runs headless."""


def wait_seconds(text: str) -> float:
    """``--wait``'s value: a finite number of seconds, 0 to a week (``nan`` or ``inf`` would
    wait for ever, which a cron job must never do)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_WAIT_S:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to {MAX_WAIT_S}")
    return value


MAX_COUNT = 10**12
"""The largest ``--limit`` / ``--history``: far beyond any workspace, well inside SQLite's
64-bit integers (a larger one failed as "internal error (OverflowError)")."""


def count(text: str) -> int:
    """A whole number from 0 to :data:`MAX_COUNT` (``status --history N``, ``--limit N``)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    if n > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT:,}")
    return n


def positive(text: str) -> int:
    """A whole number from 1 to :data:`MAX_COUNT` (``transform run --limit N``: 0 means nothing,
    not all, there)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return count(text)


MAX_CLIENT_TEXT = 1000
"""The longest client id or name a command takes (SQLite refuses LIKE patterns past 50,000
bytes, which used to surface as "the index could not be read")."""


def client_text(text: str) -> str:
    """A client id, id prefix or name (``query --client``, ``clients show``): 1 to
    :data:`MAX_CLIENT_TEXT` characters. The message never repeats the value (a name is PHI)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a client id, id prefix or name")
    if len(text) > MAX_CLIENT_TEXT:
        raise argparse.ArgumentTypeError(f"is {len(text)} characters long: a client id or name has at most "
                                         f"{MAX_CLIENT_TEXT}")
    return text
