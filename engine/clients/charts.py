"""Chart folders: one folder of Markdown per client, readable in any editor or notes app.

``{workspace}/clients/<Last, First> (<short id>)/`` holds ``client.md`` (YAML front matter,
then the contact card), ``timeline.md`` (every linked document, newest first),
``sessions.md`` and ``billing.md``. Rendering is a pure function of the projection, so a
rerun gives the same bytes; ``projected_at`` is the time the chart last changed (kept from
the existing ``client.md`` when nothing else changed), so an unchanged chart is never
rewritten. Folder names are made safe for every file system and end with the client's
short id, which also tells apart two clients with one name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import orjson

from engine.clients import folders
from engine.clients.model import Client, DocFacts, Link, Projection
from engine.clients.rules import rule_for
from engine.store.fsutil import fsync_dir

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_FOLDER = re.compile(r"^.+ \([0-9a-f]{8,16}\)$")
MAX_NAME = 80
FILES = ("client.md", "timeline.md", "sessions.md", "billing.md")
STAGE_BATCH = 500
"""Folders staged before one file-system flush and their swaps (bounds the extra disk use)."""


def safe_name(text: str) -> str:
    """A folder-name-safe form of a person's name (no separators or control characters)."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    text = re.sub(r"\s+", " ", _UNSAFE.sub("-", text)).strip(" .")
    return text[:MAX_NAME].rstrip(" .") or "Unnamed"


def assign_folders(clients: dict[str, Client]) -> None:
    """Give every client its folder name; short ids grow where two would collide."""
    width = 8
    ids = sorted(clients)
    while width < 16 and len({i[:width] for i in ids}) < len(ids):
        width += 2
    for cid in ids:
        c = clients[cid]
        c.folder = f"{safe_name(c.card.sort_name)} ({cid[:width]})"


def is_chart_folder(name: str) -> bool:
    """True for names this module makes (``Name (0123abcd)``)."""
    return bool(_FOLDER.match(name)) and not name.startswith(".")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if type(value) is str and value.isprintable() and "  " not in value and value[:1] != " " != value[-1:]:
        text = value  # what split/join would give: printable text has no whitespace but " "
    else:
        text = " ".join(str(value).split())
    return (text.replace("|", "\\|") if "|" in text else text) or "-"


def _date(time: str | None) -> str:
    if not time:
        return "-"
    return time[:10] if time.endswith("T00:00:00Z") else time[:16].replace("T", " ")


def _table(header: list[str], body: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    return "\n".join(_table_lines(header, body)) + "\n"


def _table_lines(header: list[str], body: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table's lines (``body`` may be a generator: the largest chart's rows are
    never held as lists beside their text)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in body]
    return lines


def _newest_first(items: list[tuple[Link, DocFacts]]) -> list[tuple[Link, DocFacts]]:
    ordered = sorted(items, key=lambda it: it[1].ref)
    return sorted(ordered, key=lambda it: it[1].time or "", reverse=True)


@dataclass
class ChartInput:
    """One client and what it is linked to."""

    client: Client
    items: list[tuple[Link, DocFacts]]


_STAMP = "\x00projected_at\x00"


def render_template(chart: ChartInput) -> dict[str, bytes]:
    """The four files of a chart folder, ``client.md`` with a placeholder for projected_at."""
    c, items = chart.client, _newest_first(chart.items)
    return {
        "client.md": _client_md(c, items, _STAMP).encode(),
        "timeline.md": _timeline_md(c, items).encode(),
        "sessions.md": _section_md(c, items, "sessions", "Sessions").encode(),
        "billing.md": _billing_md(c, items).encode(),
    }


def stamped(files: dict[str, bytes], projected_at: str) -> dict[str, bytes]:
    """A template with its projected_at filled in."""
    out = dict(files)
    out["client.md"] = files["client.md"].replace(_STAMP.encode(), _yaml_str(projected_at).encode())
    return out


def render(chart: ChartInput, projected_at: str) -> dict[str, bytes]:
    """The four files of a chart folder."""
    return stamped(render_template(chart), projected_at)


def _yaml_str(text: str) -> str:
    """A YAML scalar for any string: JSON's double-quoted form is valid YAML."""
    return orjson.dumps(text).decode()


