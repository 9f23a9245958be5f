"""The fast HTML reader of ``htmlToText`` gives exactly what ``html.parser`` gives.

``engine.canon.helpers.text`` reads common markup with one regex and its own copy of the
text extractor's handlers, and hands anything else to ``HTMLParser``. Canonical output must
not depend on which reader ran, so every document here is read both ways and the texts
must be equal: hand-written edge cases (entities, ``<pre>``, raw-text elements, comments,
stray ``<``, odd spaces) and a few thousand seeded random documents built from the
fragments real mail uses and the ones the fast path must refuse. The test also checks that
the fast path is taken for ordinary mail markup (or it would be dead code).
"""

from __future__ import annotations

import random

import pytest

from engine.canon.helpers.text import _extract, _fast_chunks, html_to_text

EDGE_CASES = [
    "",
    "plain text, no markup",
    "<p>Hello&nbsp;world &amp; more</p>",
    "<div>a</div><div>b</div><br><br/><br />c",
    "<P CLASS='x'>Upper</P><TD>cell</TD><th>h</th>",
    "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>",
    "<pre>  keep\n   lines  \n</pre>after",
    "<pre><pre>nested</pre> still pre?</pre>done",
    "<script>var a = 1 && 2;</script>text<style>p {color: red}</style>more",
    "<script>if (a < b) {}</script>text",
    "<script/>text after a self-closing script",
    "<SCRIPT type=\"text/javascript\">x</SCRIPT >y",
    "<title>T &amp; t</title><p>body</p>",
    "<head><title>x</title><meta charset=\"utf-8\"></head><body>b</body>",
    "<textarea><b>kept?</b></textarea>",
    "<noscript>no</noscript>yes",
    "<!-- a comment -->text<!---->x<!-- a - b -->y",
    "<!-- a -- b -->x",
    "<!--->x-->y",
    "<!-->x",
    "<!--[if gte mso 9]><xml><o:p>x</o:p></xml><![endif]-->after",
    "<!DOCTYPE html><html><body>d</body></html>",
    "<!doctype html PUBLIC \"-//W3C//DTD XHTML 1.0//EN\">t",
    "<?xml version=\"1.0\"?><p>pi</p>",
    "<![CDATA[x]]>y",
    "a < b and c <= d, 3<4",
    "ends with <",
    "ends with &amp",
    "ends with &am",
    "&#39;quoted&#39; &#x27;hex&#x27; &bogus; &",
    "<a href=http://example.com/x?y=1&z=2>link</a>",
    "<a href=x/>self?</a>",
    "<img src=\"a.png\" alt='an \"image\"' width=10 />after",
    "<p class=\"a\"id=\"b\">no space between attributes</p>",
    "<p\vclass=x>vertical tab</p>",
    "<p\u00a0class=x>nbsp in a tag</p>",
    "<div\n  class=\"x\"\n>multi-line tag</div>",
    "<o:p>office</o:p><v:shape id=x>v</v:shape>",
    "<p>unclosed <b>bold",
    "<p>bad <tag",
    "</p>end tag first<p>",
    "<br/ >odd br",
    "<p / >odd p",
    "\r\n<html>\r\n<body>\r\n<div dir=\"ltr\">Hi,<br><br>Line</div>\r\n</body>\r\n</html>\r\n",
    "<li>one<li>two<ul><li>three</ul>",
    "<h1>Title</h1>\n\n\n\n<p>para</p>",
    "<p>\u200b zero width \u00a0 nbsp</p>",
    "<td>a</td><td>b</td>",
    "<template><p>t</p></template>after",
    "<plaintext>rest <b>is</b> text",
    "<xmp><b>x</b></xmp>",
    "<iframe>x</iframe>y",
    "<a b='<'>lt in a quoted value</a>",
    "<a b=\">\">gt in a quoted value</a>",
]

TAGS = ["p", "div", "br", "span", "b", "td", "th", "tr", "table", "li", "ul", "pre", "h1", "blockquote",
        "head", "title", "style", "script", "template", "noscript", "textarea", "a", "img", "hr", "P", "DIV",
        "o:p", "font"]
ATTRS = ["", " class=\"x\"", " id='y'", " width=10", " href=http://e.com/a", " data-x=\"a > b\"", " checked",
         " style=\"color: red\"", "  a = \"b\" ", " x=a&amp;b", "\tdir=ltr\n"]
TEXTS = ["Hello", " ", "  spaced   out  ", "\r\n", "\n\n", "a&amp;b", "&nbsp;", "&#8217;", "&notanentity;",
         "x < y", "3<4", "caf\u00e9", "\u00a0", "\t", "<", "&", "&am", "-->", "--", "\u200b"]
END_SPACES = ["", " ", "\n"]
OTHER = ["<!-- c -->", "<!---->", "<!-- a--b -->", "<!DOCTYPE html>", "<?pi x?>", "<![endif]-->", "<!x>",
         "</ p>", "<br/>", "<br />", "<p/>", "<>", "</>", "<p", "<b\u00a0x>", "<x\vy>", "</div >"]


def random_document(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(0, 30)):
        r = rng.random()
        if r < 0.35:
            parts.append(rng.choice(TEXTS))
        elif r < 0.65:
            parts.append(f"<{rng.choice(TAGS)}{rng.choice(ATTRS)}{rng.choice(['', '', '/', ' /'])}>")
        elif r < 0.9:
            parts.append(f"</{rng.choice(TAGS)}{rng.choice(END_SPACES)}>")
        else:
            parts.append(rng.choice(OTHER))
    return "".join(parts)


@pytest.mark.parametrize("html", EDGE_CASES)
def test_fast_reader_matches_html_parser_on_edge_cases(html: str) -> None:
    assert _extract(html, fast=True) == _extract(html, fast=False)


def test_fast_reader_matches_html_parser_on_random_documents() -> None:
    rng = random.Random(18)
    fast_taken = 0
    for i in range(4000):
        html = random_document(rng)
        assert _extract(html, fast=True) == _extract(html, fast=False), f"document {i}: {html!r}"
        fast_taken += _fast_chunks(html) is not None
    assert 300 < fast_taken < 4000, f"the fast path read {fast_taken} of 4000 documents"


def test_ordinary_mail_markup_takes_the_fast_path() -> None:
    mail = ("<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n"
            "<style type=\"text/css\">p {margin: 0}</style></head>\r\n<body>\r\n<div dir=\"ltr\">Hello Ana,"
            "<br><br>See you on <b>Monday</b> &amp; bring the form.<br></div>\r\n<!-- sig -->"
            "<table><tr><td>Front Desk</td><td>555-0100</td></tr></table></body>\r\n</html>\r\n")
    assert _fast_chunks(mail) is not None
    assert html_to_text(mail) == _extract(mail, fast=False) == (
        "Hello Ana,\n\nSee you on Monday & bring the form.\n\nFront Desk 555-0100")
    assert _fast_chunks("<?xml version=\"1.0\"?><p>x</p>") is None  # left to html.parser
