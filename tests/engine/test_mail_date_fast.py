"""``$mailDate``'s own reading of the usual Date spelling equals the standard library's.

``engine.canon.helpers.mail._plain_date`` reads ``Thu, 09 Jun 2022 15:03:49 +0530 (IST)``
with one regex instead of ``email.utils.parsedate_to_datetime`` (about 4x cheaper, and
Gmail's transform calls it for every message). Canonical output must not depend on which
reader ran: every date here is read both ways (the reference with the fast reader switched
off) and the results must be equal, on seeded random dates over every field's edge values
(impossible days, hours past 23, every zone name, ``-0000``, comments, odd spacing and
spellings the fast reader must leave to the standard library).
"""

from __future__ import annotations

import random

import pytest

from engine.canon.helpers import mail

DAYS = ["", "Mon, ", "Thu, ", "Sun,", "thu, ", "Thursday, ", "Xyz, "]
MONTHS = ["Jan", "Feb", "Jun", "Sep", "Dec", "jun", "June", "JUN", "Foo"]
ZONES = ["+0000", "-0000", "+0530", "-0800", "+2359", "+2400", "-9999", "+0099", "GMT", "UT", "UTC", "Z",
         "EST", "PDT", "est", "CET", "+05:30", "+530", ""]
TAILS = ["", " (UTC)", " (Pacific Standard Time)", " (a (nested) comment)", "  ", " extra"]


def reference(text: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str] | None:
    with monkeypatch.context() as m:
        m.setattr(mail, "_plain_date", lambda _text: None)
        return mail.mail_date(text)


def random_date(rng: random.Random) -> str:
    day = rng.choice(["1", "09", "29", "30", "31", "0", "32", "7"])
    year = rng.choice(["2022", "1999", "0099", "9999", "1000", "22", "2024"])
    hms = rng.choice(["15:03:49", "00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "9:05:01", "12:00"])
    sep = rng.choice([" ", " ", " ", "  ", "\t"])
    zone = rng.choice(ZONES)
    return f"{rng.choice(DAYS)}{day}{sep}{rng.choice(MONTHS)} {year} {hms} {zone}{rng.choice(TAILS)}"


@pytest.mark.parametrize("text", [
    "Thu, 09 Jun 2022 15:03:49 +0530 (IST)", "Thu, 09 Jun 2022 00:27:08 EST", "9 Jun 2022 06:21:36 -0000",
    "Sat, 29 Feb 2020 12:00:00 +0000", "Sun, 29 Feb 2022 12:00:00 +0000", "Wed, 08 Jun 2022 23:52:16 -0800",
    "Thu, 09 Jun 2022 08:55:10 GMT", "Mon, 1 Jan 2024 00:00:00 UT", "Tue, 31 Dec 1999 23:59:59 +2359",
])
def test_usual_spellings_match_the_standard_library(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if "29 Feb 2022" in text:
        with pytest.raises(ValueError):  # taken, and refused by the same datetime constructor
            mail._plain_date(text)
    else:
        assert mail._plain_date(text) is not None  # the fast reader took it
    assert mail.mail_date(text) == reference(text, monkeypatch)


def test_random_dates_match_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(18)
    fast = 0
    for i in range(5000):
        text = random_date(rng)
        assert mail.mail_date(text) == reference(text, monkeypatch), f"date {i}: {text!r}"
        try:
            fast += mail._plain_date(text) is not None
        except ValueError:  # an impossible date the fast reader took (mail_date gives null)
            fast += 1
    assert 100 < fast < 5000, f"the fast reader took {fast} of 5000"
