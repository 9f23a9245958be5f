"""An RFC 5322 address-list parser: the (display name, address) of each mailbox of a header.

Split from :mod:`.mail` (the header helpers transforms call) because splitting an address
list is a small parser of its own, quotes, comments, angle brackets and groups, with its
own rules for what the standard library gets wrong (an address is only what the angle
brackets hold; a bracket never closed ends at the next comma). It works on text whose
encoded words :func:`.mail.addresses` has already hidden, and never raises.
"""

from __future__ import annotations

import re

QUOTED_PAIR = re.compile(r"\\(.)")
"""A quoted pair (backslash and the character it escapes) in a quoted string or comment."""


def mailboxes(text: str) -> list[tuple[str, str]]:
    """(display name, address) of each element of an RFC 5322 address list.

    The address of an element with an angle-addr is what the angle brackets hold, and only
    that: ``cy@example.com <stranger@elsewhere.org>`` is one mailbox, the stranger's, whose
    display name looks like an address (``email.utils.getaddresses`` before Python 3.11.10
    made it two, so the mail reached the chart of a client who never took part). Elsewhere
    the element, without comments, is the address, spaces kept (``jane@x.org via list`` is
    no address, not ``jane@x.orgvialist``). Quoted strings and comments may hold commas;
    group names (``team: a@x, b@y;``) are dropped, their members kept.
    """
    return [_mailbox(element) for element in _elements(text)]


def _elements(text: str) -> list[str]:
    """The elements of an address list, split at commas and group delimiters outside
    quotes, comments and angle brackets."""
    out: list[str] = []
    buf: list[str] = []
    quoted = angle = False
    comment = 0
    escaped = False
    opened = 0  # where in buf the open angle bracket is
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
            continue
        if ch == "\\" and (quoted or comment):
            buf.append(ch)
            escaped = True
            continue
        if quoted:
            quoted = ch != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment = 1
        elif angle and ch == "," and _unclosed("".join(buf[opened + 1:])):
            angle = False  # "Ann <ann@x.org, Bob <bob@y.org>": a bracket never closed ends here
            out.append("".join(buf))
            buf = []
            continue
        elif angle:
            angle = ch != ">"
        elif ch == "<":
            angle, opened = True, len(buf)
        elif ch in ",;":
            out.append("".join(buf))
            buf = []
            continue
        elif ch == ":" and "@" not in "".join(buf):  # a group's name (obs-route is in <>)
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf))
    return [e for e in out if e.strip()]


def _unclosed(inside: str) -> bool:
    """Whether a comma inside angle brackets ends an address whose ``>`` never came: the
    bracket holds an address already, and not an obs-route (``<@a,@b:x@y>``)."""
    inside = inside.lstrip()
    return "@" in inside and not inside.startswith("@")


def _mailbox(element: str) -> tuple[str, str]:
    """(display name, address) of one element (see :func:`mailboxes`)."""
    opened = _outside(element, "<")
    if opened < 0:  # an addr-spec; its comment, if any, is the old ``addr (Name)`` form's name
        return _comment(element), " ".join(_without_comments(element).split())
    closing = element.find(">", opened)
    inner = _without_comments(element[opened + 1:closing if closing >= 0 else len(element)]).strip()
    address = inner.rpartition(":")[2] if inner.startswith("@") else inner  # obs-route: <@a,@b:x@y>
    return _without_comments(element[:opened]).strip(), "".join(address.split())


def _outside(text: str, wanted: str) -> int:
    """The index of the first ``wanted`` outside quotes and comments, or -1."""
    quoted, comment, escaped = False, 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == wanted:
            return i
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment = 1
    return -1


def _comment(text: str) -> str:
    """The text of the first top-level comment (``jane@x.org (Jane Doe)``), or ""."""
    start = _outside(text, "(")
    if start < 0:
        return ""
    depth, end, escaped = 0, len(text), False
    for i in range(start, len(text)):
        if escaped:
            escaped = False
            continue
        if text[i] == "\\":
            escaped = True
            continue
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            end = i
            break
    return QUOTED_PAIR.sub(r"\1", text[start + 1:end])


def _without_comments(text: str) -> str:
    """``text`` without its (nested) comments; quoted strings kept as they are."""
    out: list[str] = []
    quoted, comment, escaped = False, 0, False
    for ch in text:
        if escaped:
            escaped = False
            if not comment:
                out.append(ch)
            continue
        if ch == "\\" and (quoted or comment):
            escaped = True
            if not comment:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
            continue
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment = 1
            continue
        out.append(ch)
    return "".join(out)
