"""A transform ready to run: JSONata compiled once, helpers registered, schema compiled.

Workers build one :class:`CompiledTransform` per transform and call :meth:`apply` per
record. Failures raise :class:`RecordRejected` with a stable code; the human-readable
reason (which may quote data) is only ever written to the rejects file in the workspace.
Every evaluation runs under :class:`TransformLimits` (a time budget and a recursion depth,
enforced inside jsonatapy), so a transform that loops or recurses without end stops with
``TRANSFORM_TIMEOUT`` or ``TRANSFORM_TOO_DEEP`` instead of hanging its worker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import jsonatapy
import jsonschema_rs

from engine.canon.functions import FUNCTIONS
from engine.canon.registry import Registry, Transform

LIMIT_CODES = {"D1012": "TRANSFORM_TIMEOUT", "D1011": "TRANSFORM_TOO_DEEP"}
"""jsonatapy's error codes for a breached guardrail, and our stable codes for them."""
FATAL_CODES = frozenset(LIMIT_CODES.values())
"""Reject codes that fail the whole task at once: a transform that runs out of time or
stack on one record would most likely do so on every record, for hours."""


@dataclass(frozen=True)
class TransformLimits:
    """Per-record limits of a transform's evaluation."""

    timeout_ms: int = 2000
    """Milliseconds one evaluation may take (jsonatapy raises D1012 past it)."""
    max_depth: int = 1000
    """Deepest recursion one evaluation may reach (jsonatapy raises D1011 past it)."""


class RecordRejected(Exception):
    """A record failed its transform or its schema."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason

    @property
    def fatal(self) -> bool:
        """Whether the task must stop (a transform limit was breached)."""
        return self.code in FATAL_CODES


def limit_code(exc: BaseException) -> str | None:
    """``TRANSFORM_TIMEOUT`` or ``TRANSFORM_TOO_DEEP`` when ``exc`` is jsonatapy's guardrail
    error (its message starts with the JSONata code), else None."""
    if isinstance(exc, RecursionError):
        return "TRANSFORM_TOO_DEEP"
    head = str(exc)[:16]
    return next((ours for theirs, ours in LIMIT_CODES.items() if head.startswith(theirs)), None)


def _json_type(value: Any) -> str:
    """What a transform returned, in JSON's words (never the value: it may be PHI)."""
    if value is None:
        return "nothing (null or no match)"
    names = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"), (list, "an array"))
    return next((word for kind, word in names if isinstance(value, kind)), type(value).__name__)


def compile_expression(text: str) -> Any:
    """Compile JSONata text and register the helper functions on it; JSONata's clock
    functions are replaced by ones that fail (:func:`_clock`)."""
    expr = jsonatapy.compile(text)
    for name, func in FUNCTIONS.items():
        expr.register(name, func)
    for name in CLOCK:
        expr.register_override(name, _clock(name))
    return expr


CLOCK = ("now", "millis")
"""JSONata built-ins that read the clock (``$random`` is none of jsonatapy's): a transform
calling one gave another canonical file on every run, silently (the output is deterministic
by contract: docs/transforms.md section 2). Each call fails, so the record is rejected with
the reason, ``transform test`` fails, and ``transform run`` shows it."""


def _clock(name: str) -> Any:
    def refuse(*_args: Any) -> Any:
        raise ValueError(f"${name}() reads the clock: a transform's output must not depend on when it "
                         "runs (use the record's own times)")
    return refuse


class CompiledTransform:
    """One transform plus the validator of its output schema."""

    def __init__(self, registry: Registry, transform: Transform,
                 limits: TransformLimits | None = None) -> None:
        self.transform = transform
        self.limits = limits or TransformLimits()
        self.kind = transform.kind
        self._expr = compile_expression(transform.expression)
        schema_path = registry.schema_path(transform.schema)
        self.schema_sha256 = hashlib.sha256(schema_path.read_bytes()).hexdigest()
        self._validator = jsonschema_rs.Draft202012Validator(registry.schema(transform.schema))
        self.bindings: dict[str, str] = {}
        """Variables of the mapping the expression sees besides ``$source`` and ``$account``
        (``$timezone``); never part of the output."""

    def apply(self, record: Any, envelope: dict[str, Any]) -> dict[str, Any]:
        """Transform one source record; add the envelope (kind, source, account); validate."""
        try:
            out = evaluate(self._expr, record, {**envelope, **self.bindings} if self.bindings else envelope,
                           self.limits)
        except Exception as exc:  # the engine raises ValueError with a JSONata code
            raise RecordRejected(limit_code(exc) or "TRANSFORM_FAILED", str(exc)) from None
        if not isinstance(out, dict):
            raise RecordRejected("TRANSFORM_NOT_OBJECT", f"transform returned {_json_type(out)}, not an object")
        out = {**out, "kind": self.kind, **envelope}
        if self._validator.is_valid(out):  # the common case; the errors only for a reject
            return out
        errors = list(self._validator.iter_errors(out))
        if errors:
            reason = "; ".join(f"/{'/'.join(map(str, e.instance_path))}: {e.message}" for e in errors[:5])
            raise RecordRejected("SCHEMA_INVALID", reason)
        return out


def evaluate(expr: Any, record: Any, bindings: dict[str, Any] | None, limits: TransformLimits) -> Any:
    """Evaluate a compiled expression on one record under ``limits`` (bindings such as
    ``$source`` and ``$account`` are bound too)."""
    return expr.evaluate(record, bindings, timeout=limits.timeout_ms, max_stack_depth=limits.max_depth)
