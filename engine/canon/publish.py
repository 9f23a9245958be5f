"""An account's canonical files: published as one generation, read as one generation.

An account's canonical output is three files (``{account}.jsonl``, ``{account}.meta.json``
and ``{account}.rejects.jsonl``), and the meta's ``output.sha256`` must describe the data
beside it. They are published together as one generation of an
:class:`engine.store.fsgen.GenerationStore` (``canonical/{source}/.{account}.gen/gNNNNNN/``) behind
the pointer ``.{account}.gen/CURRENT``; replacing the pointer is the single commit step. The
plain names DESIGN.md fixes (``canonical/{source}/{account}.jsonl`` ...) are hard links to
the current generation's files, re-linked right after the pointer moves.

Every reader that needs the files to agree (the index loader, ``verify``, ``inspect``, the
canonize skip check) goes through :func:`open_current` / :func:`read_meta`, which resolve the
pointer and open the files of one generation together: the old set or the new one, never a
mix, with no repair step first. :func:`recover` (writers, under the workspace lock) removes
what a killed writer left (a partial or orphaned generation, the temporary files and the
journal of the older publish format).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from engine.store.fsgen import Generation, GenerationMissing, GenerationStore, NotAFile
from engine.store.fsutil import section

__all__ = ["AccountFiles", "CanonicalView", "NotAFile", "meta_bytes", "open_current", "read_meta", "recover"]

ROLES = ("data", "meta", "rejects")
_OLD_JOURNAL = re.compile(r"\.(?P<name>.+?)(?:\.next|\.tmp-\d+|\.link-\d+)")


@dataclass(frozen=True)
class AccountFiles:
    """The canonical files of one account and their generation store."""

    folder: Path
    account: str

    def name(self, role: str) -> str:
        """The file name of ``data``, ``meta`` or ``rejects``."""
        suffix = {"data": ".jsonl", "meta": ".meta.json", "rejects": ".rejects.jsonl"}.get(role)
        if suffix is None:
            raise ValueError(f"unknown canonical file role {role!r}")
        return f"{self.account}{suffix}"

    def path(self, role: str) -> Path:
        """The plain path of ``role`` (a hard link to the current generation's file)."""
        return self.folder / self.name(role)

    @property
    def data(self) -> Path:
        """The canonical records (plain name)."""
        return self.path("data")

    @property
    def meta(self) -> Path:
        """The provenance (inputs, output sha256, counts) (plain name)."""
        return self.path("meta")

    @property
    def rejects(self) -> Path:
        """Records that failed their transform or schema, with the reason (PHI) (plain name)."""
        return self.path("rejects")

    @property
    def store(self) -> GenerationStore:
        """The generations of this account's files."""
        return GenerationStore(self.folder, self.account,
                               legacy=(self.name("data"), self.name("meta")),
                               owned=(self.name("rejects"),))

    def leftovers(self) -> list[Path]:
        """Hidden files of this account from attempts that did not finish (any format)."""
        if not self.folder.is_dir():
            return []
        names = {self.name(r) for r in ROLES} | {f"{self.account}.commit.json"}
        out = [p for p in self.folder.iterdir()
               if p.name == f".{self.account}.commit.json"
               or ((m := _OLD_JOURNAL.fullmatch(p.name)) and m.group("name") in names)]
        root = self.store.root
        if root.is_dir():
            out += [p for p in root.iterdir() if p.name.startswith(".")]
        return sorted(out)


def recover(files: AccountFiles) -> str | None:
    """Clear what an interrupted publish left; ``"back"`` when there was something, else None.

    A generation that was not committed is simply dropped; one that was is already current
    (the pointer is the commit). Plain-name links left stale by a kill are not re-linked
    here: canonize sees them (``mirrors_current``) and republishes, which re-links. Call it
    only while holding the workspace lock (no other writer of the account).
    """
    found = False
    for p in files.leftovers():
        if p.parent == files.folder:
            p.unlink(missing_ok=True)
            found = True
    found = files.store.recover(relink=False) or found
    return "back" if found else None


@dataclass
class CanonicalView:
    """One generation of an account's canonical files, opened together."""

    generation: int
    meta: dict[str, Any] | None
    """The parsed meta file; None when it is missing or does not parse as an object."""
    meta_present: bool
    data: IO[bytes] | None
    rejects_present: bool


@contextmanager
def open_current(files: AccountFiles) -> Iterator[CanonicalView | None]:
    """The current generation's meta (parsed) and data (open), or None with no output yet."""
    try:
        with files.store.open(files.name("meta"), files.name("data"),
                              files.name("rejects")) as (gen, fh):
            yield _view(files, gen, fh)
    except GenerationMissing:
        yield None


def _view(files: AccountFiles, gen: Generation, fh: dict[str, IO[bytes] | None]) -> CanonicalView:
    meta_fh = fh[files.name("meta")]
    meta: dict[str, Any] | None = None
    if meta_fh is not None:
        try:
            parsed = orjson.loads(meta_fh.read())
            meta = parsed if isinstance(parsed, dict) else None
        except (OSError, ValueError):
            meta = None
    return CanonicalView(generation=gen.number, meta=meta, meta_present=meta_fh is not None,
                         data=fh[files.name("data")],
                         rejects_present=fh[files.name("rejects")] is not None)


def plain_names_agree(files: AccountFiles, *, deep: bool = False) -> bool:
    """Whether every plain name (``{account}.jsonl``, ``.meta.json``, ``.rejects.jsonl``...:
    what readers outside the engine open) holds the current generation's file: a canonize
    stopped while re-linking them left a new data file beside an old meta or rejects file.
    Links to the generation's files agree at once; copies (a workspace restored without
    hard links) agree when their bytes are the same: the meta byte for byte, the others by
    size (``status``, which must stay fast), or, ``deep``, the data by the sha256 the meta
    names and the others byte for byte."""
    store = files.store
    if store.mirrors_current():
        return True
    gen = store.current()
    if gen is None:
        return True
    data = files.name("data")
    try:
        for name in sorted(set(gen.names()) | set(store.owned)):
            plain, mine = store.folder / name, gen.path(name)
            if plain.exists() != mine.exists():
                return False
            if not plain.exists() or os.path.samestat(plain.stat(), mine.stat()):
                continue
            if plain.stat().st_size != mine.stat().st_size:
                return False
            if name == files.name("meta") or (deep and name != data):  # the meta is small: always
                if plain.read_bytes() != mine.read_bytes():
                    return False
            elif name == data and deep and not _hashes_to_meta(plain, store.folder / files.name("meta")):
                return False
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _hashes_to_meta(data: Path, meta: Path) -> bool:
    want = section(orjson.loads(meta.read_bytes()), "output").get("sha256")
    sha = hashlib.sha256()
    with open(data, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return bool(want == sha.hexdigest())


def current_output(files: AccountFiles) -> tuple[dict[str, Any], str] | None:
    """The current generation's meta and the sha256 of its data file as it is now (read
    whole), when its plain names link to it; None otherwise (no output, a stale name, no
    meta or data, an unreadable file)."""
    if not files.store.mirrors_current():  # a plain name was deleted, replaced or is stale
        return None
    try:
        with open_current(files) as view:
            if view is None or view.meta is None or view.data is None:
                return None
            sha = hashlib.sha256()
            while chunk := view.data.read(1 << 20):
                sha.update(chunk)
            return view.meta, sha.hexdigest()
    except OSError:
        return None


def read_meta(files: AccountFiles) -> dict[str, Any] | None:
    """The current generation's meta, parsed; None when there is none or it is unreadable."""
    try:
        with files.store.open(files.name("meta")) as (_gen, fh):
            meta_fh = fh[files.name("meta")]
            if meta_fh is None:
                return None
            parsed = orjson.loads(meta_fh.read())
    except (GenerationMissing, OSError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def meta_bytes(meta: dict[str, Any]) -> bytes:
    """The meta file's bytes: indented, key-sorted JSON with a final newline."""
    return orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