def _yaml(front: dict[str, object]) -> str:
    """Front matter: string, int, list-of-strings and dict-of-ints values, in order."""
    lines: list[str] = []
    for key, value in front.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines += [f"- {_yaml_str(str(v))}" for v in value]
        elif isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        elif value == _STAMP:
            lines.append(f"{key}: {value}")
        else:
            lines.append(f"{key}: {_yaml_str(str(value))}")
    return "\n".join(lines) + "\n"


def _client_md(c: Client, items: list[tuple[Link, DocFacts]], projected_at: str) -> str:
    kinds: dict[str, int] = {}
    for _, facts in items:
        kinds[facts.ref.kind] = kinds.get(facts.ref.kind, 0) + 1
    front = {
        "client_id": c.client_id,
        "name": c.card.name,
        "sources": sorted({f"{f.ref.source}/{f.ref.account}" for _, f in items}
                          | {f"{c.home.source}/{c.home.account}"}),
        "keys": sorted(c.keys),
        "counts": {"documents": len(items), **dict(sorted(kinds.items()))},
        "merged": c.merged or None,
        "projected_at": projected_at,
    }
    head = _yaml({k: v for k, v in front.items() if v is not None})
    card = c.card
    lines = [f"# {card.name or card.sort_name}", "",
             f"- **Client id:** `{c.client_id}`",
             f"- **Record:** {c.home.source}/{c.home.account} `{c.home.entity_id}`"]
    if card.birth_date:
        lines.append(f"- **Born:** {card.birth_date}")
    lines += [f"- **E-mail:** {e}" for e in card.emails]
    lines += [f"- **Phone:** {p}" for p in card.phones]
    lines += [f"- **Address:** {a}" for a in card.addresses]
    records = [[f.ref.source, f.ref.account, f"`{f.ref.entity_id}`", lk.rule, lk.via]
               for lk, f in sorted(items, key=lambda it: it[1].ref) if f.ref.kind == "contact"]
    body = "\n".join(lines) + "\n\n## Contact records\n\n"
    body += _table(["source", "account", "id", "linked by", "via"], records)  # type: ignore[arg-type]
    body += "\nSee [timeline](timeline.md), [sessions](sessions.md), [billing](billing.md).\n"
    return f"---\n{head}---\n\n{body}"


def _timeline_md(c: Client, items: list[tuple[Link, DocFacts]]) -> str:
    body = ((_date(f.time), f.ref.kind, lk.direction or "", f.title, f"{f.ref.source}/{f.ref.account}",
             f"`{f.ref.text()}`") for lk, f in items)
    lines = [f"# Timeline: {c.card.sort_name}", "", f"{len(items)} documents, newest first.", "",
             *_table_lines(["date", "kind", "direction", "title", "source/account", "document"], body), ""]
    return "\n".join(lines)  # one copy of the text (the largest timeline is ~7 MB at 1M records)


def _section_md(c: Client, items: list[tuple[Link, DocFacts]], section: str, heading: str,
                kinds: Callable[[str], bool] | None = None) -> str:
    out = [f"# {heading}: {c.card.sort_name}\n"]
    by_kind: dict[str, list[DocFacts]] = {}
    for _, f in items:
        rule = rule_for(f.ref.kind)
        if rule is not None and rule.section == section and (kinds is None or kinds(f.ref.kind)):
            by_kind.setdefault(f.ref.kind, []).append(f)
    if not by_kind:
        out.append("\nNothing linked yet.\n")
    for kind in sorted(by_kind):
        rule = rule_for(kind)
        labels = list(rule.columns) if rule is not None else []
        rows: list[list[object]] = [[_date(f.time), *(column(f, lb) for lb in labels),
                                     f"{f.ref.source}/{f.ref.account}", f"`{f.ref.entity_id}`"]
                                    for f in by_kind[kind]]
        out.append(f"\n## {kind} ({len(rows)})\n\n"
                   + _table(["date", *labels, "source/account", "id"], rows))
    return "".join(out)


_LABELS: dict[str, dict[str, int]] = {}


def column(facts: DocFacts, label: str) -> str:
    """The value of one chart column of a document ("" when its kind has no such column)."""
    at = _LABELS.get(facts.ref.kind)
    if at is None:
        rule = rule_for(facts.ref.kind)
        at = _LABELS[facts.ref.kind] = {lb: i for i, lb in enumerate(rule.columns if rule else ())}
    i = at.get(label)
    return facts.columns[i] if i is not None and i < len(facts.columns) else ""


