"""Argument types shared by the command-line faces (no engine work, no Textual)."""

from __future__ import annotations

import argparse
import math

MAX_WAIT_S = 7 * 86400


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
