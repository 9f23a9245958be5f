"""The config's number types: ``Int`` and ``Float``, which refuse a boolean.

Pydantic's lax mode reads ``true`` as 1 and ``false`` as 0 for a number, and YAML reads
``true``, ``yes`` and ``on`` as true: ``timeout_s: true`` passed `validate` and killed the
tap after 1 s on every attempt, ``retries: yes`` meant one retry. Every number of the config
models is one of these types, so a boolean is an error at its key (``must be a number, got
true``, as any other value of the wrong type). Numeric strings are still read as numbers,
as before: ``${VAR}`` expands to text (``timeout_s: ${TAP_TIMEOUT}``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticKnownError


def _no_bool_int(value: object) -> object:
    if isinstance(value, bool):  # told as "must be a whole number, got true" (engine.config.errors)
        raise PydanticKnownError("int_type")
    return value


def _no_bool_float(value: object) -> object:
    if isinstance(value, bool):  # told as "must be a number, got true"
        raise PydanticKnownError("float_type")
    return value


Int = Annotated[int, BeforeValidator(_no_bool_int)]
"""A whole number of the config; never a boolean."""
Float = Annotated[float, BeforeValidator(_no_bool_float)]
"""A number of the config; never a boolean."""
