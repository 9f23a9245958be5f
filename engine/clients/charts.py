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

import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.clients import folders, markdown
from engine.clients.markdown import column  # noqa: F401  (re-exported)
from engine.clients.model import Client, DocFacts, Link, Projection
from engine.clients.sink import Rendered, Spill, listing
from engine.store.fsutil import fsync_dir

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_FOLDER = re.compile(r"^.+ \([0-9a-f]{8,16}\)$")
MAX_NAME = 80
"""Characters of a person's name kept in a folder name (then the byte limit below applies)."""
NAME_MAX_BYTES = 255
"""The longest name of one file or folder most file systems take, in bytes (ext4, XFS, Btrfs,
ZFS, APFS): a longer name fails with ENAMETOOLONG."""
MAX_FOLDER_BYTES = NAME_MAX_BYTES - len(folders.ASIDE) - 8
"""The longest chart folder name in UTF-8 bytes (240), id suffix included: room for the longest
name :mod:`engine.clients.folders` derives from it (``.aside-<folder>``; its staging, trash and
journal names do not contain the folder name) and a margin of 8 bytes."""
_SUFFIX_BYTES = len(" (0123456789abcdef)")
MAX_NAME_BYTES = MAX_FOLDER_BYTES - _SUFFIX_BYTES
"""The longest name part in bytes whatever the id suffix (8 to 16 hex digits)."""
_SKIN_TONES = range(0x1F3FB, 0x1F400)
_FLAGS = range(0x1F1E6, 0x1F200)
FILES = ("client.md", "timeline.md", "sessions.md", "billing.md")
STAGE_BATCH = 500
"""Folders staged before one file-system flush and their swaps (bounds the extra disk use)."""


