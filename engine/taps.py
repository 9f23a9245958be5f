"""How each extractor kind becomes a tap command line (singer, meltano, demo).

The tap's config may hold credentials: it is passed by path, never read or copied here,
and extra environment variables from the config go to the tap's environment only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.config import Extractor
from engine.fsutil import open_private


@dataclass(frozen=True)
class TapCommand:
    """A ready-to-run tap: argv, environment and working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path | None


def tap_command(ex: Extractor, scratch: Path) -> TapCommand:
    """The command that runs ``ex``; ``scratch`` is a private folder for generated files."""
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
        return f"meltano invoke {ex.meltano.plugin} (in {ex.meltano.project})"
    assert ex.command
    extra = f" --config {ex.config}" if ex.config else ""
    return " ".join(ex.command) + extra
