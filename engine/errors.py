"""Exit codes and the one error type every face knows how to print.

DESIGN.md section 6 fixes the exit codes; every error carries a message that says what
happened, where, and what to do next, so the faces can print it without a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes shared by every command and ``lorch-tui --no-ui``."""

    OK = 0
    TASK_FAILED = 1
    USAGE = 2
    BUSY = 3
    PERMISSION = 4
    INTERRUPTED = 130


class LorchError(Exception):
    """An error meant for a person: what happened, where, what to do next.

    The message must never contain record content or tap output: only identifiers from
    the config, paths and numbers.
    """

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def render(self) -> str:
        """The full text shown to the user."""
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(LorchError):
    """The configuration file is missing, unreadable or invalid (exit 2)."""

    exit_code = ExitCode.USAGE


class UsageError(LorchError):
    """The command line asks for something that cannot be done (exit 2)."""

    exit_code = ExitCode.USAGE


class WorkspaceBusy(LorchError):
    """Another writer holds the workspace lock (exit 3)."""

    exit_code = ExitCode.BUSY


class PermissionProblem(LorchError):
    """A permission or security check failed (exit 4)."""

    exit_code = ExitCode.PERMISSION
