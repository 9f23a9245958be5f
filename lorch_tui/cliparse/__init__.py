"""The argument parsers of ``lorchestra``, built without importing any command's code.

Why this package exists: a fresh ``lorchestra status`` used to import every subcommand
module (and through them the runner, the index query layer, rich and the pydantic config
models) just to build its parser, about 0.4 CPU-s before any work (issue 18). Here every
command, action and option is declared with its complete help text, but a command's
``func`` is a :class:`Lazy` reference (``"lorch_tui.statuscmd:cmd_status"``): its module is
imported only when that command runs. ``--help`` of any command therefore needs nothing but
``argparse``. This package imports only the standard library, :mod:`engine` (the version)
and :mod:`lorch_tui.argtypes`; a test (tests/engine/test_cli_imports.py) keeps it so.
"""

from __future__ import annotations

import argparse

from engine import __version__
from lorch_tui.cliparse import pipeline, reading, upkeep
from lorch_tui.cliparse.base import EXIT_CODES, Lazy, common_options, run_options

__all__ = ["EXIT_CODES", "Lazy", "build_parser", "common_options", "run_options"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``lorchestra`` (every command; no command module imported)."""
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="lorchestra", parents=[common],
        description="Local-first orchestrator of the PHI pipeline: extract -> canonize -> index -> project.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"lorchestra {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (pipeline.extract, pipeline.run, pipeline.listing, pipeline.transform, upkeep.status,
                upkeep.validate, upkeep.clean, pipeline.config, reading.query, upkeep.verify, reading.clients,
                upkeep.drift):  # the order of `lorchestra --help`
        add(sub, common)
    return parser
