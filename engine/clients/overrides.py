"""The overrides file: the operator's decisions that settle what the rules cannot.

```yaml
version: 1
merge:                        # these clients are one person; the first id is kept
  - [3f9a2b1c0d4e5f60, 9e8d7c6b5a493827]
apart:                        # these clients are different people (reviewed conflict)
  - [1a2b3c4d5e6f7081, 2b3c4d5e6f708192]
link:                         # this document belongs to this client (null: to no one)
  - {document: "gmail:acct1-personal:email:18ab9716b553f535", client: 3f9a2b1c0d4e5f60}
  - {document: "sheets:intake:contact:1Sx/0/3", client: 1a2b3c4d5e6f7081, sha256: 9f86d0...}
ignore:                       # addresses (globs) and phone numbers that are no one's key
  - "noreply@*"
  - "+1 212 555 0100"
names:                        # other names a client goes by (a name before a marriage)
  3f9a2b1c0d4e5f60: ["Emily Brown"]
```

It is applied on every run; an entry that names a client or document that no longer
exists is counted (warning ``OVERRIDE_UNUSED``) and otherwise ignored.

A ``link`` decides a document's client whatever the rules say, but it names the document by
its place in a source, and some places move: a sheet row's id is its row number, so deleting
a row above it gives the number to the next person's row. So a link holds for the document it
was first applied to (its keys, participants and references: the resolver's pins), or for
the exact content its ``sha256`` names (:func:`check_pins`).
"""

from __future__ import annotations

import difflib
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.config.errors import format_loc, plain_errors
from engine.config.load import duplicate_key_locs


class OverrideLink(BaseModel):
    """One document's client, decided by a person."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    document: str
    """``source:account:kind:source_id`` of the document (as `clients unlinked` prints it)."""
    client: str | None
    """The client id, or null to keep the document out of every chart."""
    sha256: str | None = None
    """The document's content sha256 (``--json`` of ``clients unlinked`` and ``clients show``
    prints it): the link holds for this exact content only (a transform change changes it
    too). Without it, for the document it was first applied to: the same keys, participants
    and references. Otherwise it is not applied (warning ``OVERRIDE_STALE``)."""

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be the document's sha256: 64 lower-case hex digits")
        return value

    @field_validator("document")
    @classmethod
    def _four_parts(cls, value: str) -> str:
        if len(value.split(":", 3)) != 4 or not all(value.split(":", 3)):
            raise ValueError("a document is written source:account:kind:source_id")
        return value


class Overrides(BaseModel):
    """The whole overrides file."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    version: int = 1
    """The file format version (1)."""
    merge: list[list[str]] = Field(default_factory=list)
    """Groups of client ids that are one person; the first id of a group is kept."""
    apart: list[list[str]] = Field(default_factory=list)
    """Groups of client ids that are different people: their shared keys are reviewed."""
    link: list[OverrideLink] = Field(default_factory=list)
    """Documents linked to a client (or to no one) whatever the rules say."""
    ignore: list[str] = Field(default_factory=list)
    """E-mail addresses (globs allowed) and phone numbers that are nobody's key."""
    names: dict[str, list[str]] = Field(default_factory=dict)
    """Client id -> other names the client goes by (a name before a marriage): a document
    that gives one of them fits the client as the record's own name does. No key: a name
    never links a document by itself."""

    @field_validator("names", mode="before")
    @classmethod
    def _digit_ids(cls, value: object) -> object:
        """A client id of 16 decimal digits reads as a YAML number: its digits are the id."""
        if isinstance(value, dict):
            return {str(k) if type(k) is int and len(str(k)) == 16 else k: v for k, v in value.items()}
        return value

    @field_validator("merge", "apart", mode="before")
    @classmethod
    def _digit_ids_in_groups(cls, value: object) -> object:
        if isinstance(value, list):
            return [[str(c) if type(c) is int and len(str(c)) == 16 else c for c in g] if isinstance(g, list) else g
                    for g in value]
        return value

    @field_validator("names")
    @classmethod
    def _names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for cid, names in value.items():
            if not names or any(not isinstance(n, str) or not n.strip() for n in names):  # the key: PHI?
                raise ValueError("each client id lists one or more names (non-empty text)")
            if not re.fullmatch(r"[0-9a-f]{16}", cid):  # a name put where the id goes
                raise ValueError("each key is a client id (16 hex digits, as `clients list` prints it), "
                                 "not a name")
        return value

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:  # a newer format would be read with other meanings: refuse, never guess
            raise ValueError(f"must be 1 (the only overrides format this version reads), got {value}")
        return value

    @field_validator("link")
    @classmethod
    def _one_decision_a_document(cls, value: list[OverrideLink]) -> list[OverrideLink]:
        seen: dict[str, tuple[str | None, str | None]] = {}
        for n, item in enumerate(value):
            said = (item.client, item.sha256)
            if seen.setdefault(item.document, said) != said:  # the last one silently won
                raise ValueError(f"entry {n} links a document an earlier entry links otherwise: "
                                 "one document, one decision (remove one of them)")
        return value

    @field_validator("merge", "apart")
    @classmethod
    def _groups(cls, value: list[list[str]]) -> list[list[str]]:
        for group in value:
            if len(group) < 2 or len(set(group)) != len(group):
                raise ValueError("each group lists at least two different client ids")
        return value


    @model_validator(mode="after")
    def _not_merged_and_apart(self) -> Overrides:
        """Two clients a ``merge`` makes one (groups chain) and an ``apart`` keeps apart: the
        merge won silently and put one person's documents in the other's chart."""
        root: dict[str, str] = {}

        def find(x: str) -> str:
            while root.get(x, x) != x:
                x = root[x]
            return x
        for group in self.merge:
            for other in group[1:]:
                root[find(other)] = find(group[0])
        for n, group in enumerate(self.apart):
            merged = [c for i, c in enumerate(group) if any(find(c) == find(d) for d in group[:i])]
            if merged:
                raise ValueError(f"apart entry {n} keeps apart clients that a merge entry makes one "
                                 "(one pair, one decision: remove the merge or the apart)")
        return self


