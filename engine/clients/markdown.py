"""The Markdown of a chart folder, rendered in one pass over a client's items, newest first.

The items may come from a query (:func:`engine.clients.stream.chart_items`) that yields
them in order: nothing here holds them all. The timeline's rows and each section's rows go
as they are made into :class:`engine.clients.sink.Rendered` files (bytes past a bound spill
to disk), and are joined behind their headings (which carry counts) at the end. What stays
in memory grows only with the number of kinds, accounts and contact records of the client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import orjson

from engine.clients.model import Client, DocFacts, DocRef, Link
from engine.clients.rules import rule_for
from engine.clients.sink import Rendered, Spill

STAMP = "\x00projected_at\x00"
"""Placeholder for ``projected_at`` in a rendered ``client.md``."""
SECTIONS = {"sessions": "Sessions", "billing": "Billing"}
"""The section files (``<name>.md``) and their headings."""
TIMELINE = ["date", "kind", "direction", "title", "source/account", "document"]
TIMES = "Times are UTC (YYYY-MM-DD HH:MM); a date alone is a day without a time."
"""Said under each dated file's title: an evening session in New York is the next day in UTC."""
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
"""Control characters (C0 with line feed, carriage return and tab, DEL, C1 with NEL), the
Unicode line and paragraph separators and the bidi embedding, override and isolate controls:
none of them may reach a Markdown line of a chart (an e-mail subject's U+202E showed the rest
of its timeline row reversed, document reference included). Right-to-left text itself needs
none of them and reads as written."""
_MARKUP = re.compile(r"[\\`<>\[\]]")
"""Characters that make Markdown out of source text: raw HTML (``<img src=...>``, a read
beacon), links and images (``[Pay now](https://...)``), code spans; escaped with a backslash
so anyone who e-mails the practice cannot put a live link or an image into a chart (bare
addresses too: :data:`_AUTOLINK`)."""
_AUTOLINK = re.compile(r"://|(?<![\w.-])(?i:www)\.")
"""What GitHub-flavoured Markdown viewers turn into a live link without any markup (its
autolink extension: ``http://evil.example``, ``www.evil.example``): the ``:`` or the ``.``
is escaped, which every CommonMark viewer shows as the text it was."""
_YAML_ESCAPE = re.compile("[\x85\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""What JSON leaves unescaped and the front matter must not show raw: YAML 1.1's other line
breaks, and the bidi controls, which reorder the rest of the line in an editor (a name
holding U+202E showed the header's line reversed)."""


def inline(value: object) -> str:
    """Source text for one line of Markdown (a heading, a list item): each run of control
    characters, line separators or bidi controls becomes one space, so no record can break the
    line, start one of its own or reorder it, and HTML, link and code characters are escaped
    (:data:`_MARKUP`), so it stays text. Other format characters (a zero-width joiner in an
    emoji) are kept."""
    text = str(value)
    if not text.isprintable():
        text = _BREAKS.sub(" ", text)
    if _MARKUP.search(text):
        text = _MARKUP.sub(r"\\\g<0>", text)
    return _AUTOLINK.sub(_unlink, text) if _AUTOLINK.search(text) else text


def _unlink(match: re.Match[str]) -> str:
    found = match.group(0)
    return "\\://" if found == "://" else found[:-1] + "\\."


_BACKTICKS = re.compile(r"`+")


class Code(str):
    """A code span (a document reference): literal inside, so never backslash-escaped; a
    backtick in it is taken care of by its delimiters (:func:`code`)."""

    __slots__ = ()


def code(value: object) -> Code:
    """``value`` as a Markdown code span on one line: control characters a space, and
    delimited by more backticks than its longest run of them, with spaces (CommonMark), so
    no text inside can close it."""
    text = str(value)
    if not text.isprintable():
        text = _BREAKS.sub(" ", text)
    if "`" not in text:
        return Code(f"`{text}`")
    fence = "`" * (max(len(run) for run in _BACKTICKS.findall(text)) + 1)  # longer than any run inside
    return Code(f"{fence} {text} {fence}")


def _cell(value: object) -> str:
    """A table cell: on one line (:func:`inline`), whitespace collapsed, ``|`` escaped."""
    if value is None:
        return "-"
    if type(value) is Code:
        return value.replace("|", "\\|")
    if (type(value) is str and value.isprintable() and "  " not in value and value[:1] != " " != value[-1:]
            and not _MARKUP.search(value) and not _AUTOLINK.search(value)):
        text = value  # what split/join would give: printable text has no whitespace but " "
    else:
        text = " ".join(inline(value).split())
    return (text.replace("|", "\\|") if "|" in text else text) or "-"


class Dates:
    """Index times (UTC, ``...Z``) as a chart shows them: ``YYYY-MM-DD HH:MM`` in ``zone``.

    A date alone is kept as ``T00:00:00Z`` by the index and shown as the date, unconverted (a
    birthday or a due date is no instant). In UTC every midnight is shown so; in another
    zone only a document's time that was a date alone (:attr:`DocFacts.dated`) is, and a
    midnight-UTC instant is converted like any other (20:00 the day before in New York)."""

    def __init__(self, zone: str = "UTC") -> None:
        self.zone = zone
        self._tz = None if zone == "UTC" else ZoneInfo(zone)

    def show(self, time: str | None, dated: bool = False) -> str:
        if not time:
            return "-"
        if self._tz is None:
            return time[:10] if time.endswith("T00:00:00Z") else time[:16].replace("T", " ")
        if dated:
            return time[:10]
        try:
            return datetime.fromisoformat(time.replace("Z", "+00:00")).astimezone(self._tz).strftime("%Y-%m-%d %H:%M")
        except (ValueError, OverflowError):
            return time[:16].replace("T", " ")

    def day(self, time: str | None) -> str:
        """The day of ``time`` in the zone; a date alone (``YYYY-MM-DD``: a measurement of a
        response that gave no time) is that day in every zone."""
        return self.show(time, dated=len(time) == 10)[:10] if time else ""

    def note(self) -> str:
        """The line under each dated file's title."""
        return (f"Times are {self.zone} (YYYY-MM-DD HH:MM); a date alone is a day without a time."
                if self.zone != "UTC" else TIMES)


def _table(header: list[str], body: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    return "".join(_table_lines(header, body))


def _table_lines(header: list[str], body: Iterable[Sequence[object]]) -> Iterator[str]:
    """A Markdown table's lines, each ending in a newline (``body`` may be a generator: the
    largest chart's rows are never held as lists, nor its text as one string)."""
    yield "| " + " | ".join(header) + " |\n"
    yield "|" + "---|" * len(header) + "\n"
    for row in body:
        yield "| " + " | ".join(_cell(v) for v in row) + " |\n"


def yaml_str(text: str) -> str:
    """A YAML scalar for any string: JSON's double-quoted form is valid YAML (with the line
    breaks and bidi controls JSON leaves as they are escaped too, so the scalar stays on its
    line and reads in its order)."""
    out = orjson.dumps(text).decode()
    if not out.isascii():
        out = _YAML_ESCAPE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", out)
    return out


def _yaml(front: dict[str, object]) -> str:
    """Front matter: string, int, list-of-strings and dict-of-ints values, in order."""
    lines: list[str] = []
    for key, value in front.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"- {yaml_str(str(v))}" for v in value]
        elif isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif value == STAMP:
            lines.append(f"{key}: {value}")
        else:
            lines.append(f"{key}: {yaml_str(str(value))}")
    return "\n".join(lines) + "\n"


_LABELS: dict[str, dict[str, int]] = {}


def column(facts: DocFacts, label: str) -> str:
    """The value of one chart column of a document ("" when its kind has no such column)."""
    at = _LABELS.get(facts.ref.kind)
    if at is None:
        rule = rule_for(facts.ref.kind)
        at = _LABELS[facts.ref.kind] = {lb: i for i, lb in enumerate(rule.columns if rule else ())}
    i = at.get(label)
    return facts.columns[i] if i is not None and i < len(facts.columns) else ""


def _add(total: Decimal, value: str) -> Decimal:
    """``total + value``; a value that is not a number adds nothing."""
    try:
        return total + Decimal(value)
    except (InvalidOperation, ValueError):
        return total


def newest_first(items: Iterable[tuple[Link, DocFacts]]) -> list[tuple[Link, DocFacts]]:
    """Items in chart order: newest first, then by document (``(time or "") DESC, ref``)."""
    ordered = sorted(items, key=lambda it: it[1].ref)
    return sorted(ordered, key=lambda it: it[1].time or "", reverse=True)


class _Pass:
    """What one pass over a client's items gathers for its four files."""

    def __init__(self, spill: Spill | None, dates: Dates | None = None) -> None:
        self.spill = spill
        self.dates = dates or Dates()
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.sources: set[str] = set()
        self.contacts: list[tuple[DocRef, list[object]]] = []
        self.timeline = Rendered(spill)
        self.sections: dict[str, dict[str, tuple[list[int], Rendered]]] = {s: {} for s in SECTIONS}
        self.totals: dict[str, dict[str, Decimal]] = {"invoiced": {}, "paid": {}, "balance": {}, "unapplied": {}}
        """Billing totals per currency ("" when the record names none: the home currency)."""

    def add(self, lk: Link, f: DocFacts) -> None:
        ref = f.ref
        self.count += 1
        self.kinds[ref.kind] = self.kinds.get(ref.kind, 0) + 1
        where = f"{ref.source}/{ref.account}"
        self.sources.add(where)
        if ref.kind == "contact":
            self.contacts.append((ref, [ref.source, ref.account, code(ref.entity_id), lk.rule, lk.via]))
        self.timeline.write(_row((self.dates.show(f.time, f.dated), ref.kind, lk.direction or "", f.title, where, code(ref.text()))))
        rule = rule_for(ref.kind)
        if rule is not None and rule.section in self.sections:
            got = self.sections[rule.section].get(ref.kind)
            if got is None:
                got = self.sections[rule.section][ref.kind] = ([0], Rendered(self.spill))
            got[0][0] += 1
            got[1].write(_row([self.dates.show(f.time, f.dated), *(_shown(lb, column(f, lb)) for lb in rule.columns), where,
                               code(ref.entity_id)]))
        if ref.kind == "invoice":
            self._total("invoiced", f, "total")
            self._total("balance", f, "balance")
        elif ref.kind == "payment":
            self._total("paid", f, "total")
            self._total("unapplied", f, "unapplied")

    def _total(self, name: str, f: DocFacts, label: str) -> None:
        per = self.totals[name]
        cur = column(f, "currency").strip().upper()  # "usd" and "USD" are one currency
        per[cur] = _add(per.get(cur, Decimal(0)), column(f, label))

    def balance_lines(self) -> str:
        """The billing file's balance: one amount per currency, never two currencies added."""
        out = ["", "## Balance", ""]
        for name, label in (("invoiced", "Invoiced"), ("paid", "Paid"), ("balance", "Open balance")):
            per = self.totals[name] or {"": Decimal(0)}
            amounts = [f"{_money(v)}{' ' + inline(c) if c else _NO_CURRENCY if len(per) > 1 else ''}"
                       for c, v in sorted(per.items())]
            out.append(f"- **{label}:** {', '.join(amounts)}")
        credit = {c: v for c, v in self.totals["unapplied"].items() if v}
        if credit:  # money received and not applied to an invoice: the source's balance is less
            amounts = [f"{_money(v)}{' ' + inline(c) if c else ''}" for c, v in sorted(credit.items())]
            out.append(f"- **Unapplied payments (a credit, not taken off the open balance above):** "
                       f"{', '.join(amounts)}")
        return "\n".join(out) + "\n"


_NO_CURRENCY = " (no currency on the record)"
"""Beside the total of records without a currency when other currencies are there: a bare
``0.02`` next to ``150.01 USD`` said nothing of which money it was."""

MONEY = frozenset({"total", "balance", "unapplied"})
"""Chart columns that are amounts: shown as the totals are, two decimals rounded halves up."""


def _shown(label: str, value: str) -> str:
    """A section cell: an amount as :func:`_money` writes it (``75.005`` -> ``75.01``), else as is."""
    if label not in MONEY or not value:
        return value
    try:
        return _money(Decimal(value))
    except (InvalidOperation, ValueError):
        return value


def _money(value: Decimal) -> str:
    """Two decimals, halves up (as an invoice rounds), never half-even; exact at any size
    (the default context's 28 digits refused a 27-digit amount)."""
    digits = max(value.adjusted() + 3, 1)
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP, context=Context(prec=digits + 2)))


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(_cell(v) for v in cells) + " |\n"


