"""How each extractor kind becomes a tap command line (singer, meltano, demo), and a
loader a target command line.

The tap's config may hold credentials: it is passed by path, never read or copied here,
and extra environment variables from the config go to the tap's environment only. A
catalog and a STATE file, when the run has them, are appended as ``--catalog`` and
``--state`` (``meltano invoke`` forwards them to the tap; it adds its own catalog).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.config import Extractor, Loader
from engine.store.fsutil import open_private


@dataclass(frozen=True)
class TapCommand:
    """A ready-to-run tap: argv, environment and working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path | None


def tap_command(ex: Extractor, scratch: Path, *, catalog: Path | None = None,
                state: Path | None = None, discover: bool = False) -> TapCommand:
    """The command that runs ``ex``; ``scratch`` is a private folder for generated files.

    ``discover`` asks for the catalog (``--discover``) instead of a sync.
    """
    cmd = _base_command(ex, scratch)
    extra: list[str] = []
    if discover:
        extra.append("--discover")
    else:
        if catalog is not None:
            extra += ["--catalog", str(catalog)]
        if state is not None:
            extra += ["--state", str(state)]
    return TapCommand(cmd.argv + extra, cmd.env, cmd.cwd)


def _base_command(ex: Extractor, scratch: Path) -> TapCommand:
    env = {**os.environ, **ex.env}
    if ex.kind == "demo":
        assert ex.demo is not None
        cfg_path = scratch / "demo-tap-config.json"
        with open_private(cfg_path, "wb") as fh:
            fh.write(orjson.dumps({
                "account": ex.account,
                "records": ex.demo.records,
                "seed": ex.demo.seed,
                "faults": ex.demo.faults.model_dump(exclude_none=True),
            }))
        argv = [sys.executable, "-m", "engine.demo_taps", ex.demo.tap, "--config", str(cfg_path)]
        return TapCommand(argv, env, None)
    if ex.kind == "meltano":
        assert ex.meltano is not None
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        argv = [ex.meltano.executable, "invoke", ex.meltano.plugin]
        return TapCommand(argv, env, ex.meltano.project)
    assert ex.command
    argv = list(ex.command)
    if ex.config is not None:
        argv += ["--config", str(ex.config)]
    return TapCommand(argv, env, None)


def describe(ex: Extractor) -> str:
    """A one-line, secret-free description of how the extractor runs (for `list`)."""
    if ex.kind == "demo":
        assert ex.demo is not None
        return f"demo tap {ex.demo.tap} ({ex.demo.records} records, seed {ex.demo.seed})"
    if ex.kind == "meltano":
        assert ex.meltano is not None
        state = " --state (last run)" if ex.incremental else ""
        return f"meltano invoke {ex.meltano.plugin}{state} (in {ex.meltano.project})"
    assert ex.command
    extra = f" --config {ex.config}" if ex.config else ""
    if ex.catalog is not None:
        extra += f" --catalog {ex.catalog}"
    elif ex.discover:
        extra += " --catalog (discovered)"
    return " ".join(ex.command) + extra + (" --state (last run)" if ex.incremental else "")


def loader_command(lo: Loader) -> TapCommand:
    """The command that runs a loader (a Singer target) reading from its stdin."""
    argv = list(lo.command)
    if lo.config is not None:
        argv += ["--config", str(lo.config)]
    return TapCommand(argv, {**os.environ, **lo.env}, None)


def describe_loader(lo: Loader) -> str:
    """A one-line, secret-free description of a loader (for `list loaders`)."""
    return " ".join(lo.command) + (f" --config {lo.config}" if lo.config else "")
