"""The :class:`Check` record: one line of the ``lorchestra validate`` checklist.

Why a leaf module of its own: the checks of several packages (``clients``, ``drift``,
``measures``) return ``Check`` items, and the checks that ``validate`` runs on a workspace
(:mod:`engine.ops.checks`) import those packages. With the record here, importing nothing of
the engine, no package has to import ``ops`` for it, so the package graph stays acyclic
(``tests/test_import_cycles.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]
Kind = Literal["config", "permission"]


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    group: str
    subject: str
    status: Status
    message: str
    kind: Kind = "config"
