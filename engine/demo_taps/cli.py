"""Command line of the demo taps, shaped like a Singer SDK tap's.

Exit codes: 0 success (also ``--discover``); 1 a missing or unreadable config/state/catalog
file, or a broken stdout pipe; 2 a bad command line or a config with unknown keys or wrong
types; the ``fail_after`` fault's ``exit_code``; 130 on Ctrl-C. Errors go to stderr as one
``CRITICAL`` line, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from engine.demo_taps import TAP_NAMES, dataverse, forms, gmail, msgraph, quickbooks, sheets
from engine.demo_taps.emitter import Emitter, TapExit
from engine.demo_taps.settings import (
    EXIT_BAD_FILE,
    Faults,
    SettingsProblem,
    check_catalog,
    load_offsets,
    load_settings,
)
from engine.demo_taps.spec import TapContext, TapPlan
from engine.demo_taps.taplog import TapLog

TAPS: dict[str, Callable[[TapContext], TapPlan]] = {
    "gmail": gmail.plan,
    "msgraph": msgraph.plan,
    "dataverse": dataverse.plan,
    "sheets": sheets.plan,
    "quickbooks": quickbooks.plan,
    "forms": forms.plan,
    "formsheets": forms.sheet_plan,
}
assert tuple(TAPS) == TAP_NAMES
_OUT_BUFFER = 1 << 20


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--help`` lists the config keys too)."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.demo_taps",
        description="Bundled demo Singer tap: writes synthetic records as Singer messages.",
        epilog=(
            'config JSON keys: "account" (default "demo"), "records" (total, default 100), '
            '"seed" (default 0), "faults" {fail_after, exit_code, malformed_at, hang_after, '
            "stderr_flood_bytes, record_before_schema, huge_record_at, huge_record_bytes, "
            "unknown_message_at, invalid_utf8_at, close_stdout_after}"
        ),
    )
    parser.add_argument("tap", choices=TAP_NAMES, help="which demo source to emulate")
    parser.add_argument("--config", type=Path, help="tap config JSON file")
    parser.add_argument("--state", type=Path, help="Singer state JSON to resume from")
    parser.add_argument("--catalog", type=Path, help="Singer catalog JSON (read, not used)")
    parser.add_argument("--discover", action="store_true", help="print the catalog and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one tap; returns the process exit code."""
    args = build_parser().parse_args(argv)
    log = TapLog(args.tap)
    try:
        settings = load_settings(args.config)
        offsets = load_offsets(args.state)
        check_catalog(args.catalog)
    except SettingsProblem as problem:
        log.stream.write(f"CRITICAL {problem.message}\n")
        return problem.exit_code
    ctx = TapContext(args.tap, settings.account, settings.seed, settings.records)
    plan = TAPS[args.tap](ctx)
    if args.discover:
        catalog = {"streams": [s.catalog_entry() for s in plan.streams]}
        sys.stdout.buffer.write(orjson.dumps(catalog, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.buffer.flush()
        return 0
    return _sync(plan, settings.faults, offsets, log)


def _sync(plan: TapPlan, faults: Faults, offsets: dict[str, int], log: TapLog) -> int:
    out = io.BufferedWriter(io.FileIO(1, "w", closefd=False), buffer_size=_OUT_BUFFER)
    try:
        Emitter(plan, faults, offsets, out, log).run()
    except TapExit as stop:
        log.flush()
        return stop.code
    except BrokenPipeError:
        _silence_stdout()
        log.error("stdout was closed by the reader; stopping")
        return EXIT_BAD_FILE
    except KeyboardInterrupt:
        _silence_stdout()
        return 130
    finally:
        try:
            out.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout()
    return 0


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the pending buffer and shutdown flush cannot fail."""
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.close(fd)
