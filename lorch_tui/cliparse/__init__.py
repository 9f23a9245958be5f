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
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from engine import __version__
from lorch_tui.argtypes import MAX_WAIT_S, wait_seconds

S = argparse.SUPPRESS

EXIT_CODES = ("exit codes: 0 ok, 1 a task failed, 2 usage/config error, 3 workspace busy, "
              "4 permission check failed, 130 interrupted")
"""The epilog of ``lorchestra --help`` and ``lorch-tui --help`` (DESIGN.md's exit codes)."""


@dataclass(frozen=True)
class Lazy:
    """A command's function named by ``module:function``, imported when the command runs."""

    target: str
    """``package.module:function``; the function takes the parsed namespace and returns the exit code."""

    def resolve(self) -> Callable[[argparse.Namespace], int]:
        """Import the module and return the function."""
        module, _, name = self.target.partition(":")
        return cast("Callable[[argparse.Namespace], int]", getattr(importlib.import_module(module), name))

    def __call__(self, ns: argparse.Namespace) -> int:
        return self.resolve()(ns)


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--config", metavar="PATH", default=S,
                   help="pipeline config (else $LORCH_CONFIG, ./config/pipeline.yaml, the bundled demo)")
    g.add_argument("--workspace", metavar="PATH", default=S,
                   help="workspace folder (else $LORCH_WORKSPACE, else the config's workspace)")
    g.add_argument("-v", "--verbose", action="store_true", default=S,
                   help="show tracebacks of internal errors")
    return p


def run_options(p: argparse.ArgumentParser) -> None:
    """Options of commands that run tasks."""
    p.add_argument("--skip-permissions", action="store_true",
                   help="run even if workspace paths are group- or world-accessible")
    p.add_argument("--json", action="store_true", help="print events as JSON lines instead of progress")
    p.add_argument("--wait", type=wait_seconds, default=0.0, metavar="SECONDS",
                   help=f"wait up to SECONDS (0-{MAX_WAIT_S}) for the workspace lock instead of exiting 3")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``lorchestra`` (every command; no command module imported)."""
    from lorch_tui.cliparse import pipeline, reading, upkeep

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
