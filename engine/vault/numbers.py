"""Numbers a double cannot hold: found without a full parse, never rounded silently.

Taps built on the Singer SDK print numbers with ``simplejson`` and ``use_decimal=True``, so
20-digit integers and long decimals are real, and ``1e999`` is valid JSON. The vault keeps
them as written (:mod:`engine.vault.messages`). Everything that parses a value into Python
for a double-based consumer (orjson, JSONata) asks here first:

* :func:`suspect` is a cheap scan for the only shapes that can be inexact: a number token
  (it starts the document or follows ``:``, ``,`` or ``[``, maybe after whitespace and a
  minus) whose digits-and-points run is 16 or longer, or an exponent of three digits after a
  digit. A number with at most 15 significant digits and a two-digit exponent always
  survives a double. The scan is one ``bytes.translate`` (whitespace dropped; digits and
  points to ``0``, ``:,[`` to ``:``, signs to ``+``, ``eE`` to ``e``, the rest to ``x``) and
  one regex that starts with the literal ``:``: about five times cheaper than the former
  regex over the raw bytes, and hexadecimal ids or MIME boundaries inside strings
  (``"00000000000073575e62cc76"``, ``5e123``, ``image001``) no longer count, since their
  digits do not follow a JSON separator.
* :func:`inexact` then parses the suspect text exactly (``Decimal`` for decimals, Python
  ``int`` for integers) and says whether some number would change: an integer beyond
  ``2**53`` (JSONata's exact range) or a decimal whose double does not print back to the same
  value (``12345678901234567.891``, ``1e999``, ``1e-400``).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import orjson

SUSPECT = re.compile(rb"\d{16}|[\d.]{17}|[eE][+-]?\d{3}")
"""The former scan, kept as the reference the tests hold :func:`suspect` to (it finds every
shape this one finds in a number token, and many more inside strings)."""
_WHITESPACE = b" \t\n\r"


def _suspect_table() -> bytes:
    table = bytearray(b"x" * 256)
    for chars, to in ((b"0123456789.", b"0"), (b":,[", b":"), (b"+-", b"+"), (b"eE", b"e")):
        for c in chars:
            table[c] = to[0]
    return bytes(table)


_TABLE = _suspect_table()
_NUMBER = re.compile(rb":0(?:0{15}|0*e\+?000)")
_SIGNED = re.compile(rb":\+0(?:0{15}|0*e\+?000)")
r"""On the translated bytes: a number token after a separator with 16 or more digits-and-points,
or a three-digit exponent; unsigned and signed apart (together ``:\+?(?:0{16}|0+e\+?000)``),
so each pattern starts with a two-byte literal (``:0``, ``:+``) that ``re`` skips ahead to
in C: the one-byte ``:`` stopped at every separator (2.6 instead of 7.9 us on a 4 KB Forms
response, docs/performance.md)."""
_TOP = re.compile(rb"\+?(?:0{16}|0+e\+?000)")
"""The same for a number that is the whole document (a STATE or SCHEMA value may be one)."""
MAX_EXACT_INT = 2**53
INT64 = (-(2**63), 2**64 - 1)


class _Inexact(Exception):
    pass


def _exact_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or Decimal(repr(value)) != Decimal(text):
        raise _Inexact
    return value


def _exact_int(text: str) -> int:
    if len(text) > 20:  # beyond any double's exact integers, and int() refuses 4,300 digits
        raise _Inexact
    value = int(text)
    if abs(value) > MAX_EXACT_INT:
        raise _Inexact
    return value


def _constant(text: str) -> Any:
    raise ValueError(text)  # NaN / Infinity are not JSON


def suspect(data: bytes) -> bool:
    """Whether ``data`` may hold a number a double cannot hold (false positives are fine)."""
    t = data.translate(_TABLE, _WHITESPACE)
    return _NUMBER.search(t) is not None or _SIGNED.search(t) is not None or _TOP.match(t) is not None


def inexact(data: bytes) -> bool:
    """Whether some number in the JSON ``data`` would change as a double."""
    if not suspect(data):
        return False
    try:
        json.loads(data, parse_float=_exact_float, parse_int=_exact_int, parse_constant=_constant)
    except _Inexact:
        return True
    except RecursionError:  # nested beyond this parser's depth: not proven exact, so refused
        return True
    return False


def _approx_int(text: str) -> int | float:
    if len(text) > 21:  # past 64 bits: a double (inf past its range; float(int) raised there)
        return float(text)
    value = int(text)
    return value if INT64[0] <= value <= INT64[1] else float(value)


def approximate(data: bytes) -> Any:
    """``data`` parsed for display: exact numbers as they are, the others as doubles
    (an overflow becomes ``inf``, which JSON output writes as ``null``)."""
    return json.loads(data, parse_int=_approx_int, parse_constant=_constant)


def exact_value(data: bytes) -> tuple[Any, str | None]:
    """(value, None) when orjson holds ``data`` exactly; else (an approximation, the text)."""
    if inexact(data):
        return approximate(data), data.decode()
    return orjson.loads(data), None


def _whole(text: str) -> int | Decimal:
    """An integer as ``int``; one of more digits than ``int()`` reads (4,300) as ``Decimal``."""
    return int(text) if len(text) < 4000 else Decimal(text)


def exact_loads(data: bytes) -> Any:
    """``data`` parsed without losing a digit: decimals as ``Decimal``, integers as ``int``
    (a 5,000-digit one as ``Decimal``: it failed the whole account as ``PART_CORRUPT``)."""
    return json.loads(data, parse_float=Decimal, parse_int=_whole, parse_constant=_constant)
