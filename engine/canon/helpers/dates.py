"""Date and time helpers: epoch millis, ISO 8601 to UTC, calendar dates, Sheets serials.

Why this module exists: sources write instants in many shapes (Gmail epoch milliseconds,
Graph/Dataverse ISO 8601 with or without offset, Sheets serial day numbers, US ``M/D/YYYY``)
and JSONata's ``$fromMillis``/``$toMillis`` differ between engines and are slow. These helpers
normalise them to RFC 8620 UTCDate (``YYYY-MM-DDTHH:MM:SS[.mmm]Z``) or a plain
``YYYY-MM-DD`` calendar date, never shifting a date-only value, with no clock or locale.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.canon.helpers import JSON
from engine.canon.helpers.numeric import to_number

_ISO_FRACTION = re.compile(r"(\.\d+)")


def _wall(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (four-digit years even before 1000, unlike ``strftime``)."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def format_utc(moment: datetime) -> str:
    """RFC 8620 UTCDate: ``Z``, and the fraction (milliseconds) only when it is not zero."""
    text = _wall(moment)
    millis = moment.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def millis_to_iso(value: JSON) -> str | None:
    """Epoch milliseconds (int or digit string, like Gmail's ``internalDate``) to UTC ISO 8601.

    ``"1709542800123"`` -> ``"2024-03-04T09:00:00.123Z"``; the fraction is omitted when zero.
    Null for anything that is not an integer in the datetime range.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            return None
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        return None
    seconds, millis = divmod(value, 1000)
    try:
        t = time.gmtime(seconds)
    except (OverflowError, OSError, ValueError):
        return None
    if not 1 <= t.tm_year <= 9999:
        return None
    text = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def utc(text: JSON, zone: JSON = None) -> str | None:
    """Normalise an ISO 8601 / RFC 3339 timestamp to UTC ``YYYY-MM-DDTHH:MM:SS[.mmm]Z``.

    Offsets are applied (``2024-03-05T01:15:02-08:00`` -> ``2024-03-05T09:15:02Z``); fractions
    of any length are cut to milliseconds; a timestamp without an offset is taken as UTC
    (Graph and Dataverse write UTC), or as the wall time of ``zone`` when one is given (an IANA
    name such as ``America/New_York``: a linked sheet shows its spreadsheet's local time; the
    earlier of two readings in the hour a clock goes back). A date-only value is returned
    unchanged (never shifted: Dataverse ``DateOnly`` and QBO ``TxnDate`` are calendar dates).
    Null when unparseable or when ``zone`` is not a known time zone.
    """
    if not isinstance(text, str):
        return None
    if zone is None:
        return _utc_text(text)
    return _utc_text(text, zone) if isinstance(zone, str) and _zone(zone) is not None else None


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=16384)
def _utc_text(text: str, zone: str | None = None) -> str | None:
    """:func:`utc` of a string; cached because timestamps and dates repeat across records."""
    value = text.strip()
    if len(value) == 10:
        return iso_date(value)
    value = _ISO_FRACTION.sub(lambda m: m.group(1)[:7], value, count=1)
    if value.endswith(("z", "Z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(zone) if zone is not None else UTC)
    try:
        return format_utc(moment.astimezone(UTC))
    except (OverflowError, ValueError):
        return None


def minutes_between(start: JSON, end: JSON) -> int | float | None:
    """Minutes from ``start`` to ``end`` (ISO 8601 timestamps); null when either is missing,
    unparseable, or ``end`` is before ``start``. Whole minutes come back as an integer."""
    first, last = _parse_instant(start), _parse_instant(end)
    if first is None or last is None or last < first:
        return None
    seconds = (last - first).total_seconds()
    minutes = seconds / 60
    return int(minutes) if minutes.is_integer() else round(minutes, 3)


def _parse_instant(text: JSON) -> datetime | None:
    normal = utc(text)
    if normal is None or len(normal) == 10:
        return None
    return datetime.fromisoformat(normal.replace("Z", "+00:00"))


def iso_date(text: JSON) -> str | None:
    """A calendar date ``YYYY-MM-DD`` (also the date part of a timestamp) or null if invalid."""
    if not isinstance(text, str):
        return None
    return _iso_date_text(text)


@lru_cache(maxsize=16384)
def _iso_date_text(text: str) -> str | None:
    """:func:`iso_date` of a string; cached because dates repeat across records."""
    if len(text.strip()) < 10:
        return None
    value = text.strip()[:10]
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def sheets_date(value: JSON, order: JSON = "MDY") -> str | None:
    """A Google Sheets date cell to ``YYYY-MM-DD``: a serial number (days since 1899-12-30,
    25569 = 1970-01-01; as a number or a numeric string; the fraction, a time of day, is
    dropped), an ISO date or date-time (the tap writes a DATE_TIME cell as
    ``2024-03-04T09:30:00.000000Z``: the sheet's wall time, so its date part is the day), or a
    slashed date with or without a time: US ``M/D/YYYY`` by default, ``D/M/YYYY`` with
    ``order`` ``"DMY"`` (a sheet in a European locale: read as US, ``04/05/1992`` was the 5th
    of April, a wrong birth date and so a wrong name-plus-birth-date key); else null. Serial
    numbers have no zone: they are the spreadsheet's local calendar day and are never
    shifted. A two-digit year is null, never a guess (``3/15/52``: 1952 or 2052?). Another
    ``order`` than ``MDY`` or ``DMY`` gives null."""
    if order not in ("MDY", "DMY"):
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return (date(1899, 12, 30) + timedelta(days=int(value))).isoformat()
        except (OverflowError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    serial = to_number(text)
    if serial is not None:
        return sheets_date(serial, order) if 0 < serial < 2_958_466 else None
    if len(text) >= 10 and text[4:5] == "-" and (len(text) == 10 or text[10:11] in ("T", " ")):
        return iso_date(text[:10])
    parts = text.split(" ", 1)[0].split("/")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        month, day, year = (int(p) for p in parts)
        if order == "DMY":
            month, day = day, month
        if len(parts[2]) != 4:
            return None
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            return None
    return None
