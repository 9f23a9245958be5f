"""Generates the key reference of docs/configuration.md from the config models.

The field docstrings of :mod:`engine.config` are the single source of truth; a test
checks that the committed document matches what this module generates, so the docs can
never drift from the code. Run ``python -m engine.config.doc --write`` after changing a model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from engine.config import PipelineConfig, document_models

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED KEYS (python -m engine.config.doc --write) -->"
END = "<!-- END GENERATED KEYS -->"


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}


def _type_name(annotation: Any) -> str:
    """A reader's name for a type: ``list of string``, ``one of a, b``, ``path``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return "list of " + _type_name(args[0])
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if args and type(None) in args:
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(info: Any) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
        if isinstance(value, BaseModel):
            return "(see below)"
        return f"`{value!r}`" if value not in ({}, []) else f"`{'{}' if value == {} else '[]'}`"
    if info.default is PydanticUndefined:
        return "**required**"
    return f"`{info.default!r}`" if info.default is not None else "unset"


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Markdown table rows for every key of ``model`` and its sub-models."""
    out: list[str] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _submodel(info.annotation)
        list_like = get_origin(info.annotation) is list or "list[" in str(info.annotation)
        shown = f"{key}[]" if list_like and sub else key
        doc = (info.description or "").replace("\n", " ").replace("|", "\\|")
        out.append(f"| `{shown}` | {_type_name(info.annotation)} "
                   f"| {_default(info)} | {doc} |")
        if sub is not None:
            nested.append((f"{shown}.", sub))
    for pre, sub in nested:
        out += rows(sub, pre)
    return out


def generate() -> str:
    """The generated block, markers included."""
    document_models()
    head = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join([BEGIN, *head, *rows(PipelineConfig), END])


def splice(text: str) -> str:
    """``text`` with its generated block replaced by a fresh one."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + generate() + text[end:]


def main() -> int:
    """Print the block, or rewrite docs/configuration.md with ``--write``."""
    if "--write" in sys.argv:
        DOC.write_text(splice(DOC.read_text()))
    else:
        print(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
