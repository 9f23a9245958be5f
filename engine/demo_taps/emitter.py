"""Writes a tap plan to stdout as Singer messages, with the configured faults injected.

The hot loop is deliberately plain: one ``orjson.dumps`` per record into a 1 MiB buffered
writer, no per-record flush and no per-record fault checks. Faults and periodic STATE
messages are "events" at known record counts; the loop runs straight to the next event, so a
million-record run costs one comparison per segment, not per record.
"""

from __future__ import annotations

import os
import time
from typing import Any, BinaryIO, NoReturn

import orjson

from engine.demo_taps.canary import CANARY_NAME
from engine.demo_taps.settings import Faults
from engine.demo_taps.spec import Record, StreamPlan, TapPlan
from engine.demo_taps.taplog import TapLog

STATE_EVERY = 1000
_NL = orjson.OPT_APPEND_NEWLINE
_MALFORMED = b'{"type": "RECORD", "stream": \n'
_SURPRISE = b'{"type":"SURPRISE","value":1}\n'
_BAD_UTF8_MARK = "@@demo-invalid-utf8@@"
_BAD_UTF8_BYTES = b"caf\xe9 \xff invalid byte "
_FILLER = b"synthetic huge clinical note filler text; " * 64
_NEVER = 1 << 62


class TapExit(Exception):
    """Stop the tap now with ``code`` (stdout already flushed or closed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def huge_text(nbytes: int) -> str:
    """``nbytes`` of ASCII filler (no JSON escaping, so the field is exactly that long)."""
    reps = nbytes // len(_FILLER) + 1
    return (_FILLER * reps)[:nbytes].decode("ascii")


class Emitter:
    """One tap run: streams in order, events at record counts, a final STATE."""

    def __init__(
        self, plan: TapPlan, faults: Faults, offsets: dict[str, int], out: BinaryIO, log: TapLog
    ) -> None:
        self.plan = plan
        self.faults = faults
        self.offsets = offsets
        self.out = out
        self.log = log
        self.emitted = 0
        self.handled = -1
        self.bookmarks: dict[str, dict[str, int]] = {
            name: {"offset": n} for name, n in offsets.items()
        }
        self.points = faults.trigger_points()
        self.next_event = self._next_event()
        self.early_record = faults.record_before_schema

    # -- the run -------------------------------------------------------------------------

    def run(self) -> None:
        """Emit every stream, fire end-of-run faults, write the final STATE."""
        self.log.info(f"Starting {self.plan.tap} demo tap ({self._total()} records planned)")
        self.log.phi()
        if self.faults.stderr_flood_bytes:
            self.log.flood(self.faults.stderr_flood_bytes)
        for stream in self.plan.streams:
            self._sync(stream)
        if self.emitted == self.next_event:
            self._fire(None, 0)
        self._state()
        self.out.flush()
        self.log.info(f"Sync completed: {self.emitted} records written")

    def _total(self) -> int:
        return sum(s.count for s in self.plan.streams)

    def _sync(self, stream: StreamPlan) -> None:
        start = resume_at = min(self.offsets.get(stream.name, 0), stream.count)
        self._mark(stream.name, start)
        self.log.info(f"Starting sync of stream {stream.name}")
        template = self._template(stream)
        if self.early_record and start < stream.count:
            self.early_record = False
            template["record"] = stream.make(start)
            self.out.write(orjson.dumps(template, option=_NL))
            self.emitted += 1
            start += 1
        self._write(self._schema_message(stream))
        i = start
        while i < stream.count:
            room = self.next_event - self.emitted
            if room <= 0:
                i = self._fire(stream, i)
                continue
            stop = min(stream.count, i + room)
            self._emit_range(stream, template, i, stop)
            self.emitted += stop - i
            i = stop
        self._mark(stream.name, stream.count)
        for message in stream.trailer:
            self._write(message)
        self.log.metric("record_count", stream.count - resume_at, stream.name)

    def _emit_range(self, stream: StreamPlan, template: Record, start: int, stop: int) -> None:
        make = stream.make
        write = self.out.write
        dumps = orjson.dumps
        for i in range(start, stop):
            template["record"] = make(i)
            write(dumps(template, option=_NL))

    # -- messages --------------------------------------------------------------------------

    def _template(self, stream: StreamPlan) -> Record:
        return {
            "type": "RECORD",
            "stream": stream.name,
            "record": None,
            **stream.message_extra,
            "time_extracted": self.plan.time_extracted,
        }

    @staticmethod
    def _schema_message(stream: StreamPlan) -> Record:
        return {
            "type": "SCHEMA",
            "stream": stream.name,
            "schema": stream.schema,
            "key_properties": stream.key_properties,
        }

    def _write(self, message: dict[str, Any]) -> None:
        self.out.write(orjson.dumps(message, option=_NL))

    def _mark(self, stream: str, offset: int) -> None:
        self.bookmarks[stream] = {"offset": offset}

    def _state(self) -> None:
        self._write({"type": "STATE", "value": {"bookmarks": dict(self.bookmarks)}})

    # -- events ----------------------------------------------------------------------------

    def _next_event(self) -> int:
        after = self.handled
        state_at = (after // STATE_EVERY + 1) * STATE_EVERY
        faults = [p for p in self.points if p > after]
        return min([state_at, *faults]) if faults else state_at

    def _fire(self, stream: StreamPlan | None, i: int) -> int:
        """Handle every event due at the current record count; returns the next index."""
        n = self.emitted
        f = self.faults
        if stream is not None and n % STATE_EVERY == 0 and n > 0:
            self._mark(stream.name, i)
            self._state()
        if f.malformed_at == n:
            self.out.write(_MALFORMED)
        if f.unknown_message_at == n:
            self.out.write(_SURPRISE)
        if f.fail_after == n:
            self._fail(f.exit_code)
        if f.close_stdout_after == n:
            self._close_stdout()
        if f.hang_after == n:
            self._hang()
        if stream is not None and i < stream.count:
            if f.huge_record_at == n or f.invalid_utf8_at == n:
                self._special_record(stream, i, huge=f.huge_record_at == n)
                self.emitted += 1
                i += 1
        self.handled = n
        self.next_event = self._next_event()
        return i

    def _special_record(self, stream: StreamPlan, i: int, *, huge: bool) -> None:
        template = self._template(stream)
        record = stream.make(i)
        if huge:
            record[stream.text_field] = huge_text(self.faults.huge_record_bytes)
            size = self.faults.huge_record_bytes
            self.log.info(f"emitting a huge {stream.name} record ({size} bytes)")
        if self.faults.invalid_utf8_at == self.emitted:
            record[stream.text_field] = _BAD_UTF8_MARK + str(record.get(stream.text_field) or "")
        template["record"] = record
        line = orjson.dumps(template, option=_NL)
        self.out.write(line.replace(_BAD_UTF8_MARK.encode(), _BAD_UTF8_BYTES, 1))

    def _fail(self, code: int) -> NoReturn:
        self.out.flush()
        self.log.error(f"sync failed after {self.emitted} records while fetching {CANARY_NAME}")
        raise TapExit(code)

    def _close_stdout(self) -> NoReturn:
        self.out.flush()
        os.close(1)
        # Keep fd 1 valid (pointing nowhere) so interpreter shutdown stays quiet.
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 1:
            os.dup2(fd, 1)
            os.close(fd)
        self.log.info(f"closed stdout after {self.emitted} records; finishing up")
        self.log.flush()
        time.sleep(0.2)
        raise TapExit(0)

    def _hang(self) -> NoReturn:
        self.out.flush()
        self.log.info(f"waiting on a stalled API page after {self.emitted} records")
        self.log.flush()
        while True:
            time.sleep(3600)
