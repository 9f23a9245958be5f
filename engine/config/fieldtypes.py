"""The config's field types: safe names, paths resolved against the config file, command lists.

Split from :mod:`engine.config.models` (the models themselves) because these are the rules
every model's fields share, not keys of the file: a name that becomes a folder of the
workspace must be a safe path segment; a path expands ``~`` (a ``~user`` naming nobody is
refused), resolves against the config file's folder and is never empty (``Path("")`` would
be that folder); a command list resolves only the items that are plainly relative paths.
The base folder comes from the validation context (``base_dir``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from engine.store.fsutil import is_safe_segment


def _safe_name(value: str) -> str:
    if not is_safe_segment(value):
        raise ValueError(
            f"{value!r} is not a safe name: use 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter, digit or '_', because it becomes a folder name in the workspace"
        )
    return value


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Expand ``~`` and resolve a relative path against the config file's folder. A ``~user``
    that names no user is refused: left as it was, it became a folder ``~nosuchuser`` beside
    the config (a PHI workspace in a checkout)."""
    path = Path(os.path.expanduser(str(value)))
    if str(path).startswith("~"):
        raise ValueError(f"{str(value).split('/')[0]!r} names no user of this machine (a typo in ~user?)")
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return Path(os.path.normpath(path))


def _not_empty(value: object) -> object:
    """Refuse an empty path: ``Path("")`` is ``.``, which would resolve to the config's own
    folder (a ``${PHI_HOME}`` left unset made the config folder the PHI workspace)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: give a path (an empty value would mean the config file's own folder)")
    return value


def command_items(items: list[str], info: ValidationInfo) -> list[str]:
    """A command list as it will run: ``~`` expanded at the start of each item, and the items
    that are plainly relative paths resolved against the config file's folder (DESIGN.md: a
    relative path in the config is the config's): the program when it has a ``/`` in it
    (``./tap.py``, ``bin/tap-x``; a bare name is looked up on ``PATH``), and any item starting
    with ``./`` or ``../``. Other items are arguments, passed as written."""
    base = (info.context or {}).get("base_dir")
    out = []
    for i, item in enumerate(items):
        if item.startswith("~"):
            item = os.path.expanduser(item)
        relative = item.startswith(("./", "../")) or (i == 0 and "/" in item)
        if (relative and base is not None and not os.path.isabs(item) and _one_path(item)
                and not (i > 0 and items[i - 1] == "-c")):  # `sh -c "./tap | cat"` is a script
            item = os.path.join(base, item)
        out.append(item)
    return out


def _one_path(item: str) -> bool:
    """Whether an item can only be a path: no whitespace or shell syntax in it (a whole shell
    command in one item is passed as written)."""
    return not any(c.isspace() or c in "|&;<>()$`'\"*?[]{}=" for c in item)


SafeName = Annotated[str, AfterValidator(_safe_name)]
ConfigPath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_resolve_path)]
