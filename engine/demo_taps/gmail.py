"""Demo Gmail tap: ``users.messages`` in ``format=full``, as MeltanoLabs/tap-gmail emits them.

One stream, ``messages``. Payloads mix the MIME shapes a parser must walk: single-part
text/plain, multipart/alternative, multipart/mixed with a PDF attachment (``attachmentId``,
no ``data``) and multipart/related with an inline image. Header names keep the sender's
casing (``Message-Id``, ``CC``, ``subject``), some messages lack ``Message-ID`` or ``Date``,
bodies are base64url without padding in their declared charset (UTF-8 or ISO-8859-1), and
every tenth message is a cross-account duplicate (see ``mail.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.demo_taps.common import b64url, derive, mix64, rfc2822, token
from engine.demo_taps.mail import ZONES, Body, Mail, MailSource, owner_party
from engine.demo_taps.spec import (
    Record,
    StreamPlan,
    TapContext,
    TapPlan,
    array,
    integer,
    make_plan,
    obj,
    stream_schema,
    string,
)

_HEADER = obj(name=string(), value=string())
_PART: Record = obj(
    partId=string(), mimeType=string(), filename=string(), headers=array(_HEADER),
    body=obj(size=integer(), data=string(), attachmentId=string()),
    parts=array({"type": ["object", "null"]}),
)
SCHEMA = stream_schema({
    "id": string(False), "threadId": string(), "labelIds": array(string(False)),
    "snippet": string(), "sizeEstimate": integer(), "historyId": string(),
    "internalDate": string(), "payload": _PART,
})

_INCOMING_LABELS = [
    ["INBOX", *unread, *important, category]
    for unread in ([], ["UNREAD"])
    for important in ([], ["IMPORTANT"])
    for category in ("CATEGORY_PERSONAL", "CATEGORY_UPDATES")
] + [["INBOX", "Label_3", "CATEGORY_PERSONAL"], ["Label_7", "CATEGORY_FORUMS"]]
_OUTGOING_LABELS = [["SENT"], ["SENT", "IMPORTANT"]]
# 16 slots: 5 single-part, 6 alternative, 3 mixed with a PDF, 2 related with an image.
_STRUCTURES = (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3)
_ATTACHMENTS = 64
"""Attachment parts are drawn from a per-mailbox pool of this many (cheap and deterministic)."""


def _h(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _text_type(mime: str, charset: str) -> str:
    quoted = f'"{charset}"' if charset.lower() == "utf-8" else charset
    return f"{mime}; charset={quoted}"


@dataclass(slots=True)
class _Parts:
    """A body's MIME parts, built once per body and shared by every message using it."""

    single_body: dict[str, Any]
    text_type: str
    plain: dict[str, Any]
    html: dict[str, Any]
    alternative: dict[str, Any]
    size: int


def _leaf(part_id: str, mime: str, charset: str, data: bytes) -> dict[str, Any]:
    return {
        "partId": part_id, "mimeType": mime, "filename": "",
        "headers": [
            _h("Content-Type", _text_type(mime, charset)),
            _h("Content-Transfer-Encoding", "quoted-printable"),
        ],
        "body": {"size": len(data), "data": b64url(data)},
    }


def _build_parts(body: Body, boundary: str) -> _Parts:
    alternative = {
        "partId": "0", "mimeType": "multipart/alternative", "filename": "",
        "headers": [_h("Content-Type", f'multipart/alternative; boundary="{boundary}"')],
        "body": {"size": 0},
        "parts": [
            _leaf("0.0", "text/plain", body.charset, body.text_bytes),
            _leaf("0.1", "text/html", body.charset, body.html_bytes),
        ],
    }
    return _Parts(
        single_body={"size": len(body.text_bytes), "data": b64url(body.text_bytes)},
        text_type=_text_type("text/plain", body.charset),
        plain=_leaf("0", "text/plain", body.charset, body.text_bytes),
        html=_leaf("1", "text/html", body.charset, body.html_bytes),
        alternative=alternative,
        size=len(body.text_bytes) + len(body.html_bytes),
    )


def _attachment(h: int, inline: bool) -> dict[str, Any]:
    size = 20_000 + (h >> 8) % 400_000
    if inline:
        name, mime, disposition = "image001.png", "image/png", "inline"
        cid = f"ii_{h % 10**12:x}"
    else:
        name = f"superbill-{h % 100_000:05d}.pdf"
        mime, disposition, cid = "application/pdf", "attachment", f"f_{h % 10**12:x}"
    return {
        "partId": "1", "mimeType": mime, "filename": name,
        "headers": [
            _h("Content-Type", f'{mime}; name="{name}"'),
            _h("Content-Disposition", f'{disposition}; filename="{name}"'),
            _h("Content-Transfer-Encoding", "base64"),
            _h("Content-ID", f"<{cid}>"),
            _h("X-Attachment-Id", cid),
        ],
        "body": {"attachmentId": "ANGjdJ" + token(h, 90), "size": size},
    }


