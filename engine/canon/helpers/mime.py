"""MIME body helpers: walk a Gmail ``MessagePart`` tree into bodies and attachments.

Why this module exists: JSONata has no charset-aware base64url decoder (``$base64decode``
decodes as Latin-1 in the reference engine and as UTF-8 in jsonatapy), and its ``**`` descent
over MIME trees is the slowest path of every engine. ``$mimeBody`` picks the text and HTML
bodies JMAP-style (multipart/alternative, related, rfc822), decodes them with the declared
charset, flags undecodable data instead of raising, and lists the attachments.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from typing import Any

from engine.canon.helpers import JSON
from engine.canon.helpers.mail import decode_words
from engine.canon.helpers.text import html_to_text

_LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1"})
_CHARSET_ALIASES = {"utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "cp-1252": "cp1252",
                    # what mail clients send under these labels (the WHATWG encoding table):
                    # GBK text labelled gb2312; the "implicit" bidi Hebrew and Arabic
                    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "csgb2312": "gb18030",
                    "iso-8859-8-i": "iso-8859-8", "iso-8859-6-i": "iso-8859-6",
                    "iso-8859-8-e": "iso-8859-8", "iso-8859-6-e": "iso-8859-6"}


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
            try:  # mislabelled UTF-8 (a web form's mailer says us-ascii): the text as it was sent
                return raw.decode("utf-8"), True
            except UnicodeDecodeError:
                pass
            try:  # a few bad bytes: the rest is still that charset's text
                return raw.decode(codec, errors="replace"), True
            except Exception:  # noqa: BLE001 - exotic codecs can raise other errors
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
                    key, value = key.strip().lower(), value.strip().strip("\"'")
                    if key.endswith("*"):  # RFC 2231: charset*=iso-8859-1'' (charset'language'value)
                        key = key[:-1]
                        bits = value.split("'", 2)
                        value = (bits[2] or bits[0]) if len(bits) == 3 else value
                    self.params.setdefault(key, value)
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
