"""Pydantic's validation errors, told in lorchestra's own words.

Pydantic phrases its errors for programmers ("Input should be a valid integer, unable to
parse string as an integer", "Extra inputs are not permitted", "Field required"). A
practice owner editing ``pipeline.yaml`` gets instead one plain sentence per problem: what
the key must be, what it was, and for an unknown key the keys that are known at that place.
Messages of our own validators (``ValueError`` raised in the models) are kept as written.

The module maps each pydantic error *type* (a stable identifier, unlike its message) to a
sentence, and strips pydantic's union-member tags from error locations so that a value
matching none of a union's types is one problem at its key, not one per member.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

Loc = tuple[str | int, ...]

_KIND_OF_ERROR: dict[str, str] = {
    "int_parsing": "a whole number", "int_type": "a whole number", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "text", "list_type": "a list",
    "dict_type": "a mapping of keys", "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys", "path_type": "a path", "none_required": "empty (null)",
}
_BOUNDS: dict[str, tuple[str, str]] = {
    "greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than"),
}


def plain_errors(errors: Sequence[Mapping[str, Any]], root: type[BaseModel], *,
                 values: bool = True) -> list[tuple[Loc, str]]:
    """Every error as ``(key path, our sentence)``; the errors of one union value become one.

    With ``values=False`` a bad value is told only by its kind ("got text"), for files whose
    values may be PHI (the clients overrides name e-mail addresses).

    A value matching none of a union's members gets one error per member from pydantic; they
    are told as one sentence at the key. When the value had a member's container type (a
    list) and only its items are wrong, the items' errors are told and the key's are not.
    """
    out: list[tuple[Loc, str]] = []
    unions: dict[Loc, list[Mapping[str, Any]]] = {}
    for err in errors:
        loc, tagged = strip_tags(tuple(err["loc"]), root)
        if tagged:
            if loc not in unions:
                unions[loc] = []
                out.append((loc, ""))  # placeholder, keeps the problems in file order
            unions[loc].append(err)
        else:  # a tap's `env` holds secrets (tokens): its values are told by their kind only
            out.append((loc, plain_message(err, root, loc, values and "env" not in loc)))
    inner = {loc for loc in unions if any(o[:len(loc)] == loc and len(o) > len(loc) for o in unions)}
    return [(loc, msg or _union_message(unions[loc], root, loc, values and "env" not in loc))
            for loc, msg in out if loc not in inner]


def plain_message(err: Mapping[str, Any], root: type[BaseModel], loc: Loc, values: bool = True) -> str:
    """One error in our words (``loc`` is its path without union tags)."""
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    got = shown(err.get("input"), values)
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = known_keys(root, loc[:-1])
        listed = f" (known keys here: {', '.join(known)})" if known else ""
        return f"is not a known key{listed}; check its spelling and its place in the file"
    if kind in _KIND_OF_ERROR:
        return f"must be {_KIND_OF_ERROR[kind]}, got {got}"
    if kind == "literal_error":
        choices = _choices(str(ctx.get("expected", "")))
        return f"must be one of: {', '.join(choices)} (got {got})"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"must be {words} {_number(ctx.get(name))}, got {got}"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        return _length_message(kind, ctx)
    if kind in ("value_error", "assertion_error"):  # our own validators: their words as written
        msg = str(err.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        return msg
    return _fallback(str(err.get("msg", "is not valid")))


def _length_message(kind: str, ctx: Mapping[str, Any]) -> str:
    """`must have at least 1 item`, `must have at most 128 characters`."""
    unit = "character" if kind.startswith("string") else "item"
    if kind.endswith("too_short"):
        n = int(ctx.get("min_length", 0))
        return f"must have at least {n} {unit}{'' if n == 1 else 's'}"
    n = int(ctx.get("max_length", 0))
    return f"must have at most {n} {unit}{'' if n == 1 else 's'}"


def _fallback(msg: str) -> str:
    """An error type we do not know yet: pydantic's sentence with its phrasing turned into ours."""
    for theirs, ours in (("Input should be a valid ", "must be a valid "), ("Input should be ", "must be "),
                         ("Value error, ", ""), ("Field required", "is required")):
        msg = msg.replace(theirs, ours)
    return msg


def _union_message(errs: list[Mapping[str, Any]], root: type[BaseModel], loc: Loc, values: bool) -> str:
    """A value that matches none of a union's types: the types it may have, and what it is."""
    wanted: list[str] = []
    for err in errs:
        word = _KIND_OF_ERROR.get(str(err.get("type", "")))
        if word is None:  # the value has the right type for a member but breaks its rule
            return plain_message(err, root, loc, values)
        if word not in wanted:
            wanted.append(word)
    ways = ", ".join(wanted[:-1]) + f" or {wanted[-1]}" if len(wanted) > 1 else wanted[0]
    return f"must be {ways}, got {shown(errs[0].get('input'), values)}"


def shown(value: Any, values: bool = True) -> str:
    """A short picture of a bad value: scalars quoted and cut (only their kind without
    ``values``), containers by kind."""
    if isinstance(value, Mapping):
        return "a mapping of keys"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing (empty)"
    if isinstance(value, bool):
        return ("true" if value else "false") if values else "true or false"
    if not values:
        return "text" if isinstance(value, str) else "a number"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> str:
    """`0` rather than `0.0` for whole bounds."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choices(expected: str) -> list[str]:
    """Pydantic's `'a', 'b' or 'c'` as `['a', 'b', 'c']`."""
    parts = expected.replace(" or ", ", ").split(", ")
    return [p.strip().strip("'\"") for p in parts if p.strip()]


def _unwrap(tp: Any) -> Any:
    """`Annotated[X, ...]` -> X; `X | None` -> X (pydantic adds no tag for a nullable type)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def strip_tags(loc: Loc, root: type[BaseModel]) -> tuple[Loc, bool]:
    """The key path without pydantic's union-member tags, and whether there was one."""
    tp: Any = root
    out: list[str | int] = []
    tagged = False
    i = 0
    while i < len(loc):
        tp = _unwrap(tp)
        part = loc[i]
        if _is_union(tp):  # the next element names the member, not a key
            tagged = True
            tp = _member(tp, part)
            i += 1
            continue
        out.append(part)
        tp = _child(tp, part)
        i += 1
    return tuple(out), tagged


def _member(union: Any, tag: str | int) -> Any:
    """The union member a tag names (`Extractor`, `list[...]`), else None."""
    name = str(tag).split("[", 1)[0]
    for member in typing.get_args(union):
        if getattr(typing.get_origin(member) or member, "__name__", None) == name:
            return member
    return None


def _child(tp: Any, part: str | int) -> Any:
    """The type one step below ``tp`` (None when it cannot be told)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def known_keys(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model at ``loc`` accepts (empty when that place is not a model)."""
    tp: Any = root
    for part in loc:
        tp = _child(_unwrap(tp), part)
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def format_loc(loc: Loc) -> str:
    """``('extractors', 3, 'name')`` -> ``extractors[3].name``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
