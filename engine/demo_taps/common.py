"""Deterministic randomness, counting and time formatting shared by the demo taps.

Every demo record is a pure function of (tap, account, seed, stream, index): a resumed run
(``--state``) must regenerate exactly the records a full run would have written, and two runs
with the same config must be byte-identical. A seeded ``random.Random`` walked in order cannot
skip ahead cheaply, so per-record variation comes from a 64-bit mixing function (SplitMix64's
finaliser) applied to the record index; ``random.Random`` only builds the small pools once per
run. Seeds come from SHA-256, never from Python's salted ``hash()``.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Sequence
from datetime import date

MASK64 = (1 << 64) - 1
DAY = 86_400
EPOCH_2022 = 1_640_995_200
"""2022-01-01T00:00:00Z: the demo timelines start in 2022 plus a seed-derived shift."""
TIMELINE_SPAN = 2 * 365 * DAY
"""Records of one stream are spread over about two years, whatever their number."""

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_UNIX_ORDINAL = date(1970, 1, 1).toordinal()
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def derive(*parts: object) -> int:
    """A stable 64-bit key from any values (SHA-256 of their text, joined by a separator)."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def mix64(x: int) -> int:
    """SplitMix64 finaliser: 64 well-mixed bits from ``x`` (fast, pure, stateless)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def seeded(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from :func:`derive`, for building pools once per run."""
    return random.Random(derive(*parts))


def split_counts(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in fixed proportions; every stream gets one when ``total`` allows.

    Cumulative rounding keeps the sum exact (30/50/20 of 100 is exactly 30, 50, 20); a stream
    left empty by rounding borrows one record from the largest, so ``records: 5`` still has a
    customer, an invoice and a payment.
    """
    whole = sum(weights)
    counts: list[int] = []
    done = 0
    acc = 0
    for w in weights:
        acc += w
        upto = total * acc // whole
        counts.append(upto - done)
        done = upto
    if total >= len(weights):
        for k, n in enumerate(counts):
            if n == 0:
                big = max(range(len(counts)), key=lambda m: counts[m])
                counts[big] -= 1
                counts[k] = 1
    return counts


def timeline(key: int, count: int) -> tuple[int, int]:
    """(start epoch, step seconds) of a stream of ``count`` records: two years, in order."""
    start = EPOCH_2022 + (key % 365) * DAY + (key >> 20) % DAY
    step = max(1, min(3600 * 6, TIMELINE_SPAN // max(count, 1)))
    return start, step


def guid(h: int) -> str:
    """A version-4-shaped GUID from 64 mixed bits (plus a second mix for the rest)."""
    hex_ = f"{h:016x}{mix64(h):016x}"
    variant = "89ab"[int(hex_[16], 16) & 3]
    return f"{hex_[0:8]}-{hex_[8:12]}-4{hex_[13:16]}-{variant}{hex_[17:20]}-{hex_[20:32]}"


_TWO = tuple(f"{n:02d}" for n in range(100))
_ISO_DAYS: dict[int, str] = {}
_RFC_DAYS: dict[int, str] = {}


def clock(seconds_of_day: int) -> str:
    """``HH:MM:SS`` without ``strftime`` (string tables are several times faster)."""
    hours, rest = divmod(seconds_of_day, 3600)
    return _TWO[hours] + ":" + _TWO[rest // 60] + ":" + _TWO[rest % 60]


def _iso_day(day: int) -> str:
    text = _ISO_DAYS.get(day)
    if text is None:
        text = _ISO_DAYS[day] = date.fromordinal(_UNIX_ORDINAL + day).isoformat()
    return text


def _rfc_day(day: int) -> str:
    text = _RFC_DAYS.get(day)
    if text is None:
        d = date.fromordinal(_UNIX_ORDINAL + day)
        text = _RFC_DAYS[day] = f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year}"
    return text


def iso_z(epoch: int) -> str:
    """UTC timestamp like ``2024-03-05T09:15:02Z`` (Graph, Dataverse)."""
    day, rest = divmod(epoch, DAY)
    return _iso_day(day) + "T" + clock(rest) + "Z"


def iso_offset(epoch: int, offset_s: int) -> str:
    """Local timestamp with its offset like ``2024-03-05T01:15:02-08:00`` (QuickBooks)."""
    day, rest = divmod(epoch + offset_s, DAY)
    sign = "-" if offset_s < 0 else "+"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    return _iso_day(day) + "T" + clock(rest) + sign + _TWO[hours] + ":" + _TWO[minutes]


def iso_date(epoch: int) -> str:
    """Date only, ``YYYY-MM-DD``."""
    return _iso_day(epoch // DAY)


def ordinal_date(ordinal: int) -> str:
    """Date only from a proleptic Gregorian ordinal (works before 1970, for birth dates)."""
    return date.fromordinal(ordinal).isoformat()


def rfc2822(epoch: int, offset_s: int, zone_label: str) -> str:
    """An RFC 2822 ``Date`` header value as mail clients write it, zone label verbatim."""
    day, rest = divmod(epoch + offset_s, DAY)
    return _rfc_day(day) + " " + clock(rest) + " " + zone_label


def b64url(data: bytes) -> str:
    """base64url without padding, as the Gmail API returns ``body.data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token(h: int, length: int) -> str:
    """An opaque URL-safe token of ``length`` characters derived from ``h``."""
    words = []
    x = h
    for _ in range(length * 3 // 32 + 1):
        x = mix64(x)
        words.append(x.to_bytes(8, "big"))
    return base64.urlsafe_b64encode(b"".join(words)).decode("ascii")[:length]
