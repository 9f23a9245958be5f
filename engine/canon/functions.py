"""Helper functions registered into every JSONata transform (``$mimeBody(payload)`` etc.).

Why they exist: JSONata has no charset-aware base64url decoder, no RFC 5322 address or date
parser, no RFC 2047 decoder and no exact decimal type, and the engines disagree on the
built-ins that come closest (``$base64decode`` decodes as Latin-1 in the reference engine and
as UTF-8 in jsonatapy). Doing that work in Python, with the standard library's mail parsers,
makes the transforms' results independent of the engine and lets the transforms stay short,
declarative mappings. It is also faster: the JSONata spellings of this work (regex,
``$fromMillis``, ``**`` descent over MIME trees) are the slowest paths of every engine.

Contract of every helper (tests hold them to it):

* **Pure and deterministic**: the output depends only on the arguments (no clock, no locale,
  no randomness, no I/O), so the same record always canonizes to the same bytes.
* **JSON in, JSON out**: arguments arrive as positional JSON values (``None`` for JSONata's
  ``null`` *and* for an undefined/missing argument); results are JSON values.
* **Never raises on odd input**: a value that cannot be interpreted gives ``None`` (JSON
  ``null``) and, where the caller needs to know, a flag (``encodingProblem``). An exception
  here would reject the whole record as ``TRANSFORM_FAILED``; odd data is not a failure.
* **Fast**: called once or a few times per record; no regex compiled per call.

Names must not collide with JSONata built-ins (jsonatapy refuses such a registration).
``FUNCTIONS`` maps each ``$name`` to its implementation; ``docs/transforms.md`` lists them
with signatures and examples.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson

JSON = Any
"""A JSON value as Python sees it (dict, list, str, int, float, bool or None)."""

PREVIEW_MAX = 256
"""JMAP (RFC 8621 §4.1.4): a preview is at most 256 characters."""

_LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1"})
_CHARSET_ALIASES = {"utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "cp-1252": "cp1252"}
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_SPACES = re.compile(r"[ \t\f\v\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_FOLDING = re.compile(r"\r?\n[ \t]+")
_DIGITS = re.compile(r"\d")
_ISO_FRACTION = re.compile(r"(\.\d+)")


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

    Uses :func:`email.utils.getaddresses`, so quoted display names may hold commas
    (``"Doe, Jane" <jane@x.org>``); encoded words in names are decoded; emails are trimmed
    and lower-cased (for matching across sources); an empty name becomes null. A bare word
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
    try:
        pairs = getaddresses([_FOLDING.sub(" ", text)])
    except Exception:  # noqa: BLE001 - the parser may trip on hostile input; never raise
        return ()
    out: list[tuple[str | None, str]] = []
    carry: str | None = None
    for raw_name, raw_email in pairs:
        name = _clean_name(raw_name)
        email = raw_email.strip()
        if email and "@" not in email and not name:
            # "Doe, Jane <jane@x.org>" unquoted parses as ("", "Doe") + ("Jane", "jane@x.org")
            carry = email if carry is None else f"{carry}, {email}"
            continue
        if carry is not None:
            if name and email:
                name = f"{carry}, {name}"
            else:
                out.append((None, carry.lower()))
            carry = None
        if not email:
            continue
        out.append((name, email.lower()))
    if carry is not None:
        out.append((None, carry.lower()))
    return tuple(out)


def _clean_name(raw: str) -> str | None:
    name = decode_words(raw) or ""
    name = " ".join(name.split())
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
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


def mail_key(message_ids: JSON, sender: JSON, sent_at: JSON, subject: JSON) -> str:
    """The cross-account dedupe key of a message.

    The first Message-ID, trimmed, without brackets, lower-cased; when there is none,
    ``"sha256:"`` + hex sha256 of ``[from emails (lower-case), sentAt (UTC), subject
    (whitespace-collapsed)]`` as JSON. ``message_ids`` may be a list (``messageId``) or a raw
    header string; ``sender`` a JMAP address list or a plain string.
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
    subj = " ".join(subject.split()) if isinstance(subject, str) else None
    return "sha256:" + hashlib.sha256(orjson.dumps([emails, when, subj])).hexdigest()


