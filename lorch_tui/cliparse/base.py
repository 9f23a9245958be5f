"""What every ``lorchestra`` parser shares: the global options, run options and :class:`Lazy`.

A module of its own so that the command declarations (``pipeline``, ``upkeep``, ``reading``)
and the package's ``build_parser`` import it without importing each other (no cycle).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

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
