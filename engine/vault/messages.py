"""Singer messages checked without decoding their records: the vault's lossless line format.

Every line a tap writes is validated here once, by ``msgspec`` against the Singer spec's
message shapes, while the record (and a SCHEMA's schema, a STATE's value) stays a
:class:`msgspec.Raw` slice of the line: no Python objects are built for it and its bytes,
digits and key order are never re-encoded. The vault then stores the line itself.

* :class:`LineInvalid` with ``TAP_OUTPUT_INVALID``: the line is not JSON or not UTF-8.
* :class:`LineInvalid` with ``TAP_MESSAGE_INVALID``: valid JSON but not a Singer message: not
  an object, no string ``type``, a RECORD without a ``stream`` string or a ``record`` object,
  a SCHEMA without a ``stream`` string or a ``schema`` object or with ``key_properties`` that
  is not a list of strings (missing or ``null`` means no key), a STATE without ``value``, an
  ACTIVATE_VERSION without a ``stream`` string or an integer ``version``, a BATCH without a
  ``stream`` string.
* Any other ``type`` is an :class:`Unknown` message (kept, warned by the caller).

Numbers are never limited: ``1e999`` or a 30-digit integer is valid JSON and stays as written.
"""

from __future__ import annotations

import re

import msgspec
from msgspec import Raw, Struct

from engine.events import ErrorCode

OPEN_BRACE = 0x7B


class LineInvalid(Exception):
    """A tap line that is not a Singer message; ``code`` says which way (no content kept)."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.value)
        self.code = code


class Record(Struct, tag_field="type", tag="RECORD"):
    """RECORD: the record stays raw bytes; ``version`` (an integer when present) is read for
    ACTIVATE_VERSION; every other key (``time_extracted``, ...) stays in the line."""

    stream: str
    record: Raw
    version: int | None = None


class Schema(Struct, tag_field="type", tag="SCHEMA"):
    """SCHEMA: the schema raw; ``key_properties`` decoded (a list of strings, or none)."""

    stream: str
    schema: Raw
    key_properties: list[str] | None = None


class State(Struct, tag_field="type", tag="STATE"):
    """STATE: its value, raw (any JSON value, but present)."""

    value: Raw


class ActivateVersion(Struct, tag_field="type", tag="ACTIVATE_VERSION"):
    """ACTIVATE_VERSION (Singer SDK): a stream and an integer version."""

    stream: str
    version: int


class Batch(Struct, tag_field="type", tag="BATCH"):
    """BATCH (Singer SDK): a stream; the rest is read by the BATCH reader."""

    stream: str


class Unknown(Struct):
    """A JSON object with a string ``type`` this module does not know."""

    type: str


Message = Record | Schema | State | ActivateVersion | Batch
KNOWN = frozenset({"RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"})
_DECODER = msgspec.json.Decoder(Message)
_ENVELOPE = msgspec.json.Decoder(Unknown)
_ANY = msgspec.json.Decoder(Raw)


MAX_DEPTH = 512
"""The deepest nesting of objects and arrays a message may have. msgspec, ``json`` and
JSONata follow nesting on the call stack, so where they give up (about 1,000 levels) moved
with how deep the caller already was: a line the extract took could crash the canonize
worker, or read as a corrupt part to ``verify``. One fixed limit well inside every reader's
reach makes them agree."""
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def too_deep(line: bytes) -> bool:
    """Whether the line nests objects and arrays deeper than :data:`MAX_DEPTH` (brackets inside
    strings do not count). A count of the brackets first: most lines have fewer in all."""
    if line.count(b"{") + line.count(b"[") <= MAX_DEPTH:
        return False
    depth = 0
    for b in _BRACKETS.findall(_STRINGS.sub(b"", line)):
        if b in (b"{", b"["):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def parse(line: bytes, depth_checked: bool = False) -> Message | Unknown | None:
    """The message of one line (None for a blank line); raise :class:`LineInvalid`.
    ``depth_checked``: a line of the vault, which the extract already held to
    :data:`MAX_DEPTH` (its check costs 1.5 us a line: 1.5 CPU-s a read of 1,000,000)."""
    if not depth_checked and too_deep(line):
        raise LineInvalid(ErrorCode.TAP_MESSAGE_INVALID)
    try:
        msg: Message = _DECODER.decode(line)
    except msgspec.ValidationError:  # JSON, but not a known message (a subclass of DecodeError)
        return _not_a_known_message(line)
    except msgspec.DecodeError:
        if not line.strip():
            return None
        raise LineInvalid(ErrorCode.TAP_OUTPUT_INVALID) from None
    except RecursionError:  # deeper than the decoder goes from here (too_deep stops it before)
        raise LineInvalid(ErrorCode.TAP_MESSAGE_INVALID) from None
    check_utf8(line)
    if isinstance(msg, Record):
        if memoryview(msg.record)[0] != OPEN_BRACE:
            raise LineInvalid(ErrorCode.TAP_MESSAGE_INVALID)
    elif isinstance(msg, Schema) and memoryview(msg.schema)[0] != OPEN_BRACE:
        raise LineInvalid(ErrorCode.TAP_MESSAGE_INVALID)
    return msg


_SURROGATE_ESCAPES = re.compile(
    rb"\\(?:\\|u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[dD][89a-fA-F][0-9a-fA-F]{2})")


def lone_surrogates_replaced(line: bytes) -> bytes | None:
    """The line with each lone UTF-16 surrogate escape (``\\ud83d`` without its pair) written
    as ``\\ufffd``, or None when it has none.

    Python's ``json.dumps`` writes such an escape for a string an API cut mid-emoji (a Graph
    ``bodyPreview``); it is JSON by the grammar but encodes no character, and no strict
    decoder (msgspec, orjson, so none of the vault's readers) takes it. Replacing it is the one
    change the vault makes to a tap's line (counted: ``repaired_lines`` in the manifest)."""
    changed = False

    def fix(m: re.Match[bytes]) -> bytes:
        nonlocal changed
        text = m.group(0)
        if len(text) == 6:  # a lone surrogate (a pair is 12 bytes, an escaped backslash 2)
            changed = True
            return rb"\ufffd"
        return text
    fixed = _SURROGATE_ESCAPES.sub(fix, line)
    return fixed if changed else None


def _not_a_known_message(line: bytes) -> Unknown:
    """The line is JSON but not one of the known messages: an unknown type, or invalid."""
    try:
        env = _ENVELOPE.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        env = None
    if env is None or env.type in KNOWN:
        raise LineInvalid(ErrorCode.TAP_MESSAGE_INVALID)
    check_utf8(line)
    return env


def check_utf8(data: bytes) -> None:
    """Raise TAP_OUTPUT_INVALID unless ``data`` is UTF-8 (raw slices are not checked by msgspec)."""
    if not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError:
            raise LineInvalid(ErrorCode.TAP_OUTPUT_INVALID) from None


def json_object(data: bytes) -> bool:
    """Whether ``data`` is one JSON object in UTF-8 (checked without building it)."""
    try:
        raw = _ANY.decode(data)
        check_utf8(data)
    except (msgspec.DecodeError, LineInvalid, RecursionError):
        return False
    view = memoryview(raw)
    return len(view) > 0 and view[0] == OPEN_BRACE


def with_newline(line: bytes) -> bytes:
    """The line with its line ending (``\\n``, ``\\r\\n`` or none at EOF) made one ``\\n``."""
    if line.endswith(b"\r\n"):
        return line[:-2] + b"\n"
    if line.endswith(b"\n"):
        return line
    return line + b"\n"