class OverridesError(Exception):
    """The overrides file cannot be read; the message names the file and the key path."""


def load_overrides(path: Path | None) -> tuple[Overrides, bytes]:
    """The overrides and the file's bytes (for the skip fingerprint); empty when no file."""
    if path is None or not path.exists():
        return Overrides(), b""
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw) if raw.strip() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise OverridesError(f"{path}: cannot read the overrides file ({type(exc).__name__})") from None
    if data is None:
        data = {}
    dups = duplicate_key_locs(raw.decode("utf-8", errors="replace"))
    if dups:  # two `link:` sections: YAML kept the second only, the first decisions were lost
        line, loc, first = dups[0]  # a repeated key may be a name or an address: masked
        raise OverridesError(f"{path}:{line}: {format_loc(_own_keys(loc))}: duplicate key (already set on "
                             f"line {first}); YAML would keep only the last one")
    try:
        return Overrides.model_validate(data), raw
    except ValidationError as exc:
        where = "; ".join(f"{format_loc(_own_keys(loc))}: {msg}"  # our words; values only by kind
                          for loc, msg in plain_errors(exc.errors(), Overrides, values=False))
        raise OverridesError(f"{path}: {where}") from None


_FORMAT_KEYS = frozenset(Overrides.model_fields) | frozenset(OverrideLink.model_fields) | {"[key]"}


def _own_keys(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A location with only the format's own keys: any other key came from the file and may be
    a name or an e-mail address (a client's name written where its id goes: PHI printed by
    `validate` and the dashboard's validate screen)."""
    out = tuple(p if isinstance(p, int) or p in _FORMAT_KEYS else "<a key of the file>" for p in loc)
    if len(out) > 1 and out[0] == "names":  # a client id, or a phone number written there (PHI)
        out = ("names", "<a key of the file>", *out[2:])
    if loc and out[0] != loc[0] and isinstance(loc[0], str) and _typo(loc[0]):
        out = (f"{loc[0]} (did you mean {_typo(loc[0])}?)", *out[1:])  # `links:` for `link:`
    return out


def _typo(key: str) -> str | None:
    """The top-level key ``key`` was probably meant to be: only for a lower-case word close to
    one (a name or an address written there is never printed)."""
    if not re.fullmatch(r"[a-z_]{2,12}", key):
        return None
    near = difflib.get_close_matches(key, list(Overrides.model_fields), n=1, cutoff=0.7)
    return near[0] if near else None


def check_pins(overrides: Overrides, current: Callable[[str], str | None]
               ) -> tuple[Overrides, list[tuple[str, str]]]:
    """The overrides without the links whose ``sha256`` is not their document's content any
    more, and those links' (document, client or ""). ``current`` gives a reference's content sha256 in the index
    (None when not indexed: that link is left for the resolver to count as unused). A link
    without ``sha256`` is held to the identity it was first applied to by the resolver
    (``engine.clients.resolve.Resolver.pins``)."""
    kept: list[OverrideLink] = []
    stale: list[tuple[str, str]] = []
    for item in overrides.link:
        now = current(item.document) if item.sha256 is not None else None
        if now is not None and now != item.sha256:
            stale.append((item.document, item.client or ""))
            continue
        kept.append(item)
    return (overrides, []) if not stale else (overrides.model_copy(update={"link": kept}), stale)


def stored_pins(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """The pins the last projection stored (none before the first, or in older tables)."""
    try:
        return {(d, c): s for d, c, s in conn.execute("SELECT document, client, identity FROM client_override_pins")}
    except sqlite3.OperationalError:
        return {}


def indexed_sha256(conn: sqlite3.Connection) -> Callable[[str], str | None]:
    """A document reference's content sha256 in the index (for :func:`check_pins`)."""
    def current(text: str) -> str | None:
        source, account, kind, entity_id = text.split(":", 3)
        row = conn.execute("SELECT sha256 FROM documents WHERE entity_id = ? AND kind = ? AND source = ? "
                           "AND account = ?", (entity_id, kind, source, account)).fetchone()
        return row[0] if row else None
    return current
