"""What text of each document is embedded: a small per-kind table over the index's own columns.

The index already derives, per kind, a title, the people's names and a body
(:mod:`engine.index.fields`). A document's vector is computed from the start of those, in a
character budget per part: a static embedding averages its tokens, so the words that say what a
document is about (a subject line, the first sentences) must not drown in signatures, quoted
replies or address lists, and a short text is what keeps embedding above 20,000 documents/s
per core. The head (title) and the tail (names, body start) are averaged separately and
added with the head weighted (``title_weight``): a subject line of five words then counts
as much as it says, instead of being outvoted by thirty words of body (measured in
bench/search.py: paraphrase recall@10 0.19 with one joined text, 0.43 weighted, 0.46 with
the email body cut to 64 characters). Changing this table changes every vector: bump ``TEXT_VERSION`` (it is part of the
stored model key, so the next index run re-embeds).
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT_VERSION = 3
"""Version of the table below and of how its text is read; part of the model key stored
with every vector. 3: the text is read as whitespace-separated words (a line break or a run
of spaces no longer adds tokens of its own; :mod:`engine.vectors.model`)."""


@dataclass(frozen=True)
class EmbedText:
    """Character budgets of the parts of one kind's embedded text (0 leaves a part out)."""

    title: int
    """Characters of the title (subject, name, number · customer, ...)."""
    names: int
    """Characters of the names column (people and addresses)."""
    body: int
    """Characters from the start of the body column."""
    title_weight: float = 2.0
    """Weight of the head's unit vector against the tail's in the document's vector."""


KINDS: dict[str, EmbedText] = {
    "email": EmbedText(title=120, names=0, body=64),
    "contact": EmbedText(title=80, names=0, body=80),
    "clinical_session": EmbedText(title=120, names=0, body=64),
    "invoice": EmbedText(title=80, names=0, body=120),
    "payment": EmbedText(title=80, names=0, body=80),
}
GENERIC = EmbedText(title=120, names=40, body=100)
"""For kinds the table does not know."""


def _cut(text: str | None, budget: int) -> str:
    if not text or budget <= 0:
        return ""
    if len(text) <= budget:
        return text
    cut = text[:budget]
    space = cut.rfind(" ")
    return cut[:space] if space > budget // 2 else cut


@dataclass(frozen=True, slots=True)
class DocText:
    """What is embedded for one document."""

    head: str
    """The title, cut to its budget."""
    tail: str
    """Names and the start of the body, cut to their budgets."""
    weight: float
    """The head's weight."""


def embed_text(kind: str, title: str | None, names: str | None, body: str | None) -> DocText:
    """The text whose vector stands for a document of ``kind``."""
    spec = KINDS.get(kind, GENERIC)
    tail = (_cut(names, spec.names), _cut(body, spec.body))
    return DocText(_cut(title, spec.title), "\n".join(p for p in tail if p), spec.title_weight)
