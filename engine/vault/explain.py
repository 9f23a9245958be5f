"""Why a tap's line is not a Singer message, in words, for the file the failed run keeps.

A run that fails on a bad line (``TAP_OUTPUT_INVALID``, ``TAP_MESSAGE_INVALID``) said only
the line number: the line itself was not kept and nothing said why (NaN, which Python's
``json.dumps`` writes by default, invalid UTF-8, a log line on stdout). The explanation is
computed once, when the run fails, and goes with the line into the run folder (0600, inside
the workspace: the line may hold PHI); events and the manifest carry only the line number.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from engine.vault.messages import _DECODER, MAX_DEPTH, too_deep

KEEP_BYTES = 65_536
"""How much of the line the file keeps (a 16 MB record is not copied whole)."""


def explain(line: bytes) -> str:
    """One sentence: what is wrong with ``line`` as a Singer message."""
    if too_deep(line):
        return f"nested deeper than {MAX_DEPTH} levels of objects and arrays"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8: byte {exc.start} ({line[exc.start]:#04x}) starts no UTF-8 character"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg} at byte {exc.pos}"
    except RecursionError:
        return "nested too deep to read"
    if _non_finite(value):
        return ("NaN or Infinity is not JSON (Python's json.dumps writes it unless allow_nan=False): "
                "the tap should write null or a string")
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__} is not a Singer message (an object with a \"type\")"
    try:
        _DECODER.decode(line)
    except msgspec.ValidationError as exc:
        return f"not a valid Singer message: {exc}"
    except msgspec.DecodeError as exc:
        return f"not JSON as a strict reader reads it: {exc}"
    return "not a valid Singer message (its record or schema is not a JSON object)"


def _non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def bad_line_text(lineno: int, line: bytes) -> bytes:
    """The file's content: the line number, the reason, then the line (at most KEEP_BYTES)."""
    kept = line[:KEEP_BYTES]
    cut = f" (first {KEEP_BYTES:,} of {len(line):,} bytes)" if len(line) > KEEP_BYTES else ""
    head = f"line {lineno} of the tap's output: {explain(line)}\nthe line as the tap wrote it{cut}:\n"
    return head.encode() + kept + (b"" if kept.endswith(b"\n") else b"\n")
