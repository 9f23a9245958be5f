"""Demo Microsoft Graph mail tap: raw ``message`` resources from ``/me/messages``.

One stream, ``messages``, with the fields Graph returns by default: ids and ``changeKey``,
UTC ``Z`` timestamps, ``body`` as HTML or text, recipients as ``{emailAddress:{name,address}}``
and the read/draft/importance flags. Every tenth message carries a Message-ID from the
seed-wide shared pool, so the same message shows up in Gmail accounts and in Exchange (the
pipeline deduplicates on ``internetMessageId``).
"""

from __future__ import annotations

from typing import Any

from engine.demo_taps.common import iso_z, token
from engine.demo_taps.mail import Body, MailSource, Party, owner_party
from engine.demo_taps.spec import (
    Record,
    StreamPlan,
    TapContext,
    TapPlan,
    array,
    boolean,
    make_plan,
    obj,
    stream_schema,
    string,
)

_ADDRESS = obj(emailAddress=obj(name=string(), address=string()))
SCHEMA = stream_schema({
    "@odata.etag": string(), "id": string(False), "createdDateTime": string(fmt="date-time"),
    "lastModifiedDateTime": string(fmt="date-time"), "changeKey": string(),
    "categories": array(string(False)), "receivedDateTime": string(fmt="date-time"),
    "sentDateTime": string(fmt="date-time"), "hasAttachments": boolean(),
    "internetMessageId": string(), "subject": string(), "bodyPreview": string(),
    "importance": string(), "parentFolderId": string(), "conversationId": string(),
    "isRead": boolean(), "isDraft": boolean(), "inferenceClassification": string(),
    "body": obj(contentType=string(), content=string()),
    "sender": _ADDRESS, "from": _ADDRESS, "toRecipients": array(_ADDRESS),
    "ccRecipients": array(_ADDRESS), "bccRecipients": array(_ADDRESS),
    "replyTo": array(_ADDRESS), "flag": obj(flagStatus=string()),
})
_IMPORTANCE = ("normal",) * 13 + ("high", "high", "low")
_CATEGORIES: tuple[list[str], ...] = ([],) * 12 + (["Red category"], ["Billing"], ["Intake"], [])
_HTML_HEAD = (
    '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    "\r\n</head>\r\n<body>\r\n"
)


class GraphMessages:
    """Record factory for the ``messages`` stream of one Exchange mailbox."""

    def __init__(self, ctx: TapContext) -> None:
        self.owner = owner_party(ctx)
        self.source = MailSource(ctx, self.owner)
        mailbox = token(ctx.key("graph-mailbox"), 40)
        self.id_prefix = f"AAMkA{mailbox}BGAAAAAAA"
        self.conversation_prefix = f"AAQkA{mailbox}AQA"
        self.inbox = f"AAMkA{mailbox}AuAAAAAAEMAAA="
        self.sent_items = f"AAMkA{mailbox}AuAAAAAAEJAAA="
        self.domain = token(ctx.key("graph-domain"), 6).upper()
        self.addresses: dict[int, dict[str, Any]] = {}
        self.bodies: dict[int, tuple[dict[str, str], dict[str, str]]] = {}

    def _address(self, party: Party) -> dict[str, Any]:
        found = self.addresses.get(id(party))
        if found is None:
            found = {"emailAddress": {"name": party.name, "address": party.address}}
            self.addresses[id(party)] = found
        return found

    def _body(self, body: Body, html: bool) -> dict[str, str]:
        found = self.bodies.get(id(body))
        if found is None:
            markup = _HTML_HEAD + body.html + "\r\n</body>\r\n</html>\r\n"
            found = ({"contentType": "html", "content": markup},
                     {"contentType": "text", "content": body.text})
            self.bodies[id(body)] = found
        return found[0] if html else found[1]

    def message(self, i: int) -> Record:
        """The Graph message at mailbox index ``i``."""
        mail, h = self.source.at(i)
        received = mail.sent + (h >> 28) % 90
        change_key = "CQAAABYAAAD" + hex(h)[2:].upper()
        internet_id = mail.message_id or f"<{h:x}@{self.domain}.namprd.prod.outlook.com>"
        sender = self._address(mail.sender)
        draft = mail.outgoing and (h >> 60) == 0
        return {
            "@odata.etag": 'W/"' + change_key + '"',
            "id": self.id_prefix + hex(0x10000000 + i)[2:].upper() + "AAA=",
            "createdDateTime": iso_z(received),
            "lastModifiedDateTime": iso_z(received + (h >> 33) % 600),
            "changeKey": change_key,
            "categories": _CATEGORIES[(h >> 16) & 15],
            "receivedDateTime": iso_z(received),
            "sentDateTime": iso_z(mail.sent),
            "hasAttachments": (h >> 12) & 15 >= 11,
            "internetMessageId": internet_id,
            "subject": mail.subject,
            "bodyPreview": mail.body.preview,
            "importance": _IMPORTANCE[(h >> 20) & 15],
            "parentFolderId": self.sent_items if mail.outgoing else self.inbox,
            "conversationId": self.conversation_prefix + hex(0x10000000 + i // 3)[2:] + "=",
            "isRead": mail.outgoing or (h >> 7) & 1 == 1,
            "isDraft": draft,
            "inferenceClassification": "focused" if (h >> 25) & 3 else "other",
            "body": self._body(mail.body, html=(h >> 26) & 3 != 0),
            "sender": sender,
            "from": sender,
            "toRecipients": [self._address(p) for p in mail.to],
            "ccRecipients": [self._address(p) for p in mail.cc],
            "bccRecipients": [],
            "replyTo": [],
            "flag": {"flagStatus": "flagged" if (h >> 27) % 16 == 0 else "notFlagged"},
        }


def plan(ctx: TapContext) -> TapPlan:
    """The Graph tap: one ``messages`` stream keyed by ``id``."""
    messages = GraphMessages(ctx)
    stream = StreamPlan(
        name="messages", schema=SCHEMA, key_properties=["id"], count=ctx.records,
        make=messages.message, text_field="bodyPreview",
    )
    return make_plan(ctx, [stream])
