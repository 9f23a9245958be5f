"""Events: closed field sets, discriminated parsing, round trips, and the JSON log sink.

Samples are built from each model's own field annotations, so an event type added later is
covered without editing this file (and a field type the builder cannot fill fails loudly).
"""

from __future__ import annotations

import os
import re
import stat
import types
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from engine.events import (
    ErrorCode,
    Event,
    EventBase,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskProgress,
    TaskQueued,
    TaskRetry,
    TaskStarted,
    TaskWarning,
    dump_event,
    parse_event,
)
from engine.store.logsink import JsonLogSink, level_of


def event_classes() -> list[type[EventBase]]:
    """Every member of the discriminated ``Event`` union."""
    union = get_args(Event)[0]
    classes = list(get_args(union))
    assert classes and all(issubclass(c, EventBase) for c in classes)
    return classes


CLASSES = event_classes()


def sample_value(annotation: Any, name: str) -> Any:
    """A valid, non-default value for a field annotation."""
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)[-1]
    if origin in (Union, types.UnionType):
        return sample_value(next(a for a in get_args(annotation) if a is not type(None)), name)
    if origin is list:
        return [sample_value(get_args(annotation)[0], name)]
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return list(annotation)[-1].value
        if annotation is bool:
            return True
        if annotation is int:
            return 7
        if annotation is float:
            return 2.5
        if annotation is str:
            return f"{name}-value"
        if issubclass(annotation, BaseModel):
            return sample_fields(annotation)
    raise AssertionError(f"no sample for field {name}: {annotation!r}; teach sample_value about it")


def sample_fields(cls: type[BaseModel]) -> dict[str, Any]:
    return {name: sample_value(f.annotation, name) for name, f in cls.model_fields.items()
            if name not in ("type", "ts")}


def build(cls: type[EventBase]) -> EventBase:
    return cls(**sample_fields(cls))


def type_tag(cls: type[EventBase]) -> str:
    tag = cls.model_fields["type"].default
    assert isinstance(tag, str)
    return tag


def test_every_event_has_a_unique_literal_type_tag() -> None:
    tags = [type_tag(c) for c in CLASSES]
    assert len(tags) == len(set(tags))
    for cls in CLASSES:
        assert get_args(cls.model_fields["type"].annotation) == (type_tag(cls),)
    # the events the engine relies on are all in the union
    assert {RunStarted, TaskQueued, TaskStarted, TaskProgress, TaskWarning, TaskRetry,
            TaskFinished, RunFinished} <= set(CLASSES)


def test_no_event_field_can_carry_free_form_data() -> None:
    """PHI-free by construction: no dict, Any or nested free-form payloads in any event."""
    allowed = (str, int, float, bool)

    def ok(annotation: Any) -> bool:
        origin = get_origin(annotation)
        if origin is Literal:
            return True
        if origin in (Union, types.UnionType, list):
            return all(ok(a) for a in get_args(annotation) if a is not type(None))
        return isinstance(annotation, type) and (issubclass(annotation, allowed) or issubclass(annotation, Enum))

    for cls in CLASSES:
        for name, field in cls.model_fields.items():
            assert ok(field.annotation), f"{cls.__name__}.{name}: {field.annotation!r}"


