"""How the project task fails: its error, and the message it leaves a person in the workspace.

Split from :mod:`engine.stages.project` (which does the work) because a failure's words are
their own concern: events carry only a code and a path, so what went wrong for a person
(an overrides file that does not parse, a projection that found no client, the file
operation that failed) is written to ``diagnostics/project/project-error.txt`` (0600, inside
the workspace: a path may hold a client's name) and the event names that file.
"""

from __future__ import annotations

import errno

from engine.events import write_error_code
from engine.store.fsutil import ensure_dir, open_private
from engine.store.workspace import Workspace


class ProjectFailed(Exception):
    """The project stage cannot run; ``code`` is an ErrorCode value."""

    def __init__(self, code: str, detail_path: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail_path = detail_path


NO_CLIENTS_TEXT = (
    "NO_CLIENTS: this projection found no client, so nothing was replaced: the client tables "
    "and every chart stay as they were.\n"
    "Either the index holds contacts of clients.sources but none meets clients.where (a typo in "
    "a path or a value: correct it), or the sources now give no contact at all while the last "
    "projection had clients (a tap that synced an empty result, an expired permission: look at "
    "the source's last extract with `lorchestra status`).\n"
    "If the practice really has no clients now, `lorchestra clean --stage project` removes the "
    "charts (docs/clients.md).")


def write_detail(ws: Workspace, text: str) -> str:
    """Write a message for a person into the workspace (0600); return its path."""
    folder = ensure_dir(ws.diagnostics / "project")
    path = folder / "project-error.txt"
    with open_private(path, "wb") as fh:
        fh.write(text.encode() + b"\n")
    return str(path)


def os_error_detail(ws: Workspace, exc: OSError) -> str | None:
    """The failed file operation for a person (``diagnostics/project/project-error.txt``: the
    path may hold a client's name, so only inside the workspace); None if even that fails."""
    where = " ".join(f"'{f}'" for f in (exc.filename, exc.filename2) if f is not None)
    what = (f"{errno.errorcode.get(exc.errno, 'errno ' + str(exc.errno))} ({exc.strerror}) on {where or 'a file'}"
            if exc.errno is not None else f"{exc} (in the second chart writer: its own stderr is in "
                                          "diagnostics/project/)")
    try:
        return write_detail(ws, f"{write_error_code(exc).value}: {what}. "
                                "Nothing half-written is visible: the client tables are the old or the new "
                                "ones and each chart folder is whole, but the set of folders may mix old and "
                                "new ones (`lorchestra status` says charts: incomplete); the next run "
                                "completes them.")
    except OSError:
        return None
