"""A transform ready to run: JSONata compiled once, helpers registered, schema compiled.

Workers build one :class:`CompiledTransform` per transform and call :meth:`apply` per
record. Failures raise :class:`RecordRejected` with a stable code; the human-readable
reason (which may quote data) is only ever written to the rejects file in the workspace.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jsonatapy
import jsonschema_rs

from engine.canon.functions import FUNCTIONS
from engine.canon.registry import Registry, Transform


class RecordRejected(Exception):
    """A record failed its transform or its schema."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason


def compile_expression(text: str) -> Any:
    """Compile JSONata text and register the helper functions on it."""
    expr = jsonatapy.compile(text)
    for name, func in FUNCTIONS.items():
        expr.register(name, func)
    return expr


class CompiledTransform:
    """One transform plus the validator of its output schema."""

    def __init__(self, registry: Registry, transform: Transform) -> None:
        self.transform = transform
        self.kind = transform.kind
        self._expr = compile_expression(transform.expression)
        schema_path = registry.schema_path(transform.schema)
        self.schema_sha256 = hashlib.sha256(schema_path.read_bytes()).hexdigest()
        self._validator = jsonschema_rs.Draft202012Validator(registry.schema(transform.schema))

    def apply(self, record: Any, envelope: dict[str, Any]) -> dict[str, Any]:
        """Transform one source record; add the envelope (kind, source, account); validate."""
        try:
            out = self._expr.evaluate(record, envelope)  # $source and $account are bound too
        except Exception as exc:  # the engine raises ValueError with a JSONata code
            raise RecordRejected("TRANSFORM_FAILED", str(exc)) from None
        if not isinstance(out, dict):
            raise RecordRejected("TRANSFORM_NOT_OBJECT", f"transform returned {type(out).__name__}")
        out = {**out, "kind": self.kind, **envelope}
        errors = list(self._validator.iter_errors(out))
        if errors:
            reason = "; ".join(f"/{'/'.join(map(str, e.instance_path))}: {e.message}" for e in errors[:5])
            raise RecordRejected("SCHEMA_INVALID", reason)
        return out
