"""Mail header helpers: header lookup, RFC 2047 words, addresses, Message-IDs, Date headers.

Why this module exists: Gmail hands over raw RFC 5322 headers as ``[{name, value}]`` lists,
and JSONata can neither look them up case-insensitively nor decode encoded words, parse
address lists or mail dates. These helpers do it with the standard library's mail parsers so
every engine gets the same answer (JMAP-shaped: ``[{name, email}]``, ids without brackets,
``sentAt`` with the sender's offset). The MIME body walk lives in :mod:`.mime`.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from datetime import UTC
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from functools import lru_cache

import orjson

from engine.canon.helpers import JSON
from engine.canon.helpers.addrlist import QUOTED_PAIR, mailboxes
from engine.canon.helpers.dates import format_utc, utc

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_FOLDING = re.compile(r"\r?\n[ \t]+")


# --------------------------------------------------------------------------- headers


def header(headers: JSON, name: JSON) -> str | None:
    """The first value of header ``name`` (case-insensitive) in ``[{name, value}]``, or null.

    Gmail keeps the sender's casing (``Message-Id``, ``CC``), so exact matching loses data.
    """
    if not isinstance(name, str):
        return None
    wanted = name.lower()
    for item in _header_items(headers):
        if item[0] == wanted:
            return item[1]
    return None


def header_all(headers: JSON, name: JSON) -> list[str]:
    """Every value of header ``name`` (case-insensitive), in order; ``[]`` when absent."""
    if not isinstance(name, str):
        return []
    wanted = name.lower()
    return [value for key, value in _header_items(headers) if key == wanted]


def header_map(headers: JSON) -> dict[str, list[str]]:
    """``{lower-case name: [values...]}`` of a ``[{name, value}]`` list (one pass for many lookups)."""
    out: dict[str, list[str]] = {}
    for key, value in _header_items(headers):
        out.setdefault(key, []).append(value)
    return out


def _header_items(headers: JSON) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs of a Gmail header list; odd entries are skipped."""
    if isinstance(headers, dict):  # a single header (JSONata singleton) arrives unwrapped
        headers = [headers]
    if not isinstance(headers, list):
        return []
    items: list[tuple[str, str]] = []
    for entry in headers:
        if not isinstance(entry, dict):
            continue
        key, value = entry.get("name"), entry.get("value")
        if isinstance(key, str) and isinstance(value, str):
            items.append((key.strip().lower(), value))
    return items


# --------------------------------------------------------------------------- RFC 2047 / addresses


def decode_words(text: JSON) -> str | None:
    """Decode RFC 2047 encoded words (``=?UTF-8?B?...?=``) and unfold; null for non-strings.

    Text without encoded words is returned unfolded but otherwise unchanged. An encoded word
    in an unknown charset or with broken base64 is kept verbatim rather than dropped.
    """
    if not isinstance(text, str):
        return None
    unfolded: str = _FOLDING.sub(" ", text)
    if "=?" not in unfolded or not _ENCODED_WORD.search(unfolded):
        return unfolded
    return _decode_encoded_words(unfolded)


@lru_cache(maxsize=8192)
def _decode_encoded_words(text: str) -> str:
    """RFC 2047 decoding proper; cached because subjects and names repeat (pure function)."""
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, ValueError, UnicodeError, binascii.Error, AssertionError):
        return text


def addresses(text: JSON) -> list[dict[str, str | None]] | None:
    """Parse an address-list header into JMAP ``[{name, email}]``; null when ``text`` is null.

    An RFC 5322 address-list parser of its own (:func:`.addrlist.mailboxes`): quoted display names may
    hold commas (``"Doe, Jane" <jane@x.org>``), the address of ``name <addr>`` is only what the
    brackets hold; encoded words in names are decoded; emails are trimmed and their ASCII
    letters lower-cased (for matching across sources); an empty name becomes null. A bare word
    that only exists because of an unquoted comma (``Doe, Jane <jane@x.org>``) is glued back
    onto the following display name. Group syntax with no members (``undisclosed-recipients:;``)
    yields no entry.
    """
    if isinstance(text, list):  # several headers of the same name: one list
        text = ", ".join(t for t in text if isinstance(t, str))
    if not isinstance(text, str):
        return None
    return [{"name": name, "email": email} for name, email in _parse_addresses(text)]


@lru_cache(maxsize=8192)
def _parse_addresses(text: str) -> tuple[tuple[str | None, str], ...]:
    """(name, email) pairs of an address list; cached because senders repeat (pure function)."""
    out: list[tuple[str | None, str]] = []
    carry: str | None = None
    unfolded, words = _hide_encoded_words(_FOLDING.sub(" ", text))
    for raw_name, raw_email in mailboxes(unfolded):
        name = _clean_name(_show_encoded_words(raw_name, words))
        email = _show_encoded_words(raw_email, words).strip()
        if email and "@" not in email and not name:
            # "Doe, Jane <jane@x.org>" unquoted parses as ("", "Doe") + ("Jane", "jane@x.org")
            carry = email if carry is None else f"{carry}, {email}"
            continue
        if carry is not None:
            if name and email:
                name = f"{carry}, {name}"
            else:
                out.append((None, ascii_lower(carry)))
            carry = None
        if not email:
            continue
        out.append((name, ascii_lower(email)))
    if carry is not None:
        out.append((None, ascii_lower(carry)))
    return tuple(out)


