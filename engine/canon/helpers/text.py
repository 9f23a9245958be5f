"""Text helpers: HTML to plain text, JMAP previews, HTML entity decoding.

Why this module exists: canonical records carry searchable plain text, but HTML-only mail
bodies and Gmail's HTML-escaped ``snippet`` are not plain text, and JSONata has no HTML
parser (regex spellings are slow and wrong on ``<script>``/``<pre>``). These helpers use the
standard library's lenient :class:`html.parser.HTMLParser` and never raise.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

from engine.canon.helpers import JSON

PREVIEW_MAX = 256
"""JMAP (RFC 8621 §4.1.4): a preview is at most 256 characters."""

_SPACES = re.compile(r"[ \t\f\v\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")

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
