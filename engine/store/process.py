"""What every lorchestra process sets before it touches PHI: no core dumps.

Its own module, importing only the standard library, because the CLI entry points call it
first thing, before a command is chosen (``lorchestra --help`` and ``status`` stay free of
any other import).
"""

from __future__ import annotations

import resource


def no_core_dumps() -> None:
    """No core file from this process or its children (taps, stage workers inherit the limit):
    a crash would write the process's memory, records and all, into the folder it was started
    from, outside the workspace."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):  # pragma: no cover - lowering a limit is always allowed
        pass
