"""Names that come from the data are PHI: which ones may be shown, and what stands in for the rest.

A tap chooses its own stream names, schema property names and the file names it reports,
and some take them from the data (a spreadsheet tap names a stream after the file
``intake_<client name>_<birth date>.csv``). Such a name may leave the workspace (events,
logs, the run history, the dashboard, any command's output) only when the config declares
it:

* a stream is declared by a mapping's ``stream`` (for the extractor's source) or by the
  extractor's ``streams: [...]`` list;
* a field (a schema property or a dotted field path) of a declared stream is declared when
  every segment of its path is a name the mapped transform's JSONata text uses, or a
  property name in a schema file of the configured schema folder (:func:`declared_fields`);
* a file name a tap reports is never declared.

Everything else is shown as a stable placeholder, ``stream #3 (a1b2c3)``: its position in
the list being shown and the first hex digits of an HMAC-SHA256 of the name under a key
that lives inside the workspace (``keys/names.key``, 0600, 32 random bytes). The key makes
the hash useless for guessing a name from a list of client names outside the workspace,
and stable across runs and faces, so the same stream has the same tag everywhere. The real
names stay in the vault manifests and are printed only by a command that shows PHI on
request (``lorchestra list streams EXTRACTOR --reveal``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from engine.config import CanonizeStage, Extractor, PipelineConfig
from engine.store.fsutil import ensure_dir, fsync_dir, open_private, read_regular
from engine.store.workspace import Workspace
from engine.vault.paths import segment

Kind = Literal["stream", "field", "file"]
KEY_BYTES = 32
TAG_CHARS = 6
IDENTIFIER = re.compile(r"`([^`]+)`|[A-Za-z_$][A-Za-z0-9_$]*")


def key_path(ws: Workspace) -> Path:
    """Where the workspace's name key lives (never cleaned: tags stay stable)."""
    return ws.root / "keys" / "names.key"


def load_key(ws: Workspace, create: bool = True) -> bytes | None:
    """The workspace's name key; created (0600, atomically, race-free) when missing.

    None when it is missing and ``create`` is false, when the workspace does not exist, or
    when it cannot be read or written (placeholders then carry no tag).
    """
    path = key_path(ws)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    if not create or not ws.root.is_dir():
        return None
    try:
        return _create_key(path)
    except OSError:
        return None


def _read_key(path: Path) -> bytes | None:
    data = read_regular(path)  # a FIFO planted there never blocks a reader (NotRegularFile: OSError)
    return data if len(data) == KEY_BYTES else None


def _create_key(path: Path) -> bytes | None:
    """Write a new key under a temporary name and link it into place; the first writer wins."""
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    with open_private(tmp, "wb") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES))
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if another process created the key first: use theirs
        fsync_dir(path.parent)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def tag(key: bytes | None, kind: Kind, name: str) -> str | None:
    """The short keyed hash of a name (None without a key)."""
    if key is None:
        return None
    digest = hmac.new(key, f"{kind}\0{name}".encode("utf-8", "surrogatepass"), hashlib.sha256)
    return digest.hexdigest()[:TAG_CHARS]


def placeholder(kind: Kind, position: int, tag_hex: str | None) -> str:
    """``stream #3 (a1b2c3)``: a position and a tag, never the name."""
    return f"{kind} #{position}" + (f" ({tag_hex})" if tag_hex else "")


def declared_streams(ex: Extractor, canonize: CanonizeStage) -> frozenset[str]:
    """The stream names of an extractor the config declares (its list and its source's mappings).

    Takes the canonize settings rather than the whole config so a stage worker can call it
    with its TaskSpec (``spec.extractor``, ``spec.canonize``) before naming a stream in an event.
    """
    mapped = {m.stream for m in canonize.mappings if m.source == ex.source}
    return frozenset(ex.streams) | frozenset(mapped)


