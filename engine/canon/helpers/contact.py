"""Contact helpers: phone numbers in E.164 and ISO 3166-1 country codes.

Why this module exists: people are matched across sources (Sheets, Dataverse, QBO, mail) by
phone number and address, which each source writes its own way (``(212) 555-0101 x12``,
``"USA"``, ``"United States"``). These helpers normalise them for matching, deliberately
conservatively: anything not plausible gives null for a person to map, never a guess.
"""

from __future__ import annotations

import re

from engine.canon.helpers import JSON

_DIGITS = re.compile(r"\d")


def e164(phone: JSON, region: JSON = None) -> str | None:
    """A phone number in E.164 (``+12125550101``) for matching, or null when not plausible.

    North American numbers (default region ``"US"``/``"CA"``): 10 digits, or 11 starting with
    1. A number written with ``+`` keeps its country code (8-15 digits), without the national
    trunk prefix some write after it in brackets (``+44 (0)7700 900123``). Extensions
    (``x123``, ``ext. 5``) are dropped. Other regions without ``+`` are not guessed (null).
    """
    if not isinstance(phone, str):
        return None
    text = phone.strip().lower().replace("(0)", "", 1) if phone.lstrip().startswith(("+", "00")) \
        else phone.strip().lower()  # "+44 (0)7700 900123": the national trunk 0 is not dialled
    for marker in ("ext", "x", "#"):
        cut = text.find(marker)
        if cut > 0:
            text = text[:cut]
    digits = "".join(_DIGITS.findall(text))
    if text.startswith("+") or text.startswith("00"):
        if text.startswith("00"):
            digits = digits[2:]
        return f"+{digits}" if 8 <= len(digits) <= 15 else None
    nanp = region is None or (isinstance(region, str) and region.upper() in ("US", "CA"))
    if not nanp:
        return None
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) == 10 and digits[0] not in "01":
        return f"+1{digits}"
    return None


_COUNTRIES = {
    "us": "US", "usa": "US", "u.s.": "US", "u.s.a.": "US", "united states": "US",
    "united states of america": "US", "ca": "CA", "can": "CA", "canada": "CA",
    "mx": "MX", "mex": "MX", "mexico": "MX", "méxico": "MX", "gb": "GB", "gbr": "GB",
    "uk": "GB", "united kingdom": "GB", "great britain": "GB", "ie": "IE", "irl": "IE",
    "ireland": "IE", "au": "AU", "aus": "AU", "australia": "AU", "nz": "NZ", "nzl": "NZ",
    "new zealand": "NZ",
}


def country_code(name: JSON) -> str | None:
    """ISO 3166-1 alpha-2 code of a country as sources write it (``"USA"``, ``"United States"``,
    ``"Canada"``); null when not recognised. A deliberately small table of the practice's
    countries: an unknown name is left for a person to map rather than guessed."""
    if not isinstance(name, str):
        return None
    return _COUNTRIES.get(" ".join(name.split()).lower())
