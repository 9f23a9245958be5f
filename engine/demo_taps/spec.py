"""What a demo tap is: its streams, their schemas and a record factory per stream.

Each tap module turns a :class:`TapContext` (tap, account, seed, record count) into a
:class:`TapPlan`; the emitter only ever asks a stream for record ``i``. Keeping records a pure
function of their index is what makes ``--state`` resume and byte-identical reruns cheap.
The schema helpers keep the per-tap JSON Schemas short and readable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.demo_taps.common import derive, iso_z

Record = dict[str, Any]
RecordFactory = Callable[[int], Record]


@dataclass(frozen=True, slots=True)
class TapContext:
    """The inputs every record is derived from."""

    tap: str
    account: str
    seed: int
    records: int

    def key(self, *parts: object) -> int:
        """A 64-bit key specific to this tap, account and seed (plus ``parts``)."""
        return derive(self.tap, self.account, self.seed, *parts)

    def seed_key(self, *parts: object) -> int:
        """A 64-bit key shared by every tap and account with this seed."""
        return derive("seed-only", self.seed, *parts)


@dataclass(slots=True)
class StreamPlan:
    """One Singer stream: its schema and how to make its ``count`` records."""

    name: str
    schema: Record
    key_properties: list[str]
    count: int
    make: RecordFactory
    text_field: str
    """A top-level string field the huge-record and invalid-UTF-8 faults may overwrite."""
    message_extra: Record = field(default_factory=dict)
    """Extra keys of every RECORD message (e.g. Sheets' ``version``)."""
    trailer: list[Record] = field(default_factory=list)
    """Messages written after the stream's records (e.g. ACTIVATE_VERSION)."""

    def catalog_entry(self) -> Record:
        """The stream's entry in a ``--discover`` catalog."""
        return {
            "tap_stream_id": self.name,
            "stream": self.name,
            "schema": self.schema,
            "key_properties": self.key_properties,
            "metadata": [],
        }


@dataclass(slots=True)
class TapPlan:
    """A whole tap run: its streams in emission order and its deterministic extract time."""

    tap: str
    streams: list[StreamPlan]
    time_extracted: str


def make_plan(ctx: TapContext, streams: list[StreamPlan]) -> TapPlan:
    """A plan whose ``time_extracted`` derives from the seed (never the clock)."""
    key = ctx.key("time_extracted")
    epoch = 1_767_225_600 + key % (30 * 86_400)  # some time in January 2026
    stamp = iso_z(epoch).replace("Z", f".{key % 1_000_000:06d}Z")
    return TapPlan(tap=ctx.tap, streams=streams, time_extracted=stamp)


def string(nullable: bool = True, fmt: str | None = None) -> Record:
    """A JSON Schema string property."""
    schema: Record = {"type": ["string", "null"] if nullable else "string"}
    if fmt:
        schema["format"] = fmt
    return schema


def integer(nullable: bool = True) -> Record:
    """A JSON Schema integer property."""
    return {"type": ["integer", "null"] if nullable else "integer"}


def number() -> Record:
    """A JSON Schema number property."""
    return {"type": ["number", "null"]}


def boolean() -> Record:
    """A JSON Schema boolean property."""
    return {"type": ["boolean", "null"]}


def obj(**properties: Record) -> Record:
    """A JSON Schema object with the given properties."""
    return {"type": ["object", "null"], "properties": properties}


def array(items: Record) -> Record:
    """A JSON Schema array."""
    return {"type": ["array", "null"], "items": items}


def stream_schema(properties: Record) -> Record:
    """A stream's top-level schema."""
    return {"type": "object", "properties": properties}