@dataclass
class Namer:
    """Shows names of one kind: declared ones as they are, others as placeholders.

    ``reveal`` shows every name (for the commands that print PHI on request). The key is
    read (or created) only when a placeholder is first needed, so a face that shows only
    declared names never touches the workspace.
    """

    ws: Workspace
    declared: frozenset[str] = frozenset()
    kind: Kind = "stream"
    reveal: bool = False
    create_key: bool = True
    _key: bytes | None = field(default=None, repr=False)
    _loaded: bool = field(default=False, repr=False)

    def is_shown(self, name: str) -> bool:
        """Whether the name itself may be shown."""
        return self.reveal or name in self.declared

    def show(self, name: str, position: int) -> str:
        """The name, or its placeholder at ``position`` (1-based)."""
        if self.is_shown(name):
            return name
        return placeholder(self.kind, position, self.tag(name))

    def tag(self, name: str) -> str | None:
        """The keyed hash of a name (loads the key on first use)."""
        if not self._loaded:
            self._key, self._loaded = load_key(self.ws, self.create_key), True
        return tag(self._key, self.kind, name)

    def show_all(self, names: Iterable[str]) -> list[tuple[str, str]]:
        """(real name, shown name) for the names in sorted order; positions count from 1."""
        return [(n, self.show(n, i)) for i, n in enumerate(sorted(names), start=1)]

    def show_path(self, path: str, position: int) -> str:
        """A dotted field path: shown when every segment is declared, else a placeholder."""
        if self.reveal or all(seg in self.declared for seg in path.split(".") if seg):
            return path
        return placeholder(self.kind, position, self.tag(path))


def stream_namer(cfg: PipelineConfig, ex: Extractor, ws: Workspace, reveal: bool = False,
                 create_key: bool = True) -> Namer:
    """The namer of an extractor's streams."""
    return Namer(ws, declared_streams(ex, cfg.stages.canonize), "stream", reveal, create_key)


def transform_names(expression: str) -> set[str]:
    """Every name a JSONata expression's text uses (identifiers and `backquoted` names).

    Words inside string literals count too: they are config text, not data. Over-inclusion
    only shows a name the config itself spells out.
    """
    return {m.group(1) or m.group(0) for m in IDENTIFIER.finditer(expression)}


def schema_property_names(doc: Any) -> set[str]:
    """Every key of every ``properties`` object in a JSON Schema document (recursively)."""
    out: set[str] = set()
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                out.update(str(k) for k in props)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return out


def declared_fields(cfg: PipelineConfig, ex: Extractor, stream: str) -> frozenset[str]:
    """Field-name segments of ``stream`` that may be shown (empty for an undeclared stream).

    The names the mapped transform's JSONata text uses, and the property names of the
    configured schema files. A path is shown when all its segments are in this set
    (:meth:`Namer.show_path`); drift reports and schema views use this rule.
    """
    if stream not in declared_streams(ex, cfg.stages.canonize):
        return frozenset()
    from engine.canon.registry import DEFAULT_SCHEMAS, Registry

    canon = cfg.stages.canonize
    names: set[str] = set()
    reg = Registry.load(canon.transforms_dir, canon.schemas_dir)
    for m in canon.mappings:
        t = reg.transforms.get(m.transform)
        if m.source == ex.source and m.stream == stream and t is not None:
            try:
                names |= transform_names(t.expression)
            except OSError:
                continue
    folder = canon.schemas_dir or DEFAULT_SCHEMAS
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            names |= schema_property_names(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue
    return frozenset(names)


def field_namer(cfg: PipelineConfig, ex: Extractor, stream: str, ws: Workspace,
                reveal: bool = False, create_key: bool = True) -> Namer:
    """The namer of one stream's field names (schema properties, field paths)."""
    return Namer(ws, declared_fields(cfg, ex, stream) if not reveal else frozenset(), "field", reveal, create_key)


def file_namer(ws: Workspace, reveal: bool = False) -> Namer:
    """The namer of file names a tap reports (BATCH files): never declared."""
    return Namer(ws, frozenset(), "file", reveal)


def schema_field_paths(schema: Any, max_depth: int = 4) -> list[str]:
    """The dotted field paths a Singer SCHEMA's properties define (nested objects followed),
    each key as :func:`engine.vault.paths.segment` writes it (a key with a dot in backticks),
    so a field the schema and the records both name is listed once."""
    out: list[str] = []

    def walk(node: Any, prefix: str, depth: int) -> None:
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict) or depth > max_depth:
            return
        for name, sub in props.items():
            path = f"{prefix}{segment(name)}"  # written as the records' own paths are
            out.append(path)
            walk(sub, f"{path}.", depth + 1)

    walk(schema, "", 1)
    return out