class GmailMessages:
    """Record factory for the ``messages`` stream of one mailbox."""

    def __init__(self, ctx: TapContext) -> None:
        self.owner = owner_party(ctx)
        self.source = MailSource(ctx, self.owner)
        self.id_base = 0x18A0000000000000 + (ctx.key("gmail-id") % (1 << 48)) * 16
        self.history_base = 1_000_000 + ctx.key("history") % 9_000_000
        self.thread_key = ctx.key("threads")
        self.parts: dict[int, _Parts] = {}
        key = ctx.key("attachments")
        self.pdfs = [_attachment(mix64(key ^ n), inline=False) for n in range(_ATTACHMENTS)]
        self.images = [_attachment(mix64(key ^ ~n), inline=True) for n in range(_ATTACHMENTS)]
        self.fixed_headers = [_h("Delivered-To", self.owner.address), _h("MIME-Version", "1.0")]

    def _parts_for(self, body: Body) -> _Parts:
        parts = self.parts.get(id(body))
        if parts is None:
            boundary = f"{derive(body.text) & 0xFFFFFFFFFFFF:012x}"
            parts = self.parts[id(body)] = _build_parts(body, boundary)
        return parts

    def _headers(self, mail: Mail, h: int) -> list[dict[str, str]]:
        headers = self.fixed_headers.copy()
        if mail.zone >= 0:
            label, offset = ZONES[mail.zone]
            headers.append({"name": "Date", "value": rfc2822(mail.sent, offset, label)})
        if mail.message_id is not None:
            name = "Message-Id" if h & 1 else "Message-ID"
            headers.append({"name": name, "value": mail.message_id})
        name = "subject" if (h >> 1) % 16 == 0 else "Subject"
        headers.append({"name": name, "value": mail.subject_header})
        headers.append({"name": "From", "value": mail.sender.header})
        headers.append({"name": "To", "value": ", ".join([p.header for p in mail.to])})
        if mail.cc:
            cc = ", ".join([p.header for p in mail.cc])
            headers.append({"name": "CC" if h & 4 else "Cc", "value": cc})
        return headers

    def _payload(self, mail: Mail, h: int, structure: int) -> tuple[dict[str, Any], int]:
        parts = self._parts_for(mail.body)
        headers = self._headers(mail, h)
        if structure == 0:
            headers.append({"name": "Content-Type", "value": parts.text_type})
            headers.append({"name": "Content-Transfer-Encoding", "value": "quoted-printable"})
            payload = {
                "partId": "", "mimeType": "text/plain", "filename": "", "headers": headers,
                "body": parts.single_body,
            }
            return payload, parts.size // 2
        if structure == 1:
            mime, children, extra = "multipart/alternative", [parts.plain, parts.html], 0
        else:
            pool = self.pdfs if structure == 2 else self.images
            attachment = pool[(h >> 20) % _ATTACHMENTS]
            mime = "multipart/mixed" if structure == 2 else "multipart/related"
            children, extra = [parts.alternative, attachment], attachment["body"]["size"]
        boundary = '"000000000000' + hex(h & 0xFFFFFFFFFFFF)[2:] + '"'
        headers.append({"name": "Content-Type", "value": mime + "; boundary=" + boundary})
        payload = {
            "partId": "", "mimeType": mime, "filename": "", "headers": headers,
            "body": {"size": 0}, "parts": children,
        }
        return payload, parts.size + extra

    def message(self, i: int) -> Record:
        """The raw Gmail message at mailbox index ``i``."""
        mail, h = self.source.at(i)
        structure = 1 if i == 0 else _STRUCTURES[(h >> 12) & 15]
        payload, size = self._payload(mail, h, structure)
        root = i
        block = i // 3
        if ((block * 0x9E3779B97F4A7C15) ^ self.thread_key) >> 31 & 1:
            root = block * 3
        if mail.outgoing:
            labels = _OUTGOING_LABELS[(h >> 5) & 1]
        else:
            labels = _INCOMING_LABELS[(h >> 6) % len(_INCOMING_LABELS)]
        received_ms = (mail.sent + (h >> 28) % 90) * 1000 + h % 1000
        return {
            "id": hex(self.id_base + i * 7919)[2:],
            "threadId": hex(self.id_base + root * 7919)[2:],
            "labelIds": labels,
            "snippet": mail.body.snippet,
            "sizeEstimate": size + 900 + (h >> 40) % 700,
            "historyId": str(self.history_base + i * 13 + (h >> 9) % 13),
            "internalDate": str(received_ms),
            "payload": payload,
        }


def plan(ctx: TapContext) -> TapPlan:
    """The Gmail tap: one ``messages`` stream keyed by the mailbox-scoped ``id``."""
    messages = GmailMessages(ctx)
    stream = StreamPlan(
        name="messages", schema=SCHEMA, key_properties=["id"], count=ctx.records,
        make=messages.message, text_field="snippet",
    )
    return make_plan(ctx, [stream])