def render_files(c: Client, items: Iterable[tuple[Link, DocFacts]],
                 spill: Spill | None, zone: str = "UTC") -> tuple[str, dict[str, Rendered]]:
    """``client.md`` (with :data:`STAMP` for projected_at) and the other three files, from
    one pass over ``items`` in chart order (:func:`newest_first`), times shown in ``zone``."""
    dates = Dates(zone)
    acc = _Pass(spill, dates)
    for lk, f in items:
        acc.add(lk, f)
    timeline = Rendered(spill)
    timeline.write(f"# Timeline: {inline(c.card.sort_name)}\n\n{acc.count} documents, newest first. {dates.note()}\n\n")
    _table_head(timeline, TIMELINE)
    timeline.append(acc.timeline)
    files = {"timeline.md": timeline.close()}
    for section, heading in SECTIONS.items():
        out = files[f"{section}.md"] = Rendered(spill)
        out.write(f"# {heading}: {inline(c.card.sort_name)}\n\n{dates.note()}\n")
        by_kind = acc.sections[section]
        if not by_kind:
            out.write("\nNothing linked yet.\n")
        for kind in sorted(by_kind):
            rule = rule_for(kind)
            labels = list(rule.columns) if rule is not None else []
            (count,), rows = by_kind[kind]
            out.write(f"\n## {inline(kind)} ({count})\n\n")
            _table_head(out, ["date", *labels, "source/account", "id"])
            out.append(rows)
        if section == "billing":
            out.write(acc.balance_lines())
        out.close()
    return _client_md(c, acc), files