# --------------------------------------------------------------------------- dates


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
        if parsed.tzinfo is None:  # -0000 or an unknown zone: UTC, local offset unknown
            moment = parsed.replace(tzinfo=UTC)
            local = parsed.isoformat() + "-00:00"
        else:
            moment = parsed.astimezone(UTC)
            local = parsed.isoformat()
    except Exception:  # noqa: BLE001 - ValueError, TypeError, IndexError, OverflowError...
        return None
    return {"utc": _format_utc(moment), "offset": local[-6:], "local": local}


def _wall(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (four-digit years even before 1000, unlike ``strftime``)."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def _format_utc(moment: datetime) -> str:
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


def utc(text: JSON) -> str | None:
    """Normalise an ISO 8601 / RFC 3339 timestamp to UTC ``YYYY-MM-DDTHH:MM:SS[.mmm]Z``.

    Offsets are applied (``2024-03-05T01:15:02-08:00`` -> ``2024-03-05T09:15:02Z``); fractions
    of any length are cut to milliseconds; a timestamp without an offset is taken as UTC
    (Graph and Dataverse write UTC). A date-only value is returned unchanged (never shifted:
    Dataverse ``DateOnly`` and QBO ``TxnDate`` are calendar dates). Null when unparseable.
    """
    if not isinstance(text, str):
        return None
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
        moment = moment.replace(tzinfo=UTC)
    try:
        return _format_utc(moment.astimezone(UTC))
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
    if not isinstance(text, str) or len(text.strip()) < 10:
        return None
    value = text.strip()[:10]
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def sheets_date(value: JSON) -> str | None:
    """A Google Sheets date cell to ``YYYY-MM-DD``: a serial number (days since 1899-12-30,
    25569 = 1970-01-01; as a number or a numeric string; the fraction, a time of day, is
    dropped), an ISO date, or a US ``M/D/YYYY`` formatted value; else null. Serial numbers have
    no zone: they are the spreadsheet's local calendar day and are never shifted."""
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
        return sheets_date(serial) if 0 < serial < 2_958_466 else None
    iso = iso_date(text) if len(text) == 10 and text[4:5] == "-" else None
    if iso:
        return iso
    parts = text.split("/")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        month, day, year = (int(p) for p in parts)
        if year < 100:
            year += 2000 if year < 70 else 1900
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- MIME bodies


def b64url_bytes(data: JSON) -> bytes | None:
    """Decode base64url (or standard base64), with or without padding; None when invalid."""
    if not isinstance(data, str):
        return None
    text = "".join(data.split()).replace("+", "-").replace("/", "_").rstrip("=")
    if len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def decode_bytes(raw: bytes, charset: str | None) -> tuple[str, bool]:
    """Bytes to text in ``charset``; (text, encoding_problem).

    No charset: UTF-8. ``iso-8859-1`` is read as windows-1252 (as browsers and mail clients
    do: mislabelled smart quotes), falling back to true Latin-1. An unknown charset or bytes
    invalid in the declared one fall back to UTF-8 with U+FFFD replacement and are flagged.
    """
    label = (charset or "utf-8").strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    if label in _LATIN1_LABELS:
        try:
            return raw.decode("cp1252"), False
        except UnicodeDecodeError:
            return raw.decode("latin-1"), False
    try:
        codec = codecs.lookup(label).name
    except LookupError:
        codec = ""
    if codec:
        try:
            return raw.decode(codec), False
        except UnicodeDecodeError:
            pass
        except Exception:  # noqa: BLE001 - exotic codecs can raise other errors
            pass
    return raw.decode("utf-8", errors="replace"), True


class _Part:
    """One MessagePart with its headers read once (lower-case names, first value wins)."""

    __slots__ = ("raw", "ctype", "params", "headers", "children")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        headers: dict[str, str] = {}
        entries = raw.get("headers")
        for entry in entries if isinstance(entries, list) else ():
            # only Content-* headers matter here; skip the rest without lower-casing them
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name.lstrip()[:8].lower() == "content-":
                value = entry.get("value")
                if isinstance(value, str):
                    headers.setdefault(name.strip().lower(), value)
        self.headers = headers
        self.params: dict[str, str] = {}
        ctype = ""
        content_type = headers.get("content-type")
        if content_type:
            pieces = content_type.split(";")
            ctype = pieces[0].strip().lower()
            for piece in pieces[1:]:
                key, sep, value = piece.partition("=")
                if sep:
                    self.params[key.strip().lower()] = value.strip().strip("\"'")
        mime = raw.get("mimeType")
        if isinstance(mime, str) and mime.strip():
            ctype = mime.strip().lower()
        self.ctype = ctype
        parts = raw.get("parts")
        self.children = [c for c in parts if isinstance(c, dict)] if isinstance(parts, list) else []

    @property
    def body(self) -> dict[str, Any]:
        body = self.raw.get("body")
        return body if isinstance(body, dict) else {}

    @property
    def attachment_id(self) -> str | None:
        value = self.body.get("attachmentId")
        return value if isinstance(value, str) and value else None

    @property
    def disposition(self) -> str | None:
        raw = self.headers.get("content-disposition")
        return (raw.split(";")[0].strip().lower() or None) if raw else None

    @property
    def part_id(self) -> str | None:
        value = self.raw.get("partId")
        return value if isinstance(value, str) else None

    def is_attachment(self) -> bool:
        if self.attachment_id or self.disposition == "attachment":
            return True
        filename = self.raw.get("filename")
        if isinstance(filename, str) and filename.strip():
            return True
        return self.ctype not in ("", "text/plain", "text/html")

    def attachment(self) -> dict[str, Any]:
        size = self.body.get("size")
        filename = self.raw.get("filename")
        cid = self.headers.get("content-id")
        return {
            "partId": self.part_id,
            "filename": decode_words(filename) if isinstance(filename, str) and filename else None,
            "mimeType": self.ctype or None,
            "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
            "attachmentId": self.attachment_id,
            "disposition": self.disposition,
            "cid": (cid.strip().strip("<>").strip() or None) if cid else None,
        }

    def decode(self) -> tuple[str | None, bool]:
        """(text, encoding_problem) of a body part; (None, False) when it carries no data."""
        data = self.body.get("data")
        if not isinstance(data, str) or not data:
            return None, False
        raw = b64url_bytes(data)
        if raw is None:
            return None, True
        text, problem = decode_bytes(raw, self.params.get("charset"))
        return text.replace("\r\n", "\n"), problem


class _MimeWalk:
    """Collects body parts and attachments of a Gmail MessagePart tree (JMAP-style).

    multipart/alternative: the text/plain body comes from the first alternative that has one,
    the HTML body from the last alternative that has one. multipart/related: the first child is
    the body, the others are inline resources (attachments). Other multiparts (mixed, signed,
    report, digest...): every child in order. A message/rfc822 part whose content Gmail parsed
    (it has ``parts``) is walked as part of the body, so forwarded text is searchable; one that
    Gmail kept as a blob (``attachmentId``) is an attachment.
    """

    MAX_DEPTH = 40

    def __init__(self) -> None:
        self.text: list[_Part] = []
        self.html: list[_Part] = []
        self.attachments: list[dict[str, Any]] = []

    def walk(self, raw: JSON, depth: int = 0) -> None:
        if not isinstance(raw, dict) or depth > self.MAX_DEPTH:
            return
        part = _Part(raw)
        ctype, children = part.ctype, part.children
        if ctype.startswith("multipart/") or (children and not ctype.startswith("message/")):
            self._multipart(ctype, children, depth)
        elif ctype == "message/rfc822" and children and not part.attachment_id:
            for child in children:
                self.walk(child, depth + 1)
        elif part.is_attachment():
            self.attachments.append(part.attachment())
        elif ctype == "text/html":
            self.html.append(part)
        else:  # text/plain, or no type at all (RFC 2045 default)
            self.text.append(part)

    def _multipart(self, ctype: str, children: list[dict[str, Any]], depth: int) -> None:
        if ctype == "multipart/alternative":
            picks = []
            for child in children:
                sub = _MimeWalk()
                sub.walk(child, depth + 1)
                picks.append(sub)
            text_pick = next((p for p in picks if p.text), None)
            html_pick = next((p for p in reversed(picks) if p.html), None)
            if text_pick:
                self.text.extend(text_pick.text)
            if html_pick:
                self.html.extend(html_pick.html)
            for pick in picks:  # attachments inside any alternative (e.g. related images)
                self.attachments.extend(pick.attachments)
            return
        if ctype == "multipart/related" and children:
            self.walk(children[0], depth + 1)
            for child in children[1:]:
                sub = _MimeWalk()
                sub.walk(child, depth + 1)
                self.attachments.extend(sub.attachments)
                self.attachments.extend(body.attachment() for body in sub.text + sub.html)
            return
        for child in children:
            self.walk(child, depth + 1)


def mime_body(payload: JSON) -> dict[str, Any]:
    """Walk a Gmail ``MessagePart`` tree; return the decoded bodies and the attachments.

    Result: ``{"text", "html", "textPartId", "htmlPartId", "textFromHtml", "attachments",
    "encodingProblem"}``. ``text`` is the text/plain body (several inline text parts joined by
    a blank line) or, when the message has only HTML, the HTML converted to text
    (``textFromHtml`` true, ``textPartId`` the HTML part). ``html`` is the HTML body or null.
    Bodies are decoded from base64url (padding optional) with the part's Content-Type charset;
    undecodable data sets ``encodingProblem``. Attachments are
    ``[{partId, filename, mimeType, size, attachmentId, disposition, cid}]``. A single-part
    message has its body in ``payload.body.data`` and no ``parts``: handled the same way.
    """
    result: dict[str, Any] = {
        "text": None,
        "html": None,
        "textPartId": None,
        "htmlPartId": None,
        "textFromHtml": False,
        "attachments": [],
        "encodingProblem": False,
    }
    if not isinstance(payload, dict):
        return result
    walker = _MimeWalk()
    walker.walk(payload)
    problem = False
    texts: list[str] = []
    for part in walker.text:
        value, bad = part.decode()
        problem = problem or bad
        if value is not None:
            texts.append(value)
            if result["textPartId"] is None:
                result["textPartId"] = part.part_id
    htmls: list[str] = []
    for part in walker.html:
        value, bad = part.decode()
        problem = problem or bad
        if value is not None:
            htmls.append(value)
            if result["htmlPartId"] is None:
                result["htmlPartId"] = part.part_id
    if htmls:
        result["html"] = "\n".join(htmls)
    if texts:
        result["text"] = "\n\n".join(t.strip("\n") for t in texts)
    elif htmls:
        result["text"] = html_to_text(result["html"])
        result["textPartId"] = result["htmlPartId"]
        result["textFromHtml"] = True
    result["attachments"] = walker.attachments
    result["encodingProblem"] = problem
    return result


# --------------------------------------------------------------------------- text


_BLOCK_TAGS = frozenset(
    "address article aside dd div dl dt fieldset figcaption figure footer form header hr li "
    "main nav ol section tbody thead tfoot tr ul".split()
)
_PARAGRAPH_TAGS = frozenset("p h1 h2 h3 h4 h5 h6 blockquote pre table".split())
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


class _TextExtractor(HTMLParser):
    """Text of an HTML document. Whitespace in the source is collapsed as a browser does;
    line breaks come only from ``<br>`` (one each) and block boundaries (coalesced: one line
    break for div/li/tr..., a blank line for p/h1-h6/blockquote/pre/table)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip = 0
        self.pre = 0
        self.breaks = 2  # line breaks at the end of the output; the start counts as a paragraph

    def _ensure(self, breaks: int) -> None:
        if self.breaks < breaks:
            self.chunks.append("\n" * (breaks - self.breaks))
            self.breaks = breaks

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self.chunks.append("\n")
            self.breaks += 1
        elif tag in _PARAGRAPH_TAGS:
            self._ensure(2)
            self.pre += tag == "pre"
        elif tag in _BLOCK_TAGS:
            self._ensure(1)
        elif tag in ("td", "th") and self.breaks == 0:
            self.chunks.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _PARAGRAPH_TAGS:
            self.pre = max(0, self.pre - (tag == "pre"))
            self._ensure(2)
        elif tag in _BLOCK_TAGS:
            self._ensure(1)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = data if self.pre else _HTML_SPACE.sub(" ", data)
        if self.breaks and not self.pre:
            text = text.lstrip(" ")
        if text:
            self.chunks.append(text)
            self.breaks = len(text) - len(text.rstrip("\n")) if self.pre else 0


def html_to_text(html: JSON) -> str | None:
    """HTML to readable plain text: tags dropped, entities decoded, ``<br>`` and block elements
    as line breaks, ``<script>``/``<style>``/``<head>`` removed, runs of spaces collapsed and
    lines trimmed (``<pre>`` keeps its line breaks, not its indentation). Null for non-strings."""
    if not isinstance(html, str):
        return None
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser is lenient, but never raise
        return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split()) or None
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(parser.chunks).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def preview(text: JSON) -> str | None:
    """At most 256 characters of ``text`` with all whitespace collapsed to single spaces."""
    if not isinstance(text, str):
        return None
    collapsed = " ".join(text.split())
    return collapsed[:PREVIEW_MAX].rstrip()


def unescape_html(text: JSON) -> str | None:
    """Decode HTML character references (Gmail's ``snippet`` is HTML-escaped: ``&#39;``)."""
    if not isinstance(text, str):
        return None
    return unescape(text)


# --------------------------------------------------------------------------- numbers, ids


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
        text = repr(value)
    elif isinstance(value, str):
        text = _money_text(value)
    else:
        return None
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
    """``"$1,234.50"`` -> ``"1234.50"``; ``"($5.00)"`` and ``"-$5.00"`` -> ``"-5.00"``."""
    text = value.strip().replace(",", "").replace(" ", "").replace("\u00a0", "")
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    if text.startswith("-"):
        negative, text = True, text[1:]
    text = text.lstrip("$€£¥").rstrip("$€£¥")
    return f"-{text}" if negative else text


def e164(phone: JSON, region: JSON = None) -> str | None:
    """A phone number in E.164 (``+12125550101``) for matching, or null when not plausible.

    North American numbers (default region ``"US"``/``"CA"``): 10 digits, or 11 starting with
    1. A number written with ``+`` keeps its country code (8-15 digits). Extensions
    (``x123``, ``ext. 5``) are dropped. Other regions without ``+`` are not guessed (null).
    """
    if not isinstance(phone, str):
        return None
    text = phone.strip().lower()
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


@lru_cache(maxsize=1)
def helpers_sha256() -> str:
    """sha256 of this module's source: transforms' output depends on it as much as on their
    own text, so provenance that proves "nothing changed" should include it."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "mimeBody": mime_body,
    "header": header,
    "headerAll": header_all,
    "headerMap": header_map,
    "addresses": addresses,
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

