"""The registry of JSONata helper functions (``$mimeBody(payload)`` etc.) and its fingerprint.

Why this module exists: it is the one place that decides which helpers every transform can
call and by which ``$name`` (``FUNCTIONS``, registered by :mod:`engine.canon.compiled`), and
what provenance records about them (``helpers_sha256``, used by the canonize stage). The
helpers themselves, and the contract they keep, live in :mod:`engine.canon.helpers`; they are
re-exported here so ``engine.canon.functions.<helper>`` keeps working.

Names must not collide with JSONata built-ins (jsonatapy refuses such a registration).
``docs/transforms.md`` lists them with signatures and examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from engine.canon import helpers
from engine.canon.helpers import JSON
from engine.canon.helpers.contact import country_code, e164
from engine.canon.helpers.dates import iso_date, millis_to_iso, minutes_between, sheets_date, utc
from engine.canon.helpers.mail import (
    addresses,
    decode_words,
    email_address,
    header,
    header_all,
    header_map,
    mail_date,
    mail_key,
    msg_id,
)
from engine.canon.helpers.mime import b64url_bytes, decode_bytes, mime_body
from engine.canon.helpers.numeric import decimal, to_number
from engine.canon.helpers.text import PREVIEW_MAX, html_to_text, preview, unescape_html
from engine.canon.helpers.values import compact, sha256

__all__ = [
    "FUNCTIONS", "JSON", "PREVIEW_MAX", "addresses", "b64url_bytes", "compact", "country_code",
    "decimal", "decode_bytes", "decode_words", "e164", "email_address", "header", "header_all", "header_map",
    "helpers_sha256", "html_to_text", "iso_date", "mail_date", "mail_key", "millis_to_iso",
    "mime_body", "minutes_between", "msg_id", "preview", "sha256", "sheets_date", "to_number",
    "unescape_html", "utc",
]


def _helper_sources() -> list[Path]:
    """This module, then every module of the helpers package, sorted by file name."""
    package = Path(helpers.__file__).parent
    return [Path(__file__), *sorted(package.glob("*.py"), key=lambda p: p.name)]


@lru_cache(maxsize=1)
def helpers_sha256() -> str:
    """sha256 over the source of this registry and of every helper module: transforms' output
    depends on it as much as on their own text, so provenance that proves "nothing changed"
    should include it. Each file enters as its name, its length and its bytes, in a fixed
    order, so a change to any helper (or a module added or removed) changes the hash."""
    digest = hashlib.sha256()
    for path in _helper_sources():
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "mimeBody": mime_body,
    "header": header,
    "headerAll": header_all,
    "headerMap": header_map,
    "addresses": addresses,
    "emailAddress": email_address,
    "decodeWords": decode_words,
    "msgId": msg_id,
    "mailKey": mail_key,
    "mailDate": mail_date,
    "millisToIso": millis_to_iso,
    "utc": utc,
    "minutesBetween": minutes_between,
    "isoDate": iso_date,
    "sheetsDate": sheets_date,
    "htmlToText": html_to_text,
    "unescapeHtml": unescape_html,
    "preview": preview,
    "decimal": decimal,
    "toNumber": to_number,
    "e164": e164,
    "countryCode": country_code,
    "sha256": sha256,
    "compact": compact,
}
"""Every helper, by the ``$name`` transforms call it with."""