def _hide_encoded_words(text: str) -> tuple[str, list[str]]:
    """Encoded words as opaque tokens while the list is parsed: an encoded word is one atom
    of a display name, whatever it holds (a broken or hostile sender's ``=?utf-8?Q?Bob_<bob@x>?=``
    must not give ``bob@x`` as the address)."""
    words: list[str] = []
    if "=?" not in text:
        return text, words

    def hide(m: re.Match[str]) -> str:
        words.append(m.group(0))
        return f"\x00{len(words) - 1}\x00"

    return _ENCODED_WORD.sub(hide, text.replace("\x00", "")), words


def _show_encoded_words(text: str, words: list[str]) -> str:
    if not words or "\x00" not in text:
        return text
    return re.sub(r"\x00(\d+)\x00", lambda m: words[int(m.group(1))], text)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def email_address(text: JSON) -> str | None:
    """One address as sources write it: trimmed, ASCII letters lower-cased, nothing else
    (``$lowercase`` turns the Kelvin sign into ``k``: a look-alike of another mailbox);
    ``null`` for anything but text."""
    return ascii_lower(text.strip()) if isinstance(text, str) else None


def ascii_lower(text: str) -> str:
    """ASCII letters lower-cased, nothing else: ``str.lower`` turns the Kelvin sign into
    ``k`` and so one mailbox into another's look-alike (engine/clients/keys.py)."""
    return text.translate(_ASCII_LOWER)


def _clean_name(raw: str) -> str | None:
    name = decode_words(raw) or ""
    name = " ".join(name.split())
    if len(name) >= 2 and name[0] == name[-1] == '"':  # a quoted string: its quoted pairs unescaped
        name = QUOTED_PAIR.sub(r"\1", name[1:-1]).strip()
    elif len(name) >= 2 and name[0] == name[-1] == "'":
        name = name[1:-1].strip()
    return name or None


def msg_id(text: JSON) -> list[str] | None:
    """Message ids of a Message-ID / In-Reply-To / References header, without angle brackets.

    ``"<a@x> <b@y>"`` -> ``["a@x", "b@y"]``; ids without brackets are accepted (split on
    whitespace and commas). Null when the header is missing or holds no id (JMAP semantics).
    """
    if isinstance(text, list):
        text = " ".join(t for t in text if isinstance(t, str))
    if not isinstance(text, str):
        return None
    found = _ANGLE_ID.findall(text)
    ids = [i.strip() for i in found] if found else text.replace(",", " ").split()
    ids = [i for i in ids if i and not i.startswith("(")]
    return ids or None


def mail_key(message_ids: JSON, sender: JSON, sent_at: JSON, subject: JSON) -> str | None:
    """The cross-account dedupe key of a message, or null when nothing tells it apart.

    The first Message-ID, trimmed, without brackets, lower-cased; when there is none,
    ``"sha256:"`` + hex sha256 of ``[from emails (lower-case), sentAt (UTC), subject
    (whitespace-collapsed)]`` as JSON, but only with a sender and a sent time: without them
    (a draft, a Gmail ``minimal`` record) every such message would share one key and
    ``query --dedupe`` would show one of them. ``message_ids`` may be a list (``messageId``)
    or a raw header string; ``sender`` a JMAP address list or a plain string.
    """
    ids = message_ids if isinstance(message_ids, list) else msg_id(message_ids)
    if ids:
        first = ids[0]
        if isinstance(first, str) and first.strip():
            return first.strip().strip("<>").strip().lower()
    emails: list[str] = []
    if isinstance(sender, list):
        for item in sender:
            if isinstance(item, dict) and isinstance(item.get("email"), str):
                emails.append(item["email"].strip().lower())
            elif isinstance(item, str):
                emails.append(item.strip().lower())
    elif isinstance(sender, str):
        emails.append(sender.strip().lower())
    when = utc(sent_at) if isinstance(sent_at, str) else None
    if not emails or when is None:
        return None
    subj = " ".join(subject.split()) if isinstance(subject, str) else None
    return "sha256:" + hashlib.sha256(orjson.dumps([emails, when, subj])).hexdigest()


# --------------------------------------------------------------------------- Date header


_FOUR_DIGIT_YEAR = re.compile(r"(?<![\d+-])(\d{4,})(?!\d)")
"""The year of a Date header: the one number of four or more digits not signed (a zone)."""


def mail_date(text: JSON) -> dict[str, str] | None:
    """Parse an RFC 2822/5322 ``Date`` header: ``{"utc", "offset", "local"}`` or null.

    ``utc`` is ``YYYY-MM-DDTHH:MM:SSZ``; ``offset`` the sender's ``+HH:MM``; ``local`` the
    sender's wall time with that offset (JMAP ``sentAt``). Obsolete zones (``EST``, ``PDT``,
    ``GMT``, ``UT``) and trailing comments (``-0700 (PDT)``, ``+0000 (UTC)``) are understood;
    ``-0000`` or an unknown zone name means "UTC, local zone unknown" and gives offset
    ``-00:00`` (RFC 3339's notation for exactly that). Missing or malformed dates give null.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        parsed = parsedate_to_datetime(_FOLDING.sub(" ", text).strip())
        year = _FOUR_DIGIT_YEAR.search(text)
        if year is not None and int(year.group(1)) != parsed.year:
            return None  # "0001" or "0099" read as 2001 / 1999: the two-digit rule is for 2-3 digits
        if parsed.tzinfo is None:  # -0000 or an unknown zone: UTC, local offset unknown
            moment = parsed.replace(tzinfo=UTC)
            local = parsed.isoformat() + "-00:00"
        else:
            moment = parsed.astimezone(UTC)
            local = parsed.isoformat()
    except Exception:  # noqa: BLE001 - ValueError, TypeError, IndexError, OverflowError...
        return None
    return {"utc": format_utc(moment), "offset": local[-6:], "local": local}