def _table_head(out: Rendered, header: list[str]) -> None:
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "---|" * len(header) + "\n")


def _client_md(c: Client, acc: _Pass) -> str:
    front = {
        "client_id": c.client_id,
        "name": c.card.name,
        "sources": sorted(acc.sources | {f"{c.home.source}/{c.home.account}"}),
        "keys": sorted(c.keys),
        "counts": {"documents": acc.count, **dict(sorted(acc.kinds.items()))},
        "merged": c.merged or None,
        "projected_at": STAMP,
    }
    head = _yaml({k: v for k, v in front.items() if v is not None})
    card = c.card
    lines = [f"# {inline(card.name or card.sort_name)}", "",
             f"- **Client id:** `{c.client_id}`",
             f"- **Record:** {c.home.source}/{c.home.account} {code(c.home.entity_id)}"]
    if card.birth_date:
        lines.append(f"- **Born:** {inline(card.birth_date)}")
    lines += [f"- **E-mail:** {inline(e)}" for e in card.emails]
    lines += [f"- **Phone:** {inline(p)}" for p in card.phones]
    lines += [f"- **Address:** {inline(a)}" for a in card.addresses]
    records = [row for _, row in sorted(acc.contacts, key=lambda it: it[0])]
    body = "\n".join(lines) + "\n\n## Contact records\n\n"
    body += _table(["source", "account", "id", "linked by", "via"], records)
    body += "\nSee [timeline](timeline.md), [sessions](sessions.md), [billing](billing.md).\n"
    return f"---\n{head}---\n\n{body}"
