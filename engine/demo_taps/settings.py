"""The demo taps' ``--config``, ``--state`` and ``--catalog`` files, parsed strictly.

The contract mirrors real Singer SDK taps where the engine depends on it: a missing or
unreadable config (or state, or catalog) file exits 1; a config that parses but asks for
something unknown or of the wrong type exits 2, so a typo in a fault drill never silently
runs a clean tap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

EXIT_BAD_FILE = 1
EXIT_BAD_SETTING = 2
DEFAULT_HUGE_BYTES = 1 << 20


class SettingsProblem(Exception):
    """A problem with an input file; ``exit_code`` says how the tap must exit."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults to inject; every ``*_at``/``*_after`` counts RECORD messages already written."""

    fail_after: int | None = None
    exit_code: int = 1
    malformed_at: int | None = None
    hang_after: int | None = None
    stderr_flood_bytes: int = 0
    record_before_schema: bool = False
    huge_record_at: int | None = None
    huge_record_bytes: int = DEFAULT_HUGE_BYTES
    unknown_message_at: int | None = None
    invalid_utf8_at: int | None = None
    close_stdout_after: int | None = None

    def trigger_points(self) -> set[int]:
        """The record counts at which some fault fires."""
        points = (
            self.fail_after, self.malformed_at, self.hang_after, self.huge_record_at,
            self.unknown_message_at, self.invalid_utf8_at, self.close_stdout_after,
        )
        return {p for p in points if p is not None}


@dataclass(frozen=True, slots=True)
class TapSettings:
    """The whole demo tap config."""

    account: str = "demo"
    records: int = 100
    seed: int = 0
    faults: Faults = field(default_factory=Faults)


_FAULT_BOOLS = {"record_before_schema"}
_FAULT_NAMES = set(Faults.__dataclass_fields__)
_CONFIG_NAMES = set(TapSettings.__dataclass_fields__)


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON input file; any failure is a bad-file problem (exit 1)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        message = f"cannot read {what} file {path}: {exc.strerror}"
        raise SettingsProblem(message, EXIT_BAD_FILE) from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        message = f"{what} file {path} is not valid JSON: {exc}"
        raise SettingsProblem(message, EXIT_BAD_FILE) from None


def _object(value: Any, where: str, exit_code: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SettingsProblem(f"{where} must be a JSON object", exit_code)
    return value


def _reject_unknown(given: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(given) - known)
    if unknown:
        raise SettingsProblem(
            f"unknown {where} key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})",
            EXIT_BAD_SETTING,
        )


def _int(value: Any, where: str, minimum: int | None = 0, maximum: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if not ok:
        bounds = f" >= {minimum}" if minimum is not None else ""
        bounds += f" and <= {maximum}" if maximum is not None else ""
        raise SettingsProblem(f"{where} must be an integer{bounds}", EXIT_BAD_SETTING)
    result: int = value
    return result


def parse_faults(raw: Any) -> Faults:
    """The ``faults`` object: known keys only, non-negative integers, one boolean."""
    given = _object(raw, "config key 'faults'", EXIT_BAD_SETTING)
    _reject_unknown(given, _FAULT_NAMES, "faults")
    values: dict[str, Any] = {}
    for name, value in given.items():
        where = f"faults.{name}"
        if name in _FAULT_BOOLS:
            if not isinstance(value, bool):
                raise SettingsProblem(f"{where} must be true or false", EXIT_BAD_SETTING)
            values[name] = value
        elif name == "exit_code":
            values[name] = _int(value, where, 0, 255)
        else:
            values[name] = _int(value, where)
    return Faults(**values)


def parse_settings(raw: Any) -> TapSettings:
    """The whole config object."""
    given = _object(raw, "the config", EXIT_BAD_FILE)
    _reject_unknown(given, _CONFIG_NAMES, "config")
    account = given.get("account", "demo")
    if not isinstance(account, str) or not account:
        raise SettingsProblem("config key 'account' must be a non-empty string", EXIT_BAD_SETTING)
    return TapSettings(
        account=account,
        records=_int(given.get("records", 100), "config key 'records'"),
        seed=_int(given.get("seed", 0), "config key 'seed'", minimum=None),
        faults=parse_faults(given.get("faults", {})),
    )


def load_settings(path: Path | None) -> TapSettings:
    """Read ``--config`` (no flag means all defaults)."""
    if path is None:
        return TapSettings()
    return parse_settings(read_json(path, "config"))


def load_offsets(path: Path | None) -> dict[str, int]:
    """Per-stream resume offsets from ``--state``.

    Accepts a Singer state (``{"bookmarks": {stream: {"offset": n}}}``), the ``value`` of a
    STATE message, or Meltano's ``{"singer_state": ...}`` wrapper.
    """
    if path is None:
        return {}
    state = _object(read_json(path, "state"), "the state", EXIT_BAD_FILE)
    for wrapper in ("singer_state", "value"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    bookmarks = _object(state.get("bookmarks", {}), "state 'bookmarks'", EXIT_BAD_FILE)
    offsets: dict[str, int] = {}
    for stream, mark in bookmarks.items():
        if isinstance(mark, dict) and "offset" in mark:
            offsets[stream] = _int(mark["offset"], f"state bookmark {stream}.offset")
    return offsets


def check_catalog(path: Path | None) -> None:
    """``--catalog`` is accepted for compatibility; it only has to be a JSON object."""
    if path is not None:
        _object(read_json(path, "catalog"), "the catalog", EXIT_BAD_FILE)