def safe_name(text: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A folder-name-safe form of a person's name (no separators or control characters), at
    most :data:`MAX_NAME` characters and ``max_bytes`` bytes of UTF-8.

    The 80-character cut counts code points, as it always did (so no existing folder is
    renamed; it may leave a flag or a mark cut from its letter at the very end). The byte
    cut applies only to names past ``max_bytes`` (a name that fitted keeps exactly the
    folder name it had) and falls between two characters as a reader sees them: never
    inside a UTF-8 sequence, nor between a character and its combining marks, skin tone or
    the other half of a flag."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(_safe_char(c) for c in text)
    text = re.sub(r"\s+", " ", _UNSAFE.sub("-", text)).strip(" .")
    text = text[:MAX_NAME].rstrip(" .")
    if len(text.encode()) > max_bytes:
        text = _cut(text, max_bytes).rstrip(" .")
    return text or "Unnamed"


def _safe_char(c: str) -> str:
    cat = unicodedata.category(c)
    if cat in ("Cc", "Cf", "Zl", "Zp"):  # controls, format characters, line separators
        return " "
    return "-" if cat == "Cs" else c  # a lone surrogate has no UTF-8 form


def _cut(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` bytes of UTF-8 that ends where a
    whole character as read ends (a grapheme, in the cases that occur in names)."""
    end = size = 0
    for c in text:
        size += len(c.encode())
        if size > max_bytes:
            break
        end += 1
    cut = end
    while 0 < cut < len(text) and _extends(text[cut]):  # the first character left out
        cut -= 1  # belongs to the one before it: leave that out too
    if cut == 0:  # one giant cluster: keep its base and what fits of its marks
        cut = end
    if cut < len(text) and ord(text[cut]) in _FLAGS:
        run = 0
        while run < cut and ord(text[cut - 1 - run]) in _FLAGS:
            run += 1
        cut -= run % 2  # flags are pairs of regional indicators: never keep half of one
    return text[:cut]


def _extends(c: str) -> bool:
    """True for a character that joins the one before it (combining mark, skin tone)."""
    return unicodedata.category(c) in ("Mn", "Mc", "Me") or ord(c) in _SKIN_TONES


def assign_folders(clients: dict[str, Client]) -> None:
    """Give every client its folder name; a short id grows only where it would be another
    client's (two new clients sharing 8 hex digits no longer rename every other folder)."""
    ids = sorted(clients)
    for n, cid in enumerate(ids):
        shared = max((_common(cid, ids[m]) for m in (n - 1, n + 1) if 0 <= m < len(ids)), default=0)
        width = min(16, max(8, shared + 1 + (shared + 1) % 2))  # even widths, as they always were
        c = clients[cid]
        suffix = f" ({cid[:width]})"
        c.folder = safe_name(c.card.sort_name, MAX_FOLDER_BYTES - len(suffix)) + suffix


def _common(a: str, b: str) -> int:
    """The length of the common prefix of ``a`` and ``b``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def is_chart_folder(name: str) -> bool:
    """True for names this module makes (``Name (0123abcd)``)."""
    return bool(_FOLDER.match(name)) and not name.startswith(".")


@dataclass
class ChartInput:
    """One client and what it is linked to."""

    client: Client
    items: Iterable[tuple[Link, DocFacts]]
    ordered: bool = False
    """True when ``items`` already come in chart order (:func:`markdown.newest_first`): they are
    then rendered as they come, never held together."""
    zone: str = "UTC"
    """The time zone the files show times in (``clients.timezone``)."""


def render_streams(chart: ChartInput, spill: Spill | None) -> tuple[bytes, dict[str, Rendered]]:
    """``client.md`` with a placeholder for projected_at, and the other three files
    (rendered in one pass over the items; bytes past a bound go to ``spill``)."""
    items = chart.items if chart.ordered else markdown.newest_first(chart.items)
    client_md, files = markdown.render_files(chart.client, items, spill, chart.zone)
    return client_md.encode(), files


def render_template(chart: ChartInput) -> dict[str, bytes]:
    """The four files of a chart folder, ``client.md`` with a placeholder for projected_at."""
    template, files = render_streams(chart, None)
    return {"client.md": template, **{name: f.data or b"" for name, f in files.items()}}


def stamp(template: bytes, projected_at: str) -> bytes:
    """``client.md`` with its projected_at filled in."""
    return template.replace(markdown.STAMP.encode(), markdown.yaml_str(projected_at).encode())


def stamped(files: dict[str, bytes], projected_at: str) -> dict[str, bytes]:
    """A template with its projected_at filled in."""
    out = dict(files)
    out["client.md"] = stamp(files["client.md"], projected_at)
    return out


def render(chart: ChartInput, projected_at: str) -> dict[str, bytes]:
    """The four files of a chart folder."""
    return stamped(render_template(chart), projected_at)


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
                 items_of: Callable[[str], Iterable[tuple[Link, DocFacts]]] | None = None,
                 ordered: bool = False) -> ChartStats:
    """Bring ``root`` (``{workspace}/clients``) in line with the projection.

    ``extra`` gives more files of a client's folder by client id (``measures.md``);
    ``items_of`` a client's links and their documents' facts (a streamed projection reads
    them per client: :func:`engine.clients.stream.chart_items`), else ``p.links``; with
    ``ordered`` they come in chart order (:func:`engine.clients.stream.chart_items_in_order`)
    and are rendered as they come, never held together.
    """
    folders.recover(root)
    stats = write_folders(root, p, sorted(p.clients), now, on_folder, extra, items_of, ordered)
    stats.removed = remove_gone(root, p)
    return stats


def write_folders(root: Path, p: Projection, ids: list[str], now: str,
                  on_folder: Callable[[int], None] | None = None,
                  extra: Callable[[str], dict[str, bytes]] | None = None,
                  items_of: Callable[[str], Iterable[tuple[Link, DocFacts]]] | None = None,
                  ordered: bool = False) -> ChartStats:
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
    spill = Spill(root)

    def swap_staged() -> None:
        folders.sync_tree(root)  # every staged file durable before any folder is swapped in
        for name, staging in staged:
            folders.swap_in(root, name, staging)
        fsync_dir(root)
        staged.clear()

    try:
        for n, cid in enumerate(ids):
            client = p.clients[cid]
            template, files = render_streams(ChartInput(client, items_of(cid), ordered, p.timezone),
                                             spill)  # items freed here
            if extra is not None:
                files.update((k, Rendered.of(v)) for k, v in extra(cid).items())
            staging = _stage_chart(root, client.folder, template, files, now)
            if staging is None:
                stats.unchanged += 1
            else:
                staged.append((client.folder, staging))
                stats.written += 1
                stats.bytes += sum(f.size for f in files.values())
            if len(staged) >= STAGE_BATCH:
                swap_staged()
            if on_folder is not None:
                on_folder(n + 1)
        if staged:
            swap_staged()
    finally:
        spill.close()
    return stats


GENERATED = frozenset({"client.md", "timeline.md", "sessions.md", "billing.md", "measures.md"})
"""The files a chart folder's projection writes; any other file in it is the practice's own
and is kept (hard-linked into the new folder) whenever the folder is rewritten."""


def _stage_chart(root: Path, name: str, template: bytes, files: dict[str, Rendered], now: str) -> Path | None:
    """Stage a chart folder (None when ``root/name`` already holds exactly these files, with
    its own projected_at): unchanged files are hard links to the old ones; ``client.md``
    keeps the old projected_at only when nothing else changed."""
    final = root / name
    old = listing(final)
    kept = sorted(n for n in old if n not in GENERATED and not n.startswith("."))  # the user's own files
    old = {n: size for n, size in old.items() if n in GENERATED}
    previous = None
    if "client.md" in old:
        with open(final / "client.md", "rb") as fh:
            previous = previous_projected_at({"client.md": fh.read()})
    files["client.md"] = Rendered.of(stamp(template, previous or now))
    same = {fname: f.equals(final / fname, old.get(fname)) for fname, f in files.items()}
    if set(old) == set(files) and all(same.values()):
        for f in files.values():
            f.discard()
        return None
    files["client.md"] = Rendered.of(stamp(template, now))
    same["client.md"] = files["client.md"].equals(final / "client.md", old.get("client.md"))
    staging = folders.new_staging(root, name)
    for fname, f in sorted(files.items()):
        if same[fname]:
            os.link(final / fname, staging / fname)
            f.discard()
        else:
            f.place(staging / fname)
    for fname in kept:  # a note the practice put beside the chart goes with it
        os.link(final / fname, staging / fname)
    return staging


def remove_gone(root: Path, p: Projection) -> int:
    """Remove the chart folders of clients that are gone; return how many."""
    wanted = {c.folder for c in p.clients.values()}
    removed = 0
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and is_chart_folder(entry.name) and entry.name not in wanted:
            if any(n not in GENERATED and not n.startswith(".") for n in listing(entry)):
                for fname in GENERATED:  # the practice's own notes stay, in the old folder
                    (entry / fname).unlink(missing_ok=True)
                continue
            folders.remove_folder(root, entry.name)
            removed += 1
    if removed:
        fsync_dir(root)
    return removed
