"""What of a workspace path a command may print: chart folder names are clients' names.

Every other name in the workspace comes from the config, run ids, dates or checksums, so a
path can be printed as it is; a chart folder (``clients/Doe, Jane (0123abcd)``) is named after
its client. Commands that report paths under ``clients/`` (the permission checks of a run
start and of ``validate``, ``clean``) print them through :func:`shown_path`:
``clients/<client 0123abcd>`` -- the id is unique and PHI-free, and :func:`chart_hint` says how
to find the folder (docs/security.md, "Chart folder names never reach the terminal").
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

CHARTS_DIR = ("clients",)
"""The project stage's chart folders (one per client, each replaced whole by the stage: a new
0700 folder swapped in): a run start checks ``clients/`` and every chart folder, not the files
inside them (2,000 clients were 12,000 paths, 60-70 CPU-ms of every run start)."""

CHART_ID = re.compile(r" \(([0-9a-f]{8,16})\)\Z")
"""The short-id suffix of a chart folder's name (``Doe, Jane (0123abcd)``): the pattern of
:func:`engine.clients.charts.is_chart_folder`, which this layer cannot import (a test keeps
them equal)."""
CHART_FILES = frozenset({"client.md", "timeline.md", "sessions.md", "billing.md", "measures.md"})
"""The files the project stage writes into a chart folder: fixed names, shown as they are."""
ENGINE_HIDDEN = (".staging-", ".trash-", ".swap-")
"""Hidden names the project stage makes in ``clients/`` from a pid and a number (never from a
name): shown as they are. (``.aside-<chart folder>`` of the older fallback holds the name.)"""
ASIDE = ".aside-"
HIDDEN_NAME = "<name hidden>"
"""What a name under ``clients/`` that the engine did not make from non-PHI shows as."""
_SHOWN_CHART = re.compile(r"<client ([0-9a-f]{8,16})>")


def shown_name(name: str, *, top: bool = True) -> str:
    """One name under ``clients/`` as it may be printed: a chart folder ``Doe, Jane
    (0123abcd)`` as ``<client 0123abcd>`` (its id is unique and PHI-free), the engine's own
    hidden names and the chart files as they are, anything else as ``<name hidden>`` (a
    folder a person made there may be named after a client too). ``top``: a name directly in
    ``clients/`` (not inside a chart folder)."""
    if not top:
        return name if name in CHART_FILES else HIDDEN_NAME
    if name.startswith(ENGINE_HIDDEN):
        return name
    prefix = ASIDE if name.startswith(ASIDE) else ""
    m = CHART_ID.search(name)
    if m is not None and len(name) > len(prefix) + len(m.group(0)) and not name[len(prefix):].startswith("."):
        return f"{prefix}<client {m.group(1)}>"
    return HIDDEN_NAME


def shown_path(path: str | os.PathLike[str], root: Path) -> str:
    """``path`` as a command may print it (docs/security.md, "Chart folder names"): inside
    ``root/clients/`` every name goes through :func:`shown_name`; any other path is printed
    as it is (the workspace's other names come from the config, run ids and checksums)."""
    text = os.fspath(path).rstrip(os.sep) or os.fspath(path)
    rel = os.path.relpath(os.path.abspath(text), os.path.abspath(root)).split(os.sep)
    if len(rel) < 2 or rel[0] != CHARTS_DIR[0]:
        return text
    parts = text.split(os.sep)
    if parts[len(parts) - len(rel) + 1:] != rel[1:]:  # not spelled plainly (``..``): mask it whole
        return os.path.join(os.fspath(root), CHARTS_DIR[0], HIDDEN_NAME)
    shown = [shown_name(rel[1]), *(shown_name(n, top=False) for n in rel[2:])]
    return os.sep.join(parts[:len(parts) - len(rel) + 1] + shown)


def _inside(path: str, root: Path) -> bool:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return rel != ".." and not rel.startswith(".." + os.sep)


def shown_target(target: str, link: str, root: Path) -> str:
    """A symlink's target as it may be printed: a target inside ``clients/`` masked like
    :func:`shown_path`; one elsewhere in the workspace as it is; one outside it hidden when
    the link lies in ``clients/`` or the target names a chart folder (a copy of the charts)."""
    full = os.path.normpath(os.path.join(os.path.dirname(link), target))
    shown = shown_path(full, root)
    if shown != full:
        return shown
    if _inside(full, root):
        return target
    if shown_path(link, root) != link or any(CHART_ID.search(seg) for seg in full.split(os.sep)):
        return HIDDEN_NAME
    return target


def private_os_error(exc: OSError, root: Path) -> OSError:
    """``exc`` with its file names masked by :func:`shown_path` (in place, returned): for a
    command that deletes or chmods under ``clients/`` and lets the error reach the terminal
    (``engine.errors.from_os_error`` names ``exc.filename``)."""
    for attr in ("filename", "filename2"):
        name = getattr(exc, attr)
        if isinstance(name, str | os.PathLike):
            setattr(exc, attr, shown_path(name, root))
    return exc


def chart_hint(root: Path, shown: list[str]) -> str | None:
    """How to find a masked name of ``shown`` (None when none is masked): the id suffix is
    unique, so ``ls {root}/clients | grep ID`` finds the chart folder."""
    clients = shlex.quote(os.path.join(os.fspath(root), CHARTS_DIR[0]))
    for text in shown:
        m = _SHOWN_CHART.search(text)
        if m is not None:
            return (f"a chart folder's name is its client's name, so it shows as <client ID>; "
                    f"the id is unique: `ls {clients} | grep {m.group(1)}` finds it")
    if any(HIDDEN_NAME in text for text in shown):
        return (f"names in {clients} are shown as {HIDDEN_NAME} unless lorchestra made them "
                f"(they may be clients' names); `ls -la {clients}` shows them")
    return None
