"""Generic JSON value helpers: content hashes and dropping empty entries.

Why this module exists: transforms build ids from hashes of source values and JSContact maps
from sparse source columns; JSONata has neither a hash function nor a concise way to drop
null and empty-string entries. These helpers work on any JSON value.
"""

from __future__ import annotations

import hashlib

import orjson

from engine.canon.helpers import JSON


def sha256(value: JSON) -> str | None:
    """Hex sha256 of a string (UTF-8), or of any other JSON value's sorted-key JSON; null for null."""
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else orjson.dumps(
        value, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(data).hexdigest()


def compact(value: JSON) -> JSON:
    """Drop null / empty-string entries of an object or array (one level); null when nothing is
    left. Builds JSContact maps and address component lists from sparse source columns."""
    if isinstance(value, dict):
        kept = {k: v for k, v in value.items() if v is not None and v != ""}
        return kept or None
    if isinstance(value, list):
        items = [v for v in value if v is not None and v != ""]
        return items or None
    return None if value == "" else value
