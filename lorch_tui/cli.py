"""``lorchestra``: the scriptable face of the engine (extract, run, list, --version).

Global options (``--config``, ``--workspace``, ``--verbose``) are accepted before and
after the subcommand. Errors print what happened, where and what to do next, and exit
with DESIGN.md's codes; a traceback appears only with ``--verbose``.

Start-up is kept cheap (issue 18): the parser comes from :mod:`lorch_tui.cliparse`, which
declares every command without importing its module, and only the chosen command's module
is imported (``status`` never loads the runner, ``--help`` loads no command at all).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.errors import ExitCode, LorchError, from_os_error
from engine.store.process import no_core_dumps
from lorch_tui.cliparse import build_parser, common_options, run_options

__all__ = ["build_parser", "common_options", "guarded", "main", "run_options", "wide_when_piped"]


def _quiet_threads(verbose: bool) -> None:
    """After an interrupt, a helper thread still finishing (the history database's aiosqlite
    connection, opened the instant Ctrl-C came) may fail against the closed event loop on its
    way out: the process is exiting 130 already, so that prints nothing (unless --verbose)."""
    if not verbose:
        import threading

        threading.excepthook = lambda args: None


def guarded(func: Callable[[argparse.Namespace], int], ns: argparse.Namespace, prog: str) -> int:
    """Run a command; turn errors into messages and exit codes (stdout written out first)."""
    return _flushed(_guarded(func, ns, prog), prog)


def _guarded(func: Callable[[argparse.Namespace], int], ns: argparse.Namespace, prog: str) -> int:
    verbose = bool(getattr(ns, "verbose", False))
    try:
        return func(ns)
    except LorchError as exc:
        if verbose:
            traceback.print_exc()
        print(f"{prog}: error: {exc.render()}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        _quiet_threads(verbose)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # the reader of stdout went away (`| head`): not an error to report
        from lorch_tui.headless import silence_stdout

        silence_stdout()
        return int(ExitCode.OK)
    except SystemExit as exc:  # rich's own answer to that (`query | head`): stdout to /dev/null, exit 1
        if exc.code == 1 and _stdout_is_devnull():
            return int(ExitCode.OK)
        raise
    except Exception as exc:  # last resort: never a traceback unless --verbose
        if verbose:
            traceback.print_exc()
        mapped = from_os_error(exc, _workspace_of(ns))
        if mapped is not None:  # a full disk, a file in the way, a read-only or broken disk
            print(f"{prog}: error: {mapped.render()}", file=sys.stderr)
            return int(mapped.exit_code)
        print(f"{prog}: internal error ({type(exc).__name__}); rerun with --verbose for details",
              file=sys.stderr)
        return int(ExitCode.TASK_FAILED)


def _flushed(code: int, prog: str) -> int:
    """``code``, once what is left in stdout's buffer is written. Written at exit instead, a
    full device under a redirected stdout (cron's `> /var/log/x` on a full disk) made Python
    exit 120, a code cron wrappers do not know; the run itself had printed its summary."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from lorch_tui.headless import silence_stdout

        silence_stdout()
    except (OSError, ValueError) as exc:
        from lorch_tui.headless import silence_stdout

        silence_stdout()  # the buffer is dropped: exiting tries no second write
        if code == int(ExitCode.OK):  # a face that failed to write said so already
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            print(f"{prog}: error: could not write the output ({reason})", file=sys.stderr)
            return int(ExitCode.TASK_FAILED)
    return code


def _stdout_is_devnull() -> bool:
    """Whether standard output is now /dev/null (where rich points it after a broken pipe)."""
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError):
        return False


def _workspace_of(ns: argparse.Namespace) -> Path | None:
    """The workspace the command used, for an error message (None when it cannot be told)."""
    try:
        from engine.config.load import load

        return load(getattr(ns, "config", None), getattr(ns, "workspace", None)).workspace
    except Exception:  # noqa: BLE001 - only for a message; the real error is being reported
        return None


def standard_streams() -> None:
    """A standard stream that was closed when the process started (``cmd >&-``, ``<&-``) is
    None in Python: it becomes ``/dev/null`` (taking its descriptor back), so output goes
    nowhere and input is at its end, instead of a traceback at the first ``isatty()``."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode))  # noqa: SIM115 - for the process's life


def wide_when_piped() -> None:
    """Rich wraps at 80 columns without a terminal; cron mail and grep want whole lines."""
    standard_streams()
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", "200")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lorchestra`."""
    wide_when_piped()
    no_core_dumps()  # a crash must not leave the process's memory (PHI) in the current folder
    os.umask(0o077)  # every file a command creates is the user's alone (`transform new`'s too); as
    # engine.store.fsutil.secure_umask, without importing it (`--help` loads no heavy module)
    if os.environ.get("LORCH_TRANSFORM_CAPPED"):  # `transform run`'s capped child: capped first
        from lorch_tui.capped import cap_child_early

        cap_child_early()
    ns = build_parser().parse_args(argv)
    ns.argv = list(argv) if argv is not None else sys.argv[1:]  # for a command that re-runs itself
    return guarded(ns.func, ns, "lorchestra")


if __name__ == "__main__":
    sys.exit(main())
