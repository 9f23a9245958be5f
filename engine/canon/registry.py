"""The transform registry: ``{domain}/{name}_v{N}.jsonata`` with a ``.meta.yaml`` beside it.

A transform's id is its path under the registry without the extension (for example
``email/gmail_to_canonical_v1``); its meta names the input (source, stream), the output
(kind, schema) and golden samples. Schemas live in ``{kind}.v1.json`` (JSON Schema
2020-12). Loading checks that ids, files and schemas agree and reports every problem.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from engine.config.load import BUNDLED_CONFIG_DIR, FAST_LOADER

DEFAULT_TRANSFORMS = BUNDLED_CONFIG_DIR / "transforms"
DEFAULT_SCHEMAS = BUNDLED_CONFIG_DIR / "schemas"
TRANSFORM_ID = re.compile(r"^[a-z0-9_]+/[a-z0-9_]+_v\d+$")
META_KEYS = {"id", "version", "input", "output", "description", "samples"}


class RegistryError(Exception):
    """A transform or schema in the registry is missing or inconsistent."""


@dataclass(frozen=True)
class Sample:
    """A golden sample: an input record and the canonical record it must become."""

    input: Path
    expected: Path


@dataclass(frozen=True)
class Transform:
    """One registered transform."""

    id: str
    version: int
    source: str
    stream: str
    kind: str
    schema: str
    description: str
    path: Path
    samples: tuple[Sample, ...] = field(default=())

    @property
    def expression(self) -> str:
        """The JSONata text."""
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        """sha256 of the JSONata file (recorded in provenance)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class Registry:
    """All transforms and schemas found in two folders."""

    transforms_dir: Path
    schemas_dir: Path
    transforms: dict[str, Transform] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, transforms_dir: Path | None = None, schemas_dir: Path | None = None) -> Registry:
        """Scan the folders; problems are collected, not raised."""
        reg = cls(transforms_dir or DEFAULT_TRANSFORMS, schemas_dir or DEFAULT_SCHEMAS)
        for key, folder in (("transforms_dir", reg.transforms_dir), ("schemas_dir", reg.schemas_dir)):
            if not folder.is_dir():  # a typo would otherwise read as "no transforms, all pass"
                reg.problems.append(f"stages.canonize.{key} {folder} is not a folder (missing, or a file)")
        for path in sorted(reg.transforms_dir.glob("*/*.jsonata")):
            try:
                t = _load_transform(reg.transforms_dir, path)
            except RegistryError as exc:
                reg.problems.append(str(exc))
                continue
            if not reg.schema_path(t.schema).is_file():
                reg.problems.append(f"{path}: output schema {t.schema!r} not found in {reg.schemas_dir}")
            reg.transforms[t.id] = t
        return reg

    def schema_path(self, schema: str) -> Path:
        """The file of a schema id such as ``email.v1``."""
        return self.schemas_dir / f"{schema}.json"

    def schema(self, schema: str) -> dict[str, Any]:
        """A schema document."""
        data: dict[str, Any] = orjson.loads(self.schema_path(schema).read_bytes())
        return data

    def get(self, transform_id: str) -> Transform:
        """A transform by id (RegistryError if unknown)."""
        try:
            return self.transforms[transform_id]
        except KeyError:
            raise RegistryError(
                f"transform {transform_id!r} is not in the registry {self.transforms_dir}"
            ) from None


def _load_transform(root: Path, path: Path) -> Transform:
    tid = path.relative_to(root).with_suffix("").as_posix()
    meta_path = path.with_suffix(".meta.yaml")
    if not TRANSFORM_ID.fullmatch(tid):
        raise RegistryError(f"{path}: transform files are named {{domain}}/{{name}}_v{{N}}.jsonata")
    if not meta_path.is_file():
        raise RegistryError(f"{path}: its meta file {meta_path.name} is missing")
    try:
        meta = yaml.load(meta_path.read_text(encoding="utf-8"), Loader=FAST_LOADER)  # libyaml safe loader
    except yaml.YAMLError:
        raise RegistryError(f"{meta_path}: invalid YAML") from None
    if not isinstance(meta, dict):
        raise RegistryError(f"{meta_path}: must be a mapping")
    unknown = set(meta) - META_KEYS
    if unknown:
        raise RegistryError(f"{meta_path}: unknown keys {sorted(unknown)}")
    try:
        if meta["id"] != tid:
            raise RegistryError(f"{meta_path}: id {meta['id']!r} does not match the file name ({tid})")
        samples = tuple(
            Sample(path.parent / s["input"], path.parent / s["expected"]) for s in meta.get("samples") or []
        )
        return Transform(
            id=tid, version=int(meta["version"]), source=str(meta["input"]["source"]),
            stream=str(meta["input"]["stream"]), kind=str(meta["output"]["kind"]),
            schema=str(meta["output"]["schema"]), description=str(meta.get("description", "")),
            path=path, samples=samples,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"{meta_path}: missing or invalid key {exc}") from None