def _money(values: list[str]) -> Decimal:
    total = Decimal(0)
    for v in values:
        try:
            total += Decimal(v)
        except (InvalidOperation, ValueError):
            continue
    return total


def _billing_md(c: Client, items: list[tuple[Link, DocFacts]]) -> str:
    invoices = [f for _, f in items if f.ref.kind == "invoice"]
    payments = [f for _, f in items if f.ref.kind == "payment"]
    invoiced = _money([column(f, "total") for f in invoices])
    balance = _money([column(f, "balance") for f in invoices])
    paid = _money([column(f, "total") for f in payments])
    text = _section_md(c, items, "billing", "Billing")
    summary = (f"\n## Balance\n\n- **Invoiced:** {invoiced:.2f}\n- **Paid:** {paid:.2f}\n"
               f"- **Open balance:** {balance:.2f}\n")
    return text + summary


_PROJECTED = re.compile(r'^projected_at: "?([^"\n]+)"?$', re.M)


def previous_projected_at(files: dict[str, bytes]) -> str | None:
    """``projected_at`` of an existing chart's client.md."""
    m = _PROJECTED.search(files.get("client.md", b"").decode(errors="replace"))
    return m.group(1) if m else None


@dataclass
class ChartStats:
    """PHI-free counts of one charts pass."""

    written: int = 0
    unchanged: int = 0
    removed: int = 0
    bytes: int = 0


def write_charts(root: Path, p: Projection, now: str,
                 on_folder: Callable[[int], None] | None = None,
                 extra: Callable[[str], dict[str, bytes]] | None = None,
                 items_of: Callable[[str], list[tuple[Link, DocFacts]]] | None = None) -> ChartStats:
    """Bring ``root`` (``{workspace}/clients``) in line with the projection.

    ``extra`` gives more files of a client's folder by client id (``measures.md``);
    ``items_of`` a client's links and their documents' facts (a streamed projection reads
    them per client: :func:`engine.clients.stream.chart_items`), else ``p.links``.
    """
    folders.recover(root)
    stats = write_folders(root, p, sorted(p.clients), now, on_folder, extra, items_of)
    stats.removed = remove_gone(root, p)
    return stats


def write_folders(root: Path, p: Projection, ids: list[str], now: str,
                  on_folder: Callable[[int], None] | None = None,
                  extra: Callable[[str], dict[str, bytes]] | None = None,
                  items_of: Callable[[str], list[tuple[Link, DocFacts]]] | None = None) -> ChartStats:
    """Stage and swap in the chart folders of the clients ``ids`` (a shard of them, when two
    processes share the work: every folder is swapped on its own, so they never meet)."""
    if items_of is None:
        by_client: dict[str, list[tuple[Link, DocFacts]]] = {cid: [] for cid in p.clients}
        for link in p.links:
            if link.client_id in by_client:
                by_client[link.client_id].append((link, p.docs[link.doc]))
        items_of = by_client.__getitem__
    stats = ChartStats()
    staged: list[tuple[str, Path]] = []

    def swap_staged() -> None:
        folders.sync_tree(root)  # every staged file durable before any folder is swapped in
        for name, staging in staged:
            folders.swap_in(root, name, staging)
        fsync_dir(root)
        staged.clear()

    for n, cid in enumerate(ids):
        client = p.clients[cid]
        template = render_template(ChartInput(client, items_of(cid)))  # the items go here
        old = folders.read_files(root / client.folder)
        if extra is not None:
            template.update(extra(cid))
        files = stamped(template, previous_projected_at(old) or now)
        if files != old:
            files = stamped(template, now)
        staging = folders.stage_folder(root, client.folder, files, old)
        if staging is None:
            stats.unchanged += 1
        else:
            staged.append((client.folder, staging))
            stats.written += 1
            stats.bytes += sum(len(b) for b in files.values())
        if len(staged) >= STAGE_BATCH:
            swap_staged()
        if on_folder is not None:
            on_folder(n + 1)
    if staged:
        swap_staged()
    return stats


def remove_gone(root: Path, p: Projection) -> int:
    """Remove the chart folders of clients that are gone; return how many."""
    wanted = {c.folder for c in p.clients.values()}
    removed = 0
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and is_chart_folder(entry.name) and entry.name not in wanted:
            folders.remove_folder(root, entry.name)
            removed += 1
    if removed:
        fsync_dir(root)
    return removed
