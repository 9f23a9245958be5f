"""Number helpers: exact decimal strings for money and lenient number parsing.

Why this module exists: JSONata has no exact decimal type (``123.4`` would come out as a
binary float, and formatted amounts like ``"$1,234.50"`` not at all), and its ``$number``
raises on non-numeric strings, which would reject the whole record. These helpers give an
exact decimal string or a number, and null for anything they cannot read.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from engine.canon.helpers import JSON


def decimal(value: JSON) -> str | None:
    """An exact decimal string for money: ``150`` -> ``"150.00"``, ``123.4`` -> ``"123.40"``,
    ``"1.2345"`` -> ``"1.2345"``; at least two decimals, never a binary-float artefact.

    JSON numbers are read from their shortest round-trip text (what the source wrote).
    Formatted strings are accepted: ``"$1,234.50"`` -> ``"1234.50"``, ``"($5.00)"`` -> ``"-5.00"``.
    Null for booleans, non-numbers, NaN and infinities.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _decimal_text(repr(value))
    if isinstance(value, str):
        return _decimal_text(_money_text(value))
    return None


_DOT_THOUSANDS = re.compile(r"^[^.]*[0-9]{1,3}([.][0-9]{3})+[^0-9]*$")
_THOUSANDS = re.compile(r"^[^,]*[0-9](,[0-9]{3})+([.][0-9]*)?[^0-9]*$")


def _separators(text: str) -> str:
    """``text`` with thousands marks removed and the decimal mark a dot."""
    comma, dot = text.rfind(","), text.rfind(".")
    if comma < 0:  # 1.234.567 (de) is thousands; 1.50.00 or 12.03.2024 is no amount (left invalid)
        return text.replace(".", "") if text.count(".") > 1 and _DOT_THOUSANDS.match(text) else text
    if dot > comma:  # 1,234.50: the dot is the decimal mark
        return text.replace(",", "")
    if dot >= 0:  # 1.234,50: the comma is
        return text.replace(".", "").replace(",", ".")
    if _THOUSANDS.match(text):  # 1,234 or 1,234,567
        return text.replace(",", "")
    return text.replace(",", ".") if text.count(",") == 1 else text  # 150,00; "1,2,3" stays invalid


@lru_cache(maxsize=16384)
def _decimal_text(text: str) -> str | None:
    """:func:`decimal` of a number's text; cached (keyed by the text, so ``-0.0`` and ``0``
    never share an entry) because amounts repeat across records and Decimal is slow."""
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        number = number.quantize(Decimal("0.01"))
    return f"{number:f}"


def to_number(value: JSON) -> int | float | None:
    """A number from a JSON number or a plain numeric string (``"60"``, ``" 1.5 "``), else
    null (JSONata's ``$number`` raises on ``"abc"``, which would reject the whole record)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        number = int(text) if text.lstrip("+-").isdigit() else float(text)
    except ValueError:
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    return number


def _money_text(value: str) -> str:
    """``"$1,234.50"`` -> ``"1234.50"``; ``"($5.00)"`` and ``"-$5.00"`` -> ``"-5.00"``; a
    decimal comma as a European-locale sheet shows money: ``"150,00 €"`` -> ``"150.00"``,
    ``"1.234,50 €"`` -> ``"1234.50"`` (a comma followed by other than groups of three digits,
    or after the last dot, is the decimal mark; a thousands mark never has two digits after it)."""
    text = _separators(value.strip().replace(" ", "").replace("\u00a0", "").replace("\u202f", ""))
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    if text.startswith("-"):
        negative, text = True, text[1:]
    text = text.lstrip("$€£¥").rstrip("$€£¥")
    return f"-{text}" if negative else text
