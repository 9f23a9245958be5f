"""Field docstrings of pydantic models, read only when documentation is made.

Why this module exists: pydantic's ``use_attribute_docstrings`` reads each model's source
when the class is created, so every ``lorchestra`` command paid for parsing
:mod:`engine.config`'s docstrings at import although only ``config schema`` and
``python -m engine.config.doc`` show them (issue 18: CLI start-up). The models keep their
docstrings under each field as before; :func:`document` parses the defining module once,
with the same rule as pydantic (a string statement right after an annotated field), sets
``FieldInfo.description`` and rebuilds the models so ``model_json_schema()`` carries them.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterable

from pydantic import BaseModel

_DONE: set[type[BaseModel]] = set()


def class_docstrings(module_name: str) -> dict[str, dict[str, str]]:
    """``{class name: {field: docstring}}`` for every top-level class of a module."""
    tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = _field_docs(node.body)
    return found


def _field_docs(body: list[ast.stmt]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for prev, stmt in zip(body, body[1:], strict=False):
        if (isinstance(prev, ast.AnnAssign) and isinstance(prev.target, ast.Name)
                and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)):
            docs[prev.target.id] = inspect.cleandoc(stmt.value.value)
    return docs


def document(models: Iterable[type[BaseModel]]) -> None:
    """Give every field of ``models`` its docstring as ``description`` (idempotent).

    A field inherited from a base model takes the base's docstring unless the subclass
    documents it again. Models whose schema was already built are rebuilt (all of them
    first forgotten, so a parent never reuses a child's schema built without descriptions).
    """
    todo = [m for m in models if m not in _DONE]
    if not todo:
        return
    sources: dict[str, dict[str, dict[str, str]]] = {}
    for model in todo:
        for cls in reversed(model.__mro__):
            if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
                continue
            if cls.__module__ not in sources:
                sources[cls.__module__] = class_docstrings(cls.__module__)
            for name, doc in sources[cls.__module__].get(cls.__qualname__, {}).items():
                if name in model.model_fields:
                    model.model_fields[name].description = doc
    for model in todo:
        for attr in ("__pydantic_core_schema__", "__pydantic_validator__", "__pydantic_serializer__"):
            if attr in model.__dict__:
                delattr(model, attr)
        model.__pydantic_complete__ = False
    for model in todo:
        model.model_rebuild(force=True)
        _DONE.add(model)