@pytest.mark.parametrize("cls", CLASSES, ids=type_tag)
def test_dump_parse_round_trip(cls: type[EventBase]) -> None:
    event = build(cls)
    line = dump_event(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = orjson.loads(line)
    assert data["type"] == type_tag(cls)
    assert set(data) == set(cls.model_fields)
    for parsed in (parse_event(line), parse_event(line.decode()), parse_event(line.rstrip(b"\n"))):
        assert type(parsed) is cls
        assert parsed == event
    assert dump_event(parse_event(line)) == line


@pytest.mark.parametrize("cls", CLASSES, ids=type_tag)
def test_unknown_fields_are_rejected(cls: type[EventBase]) -> None:
    data = orjson.loads(dump_event(build(cls)))
    data["patient_name"] = "Zebulon Canarywhistle"
    with pytest.raises(ValidationError) as info:
        parse_event(orjson.dumps(data))
    assert any(e["type"] == "extra_forbidden" for e in info.value.errors())
    # the rejected value itself is not echoed back in a way the engine would log
    with pytest.raises(ValidationError):
        cls.model_validate(data)
    with pytest.raises(ValidationError):
        cls(**sample_fields(cls), patient_name="x")


@pytest.mark.parametrize("cls", CLASSES, ids=type_tag)
def test_missing_required_fields_are_rejected(cls: type[EventBase]) -> None:
    required = [n for n, f in cls.model_fields.items() if f.is_required()]
    if not required:
        pytest.skip("no required fields")
    data = orjson.loads(dump_event(build(cls)))
    for name in required:
        partial = {k: v for k, v in data.items() if k != name}
        with pytest.raises(ValidationError):
            parse_event(orjson.dumps(partial))


def test_parsing_is_discriminated_by_type() -> None:
    progress = TaskProgress(task_id="extract:a", stage="extract", extractor="a", records=5)
    data = orjson.loads(dump_event(progress))
    assert isinstance(parse_event(orjson.dumps(data)), TaskProgress)
    # the same fields under another tag are checked against that model, not guessed
    with pytest.raises(ValidationError):
        parse_event(orjson.dumps({**data, "type": "task_queued"}))
    for bad_type in ("task_exploded", "", None, 3):
        with pytest.raises(ValidationError):
            parse_event(orjson.dumps({**data, "type": bad_type}))
    with pytest.raises(ValidationError):
        parse_event(orjson.dumps({k: v for k, v in data.items() if k != "type"}))


@pytest.mark.parametrize("line", [b"", b"not json", b"[1, 2]", b'"task_progress"', b"{", b"null",
                                  b'{"type": "task_progress"}', b"\xff\xfe"])
def test_garbage_lines_are_rejected(line: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_event(line)


def test_field_values_are_validated() -> None:
    ok = TaskFinished(task_id="extract:a", stage="extract", extractor="a", account="a", status="success")
    data = orjson.loads(dump_event(ok))
    for key, value in (("stage", "transmogrify"), ("status", "exploded"), ("records", "many"),
                       ("records", 1.5), ("latest_moved", "perhaps")):
        with pytest.raises(ValidationError):
            parse_event(orjson.dumps({**data, key: value}))


def test_events_are_frozen() -> None:
    event = TaskProgress(task_id="extract:a", stage="extract", extractor="a", records=5)
    with pytest.raises(ValidationError):
        event.records = 6  # type: ignore[misc]


def test_timestamps_are_utc_iso_with_z() -> None:
    event = TaskQueued(task_id="extract:a", stage="extract", extractor="a", account="a")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.ts)
    parsed = datetime.fromisoformat(event.ts.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


def test_error_codes_are_stable_strings() -> None:
    for code in ErrorCode:
        assert code.value == code.name
    assert ErrorCode("TAP_EXIT_NONZERO") is ErrorCode.TAP_EXIT_NONZERO


# ---------------------------------------------------------------- the JSON log sink


def log_events() -> list[tuple[EventBase, str]]:
    """Events with the level the log must give them."""
    common = {"task_id": "extract:a", "stage": "extract", "extractor": "a"}
    fin = {**common, "account": "acct"}
    return [
        (RunStarted(run_id="r1", trigger="cron", pipeline="p", stages=["extract"], tasks=1), "info"),
        (TaskQueued(**fin), "info"),
        (TaskStarted(**fin, attempt=1, pid=123), "info"),
        (TaskProgress(**common, records=10, bytes=100), "info"),
        (TaskWarning(**common, code="UNKNOWN_MESSAGE", line=3), "warning"),
        (TaskRetry(**common, attempt=1, delay_s=1.0, error_code="TAP_EXIT_NONZERO"), "warning"),
        (TaskFinished(**fin, status="failed", error_code="TAP_EXIT_NONZERO", exit_code=3), "error"),
        (TaskFinished(**fin, status="timeout", error_code="TIMEOUT"), "error"),
        (TaskFinished(**fin, status="cancelled", error_code="CANCELLED"), "info"),
        (TaskFinished(**fin, status="success", records=10), "info"),
        (RunFinished(run_id="r1", status="failed", tasks=1, succeeded=0, failed=1, cancelled=0, records=0,
                     duration_s=1.0), "error"),
        (RunFinished(run_id="r1", status="success", tasks=1, succeeded=1, failed=0, cancelled=0, records=10,
                     duration_s=1.0), "info"),
    ]


@pytest.fixture
def open_umask() -> Any:
    """Run the test with umask 000, as a careless cron environment might."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_log_sink_writes_private_json_lines_with_a_level(tmp_path: Path, open_umask: None) -> None:
    logs = tmp_path / "ws" / "logs"
    day_before = datetime.now(UTC).strftime("%Y-%m-%d")
    sink = JsonLogSink(logs)
    expected = log_events()
    seen: list[int] = []
    try:
        for event, _ in expected:
            sink(event)  # type: ignore[arg-type]
            # flushed per event: another process can tail it at once
            seen.append(len(sink.path.read_bytes().splitlines()))
    finally:
        sink.close()
    day_after = datetime.now(UTC).strftime("%Y-%m-%d")
    if day_before != day_after:
        pytest.skip("the test crossed UTC midnight, so the log rolled over to a new file")
    assert seen == list(range(1, len(expected) + 1))
    assert sink.path.name == f"pipeline-{day_after}.log"
    assert [p.name for p in logs.iterdir()] == [sink.path.name]
    for d in (tmp_path / "ws", logs):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    assert stat.S_IMODE(sink.path.stat().st_mode) == 0o600

    lines = sink.path.read_bytes().splitlines()
    assert len(lines) == len(expected)
    for raw, (event, level) in zip(lines, expected, strict=True):
        record = orjson.loads(raw)
        assert record["level"] == level == level_of(event)  # type: ignore[arg-type]
        assert record["type"] == event.model_dump()["type"]
        rest = {k: v for k, v in record.items() if k != "level"}
        assert parse_event(orjson.dumps(rest)) == event
        assert None not in record.values()


def test_log_sink_appends_and_tightens_an_existing_file(tmp_path: Path, open_umask: None) -> None:
    logs = tmp_path / "logs"
    first = JsonLogSink(logs)
    event, _ = log_events()[0]
    first(event)  # type: ignore[arg-type]
    first.close()
    path = first.path
    os.chmod(path, 0o644)
    second = JsonLogSink(logs)
    second(event)  # type: ignore[arg-type]
    second(event)  # type: ignore[arg-type]
    second.close()
    assert len(path.read_bytes().splitlines()) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_run_across_midnight_utc_names_both_days_log_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary named only the file of the day the run ended, `status` the day it started:
    each missed half of the run. The sink keeps the first file; the summary names both."""
    import engine.store.logsink as logsink
    from lorch_tui.summary import summary_line

    logs = tmp_path / "logs"
    days = iter([datetime(2026, 12, 24, 23, 59, 58, tzinfo=UTC), datetime(2026, 12, 25, 0, 0, 2, tzinfo=UTC)])
    real = logsink.log_path
    monkeypatch.setattr(logsink, "log_path", lambda d, when=None: real(d, when or next(days)))
    sink = JsonLogSink(logs)
    events = [e for e, _ in log_events()]
    try:
        sink(events[0])  # type: ignore[arg-type]
        sink(events[-1])  # type: ignore[arg-type]
    finally:
        sink.close()
    assert sink.first_path == logs / "pipeline-2026-12-24.log" and sink.path == logs / "pipeline-2026-12-25.log"
    from engine.events import RunFinished
    from engine.run.runner import RunResult

    result = RunResult()
    result.summary = RunFinished(run_id="r", status="success", tasks=0, succeeded=0, failed=0, cancelled=0,
                                 records=0, duration_s=4.0)
    line = summary_line(result, str(sink.first_path), str(sink.path))
    assert line is not None and line.endswith(f"log: {sink.first_path} (after midnight UTC: {sink.path})")
