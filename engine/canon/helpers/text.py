"""Text helpers: HTML to plain text, JMAP previews, HTML entity decoding.

Why this module exists: canonical records carry searchable plain text, but HTML-only mail
bodies and Gmail's HTML-escaped ``snippet`` are not plain text, and JSONata has no HTML
parser (regex spellings are slow and wrong on ``<script>``/``<pre>``). These helpers use the
standard library's lenient :class:`html.parser.HTMLParser` and never raise.

``html.parser`` costs about half of a Graph mail record's canonize CPU (its tag parsing is
Python code: several regexes and a line count per tag). :func:`_fast_chunks` first reads the
common case, markup made only of plain tags (ASCII names, simple attributes), comments
without dashes or brackets inside, a doctype, and ``<script>``/``<style>``/``<title>`` with
no ``<`` inside, with one compiled regex, and gives the extractor exactly the calls
``HTMLParser`` would (same order, same arguments: data split at the same ``<``, entities
decoded per run by :func:`html.unescape`). Anything else (a ``<?``, a ``<!`` other than
those, an odd tag or attribute, raw-text elements such as ``<textarea>``, a ``<`` before
text the standard parser treats specially) sends the whole document to ``HTMLParser``, so
the output never depends on which reader ran (``tests/engine/test_html_fast.py`` compares
them on generated and edge-case documents).
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


_WS = "[ \t\n\r\f]"
_NAME = "[A-Za-z][A-Za-z0-9]*"
# an unquoted value must end at a space or ">": HTMLParser reads "/" in "<a b=c/>" as part of it
_ATTR = (f"{_WS}+[A-Za-z_:][-A-Za-z0-9_:.]*"
         f"(?:{_WS}*={_WS}*(?:\"[^\"<>]*\"|'[^'<>]*'|[-A-Za-z0-9_.:#%,;+!$*()?@~&]+(?=[ \t\n\r\f>])))?")
_RAW = "|".join(f"<(?i:{t})(?:{_ATTR})*{_WS}*>[^<]*</(?i:{t}){_WS}*>" for t in ("script", "style", "title"))
_TOKEN = re.compile(
    "(?P<text>[^<]+)"
    f"|(?P<raw>{_RAW})"
    f"|<(?P<start>{_NAME})(?:{_ATTR})*{_WS}*(?P<close>/?)>"
    f"|</(?P<end>{_NAME}){_WS}*>"
    "|<!--(?:[^<>-]|-(?=[^<>-]))*-->"
    "|<![Dd][Oo][Cc][Tt][Yy][Pp][Ee][^<>]*>"
    f"|(?P<lt><)(?={_WS}|[0-9=])"
)
"""One token of the markup :func:`_fast_chunks` reads itself (ASCII spaces only: Python's
``\\s`` also matches ``\\v`` and Unicode spaces, where HTMLParser's tag-name rules differ)."""
_RAWTEXT = frozenset({"script", "style", "title"})
"""Elements read as raw text (by some Python versions): accepted only with no ``<`` inside,
where every version gives the same calls."""
_SPECIAL = frozenset({"textarea", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"})
"""Raw-text elements whose content is text the extractor keeps, or that Python versions
parse differently: always left to HTMLParser."""


def _fast_chunks(html: str) -> list[str] | None:  # noqa: C901, PLR0912 - one loop, kept flat for speed
    """The text chunks :class:`_TextExtractor` would collect from ``HTMLParser.feed(html);
    close()``, or None when the markup is outside the common case.

    The extractor's handlers are inlined here on local variables (a method call per token
    was half of the cost); ``tests/engine/test_html_fast.py`` holds the two to the same output.
    """
    chunks: list[str] = []
    append = chunks.append
    skip = pre = 0
    breaks = 2
    pos = 0
    for m in _TOKEN.finditer(html):
        if m.start() != pos:
            return None
        pos = m.end()
        kind = m.lastgroup
        if kind == "text":  # handle_data(unescape(text))
            if skip:
                continue
            data = m.group("text")
            if "&" in data:
                data = unescape(data)
            text = data if pre else _HTML_SPACE.sub(" ", data)
            if breaks and not pre:
                text = text.lstrip(" ")
            if text:
                append(text)
                breaks = len(text) - len(text.rstrip("\n")) if pre else 0
        elif kind == "close":  # a start tag
            tag = m.group("start").lower()
            if tag in _SPECIAL:
                return None
            closed = bool(m.group("close"))
            if tag in _RAWTEXT:  # with a "<" inside, or self-closing (the "raw" token did not match)
                return None
            if tag in _SKIP_TAGS:
                if not closed:
                    skip += 1
            elif tag == "br":
                append("\n")
                breaks += 1
            elif tag in _PARAGRAPH_TAGS:
                if breaks < 2:
                    append("\n" * (2 - breaks))
                    breaks = 2
                pre += tag == "pre"
            elif tag in _BLOCK_TAGS:
                if breaks < 1:
                    append("\n")
                    breaks = 1
            elif tag in ("td", "th") and breaks == 0:
                append(" ")
        elif kind == "end":
            tag = m.group("end").lower()
            if tag in _SPECIAL:
                return None
            if tag in _SKIP_TAGS:
                skip = max(0, skip - 1)
            elif tag in _PARAGRAPH_TAGS:
                pre = max(0, pre - (tag == "pre"))
                if breaks < 2:
                    append("\n" * (2 - breaks))
                    breaks = 2
            elif tag in _BLOCK_TAGS:
                if breaks < 1:
                    append("\n")
                    breaks = 1
        elif kind == "lt":  # handle_data("<")
            if not skip:
                append("<")
                breaks = 0
        # a comment, a doctype, or a raw-text element (script, style, title: skipped whole,
        # start and end tag included, as the extractor's skip count goes up and down again)
    return chunks if pos == len(html) else None


def html_to_text(html: JSON) -> str | None:
    """HTML to readable plain text: tags dropped, entities decoded, ``<br>`` and block elements
    as line breaks, ``<script>``/``<style>``/``<head>`` removed, runs of spaces collapsed and
    lines trimmed (``<pre>`` keeps its line breaks, not its indentation). Null for non-strings."""
    if not isinstance(html, str):
        return None
    return _extract(html, fast=True)


def _extract(html: str, *, fast: bool) -> str | None:
    """:func:`html_to_text` of a string; ``fast=False`` always reads it with HTMLParser."""
    chunks = _fast_chunks(html) if fast else None
    if chunks is None:
        parser = _TextExtractor()
        try:
            parser.feed(html)
            parser.close()
        except Exception:  # noqa: BLE001 - HTMLParser is lenient, but never raise
            return " ".join(unescape(re.sub(r"<[^>]*>", " ", html)).split()) or None
        chunks = parser.chunks
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(chunks).split("\n")]
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
