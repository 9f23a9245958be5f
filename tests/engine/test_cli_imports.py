"""``lorchestra``'s light commands start without importing the heavy modules (issue 18).

Not timed (timings are noisy on a shared machine): each case runs a real ``lorchestra``
(or ``lorch-tui``) process on a real workspace and reports, at exit, which modules were
loaded; the light commands must not have loaded the runner, asyncio, the event models or
the other commands' modules, and ``--help`` of any command must load no command at all.
A positive control (a real run) shows the report does see those modules when they load.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.helpers import REPO, TinyTap, clean_env, tiny_tap

REPORT = """\
import atexit, sys
def _report():
    sys.stderr.write("\\nMODULES:" + " ".join(sorted(sys.modules)) + "\\n")
atexit.register(_report)
from importlib import import_module
sys.exit(import_module(sys.argv[1]).main(sys.argv[2:]))
"""
"""Run a face's ``main`` and print every loaded module name on stderr at exit (even after
argparse's SystemExit for ``--help``)."""

RUNNER = ("engine.run.runner", "engine.run.session", "asyncio", "aiosqlite", "lorch_tui.runface")
"""What only running tasks needs."""
EVENTS = ("engine.events",)
"""The event models (pydantic): written by runs, not by reading the history."""
NEVER = ("textual", "engine.index.query", "engine.vectors", "numpy")
"""Neither the dashboard nor the query layer nor the embedding model, for any light command."""
COMMAND_MODULES = ("lorch_tui.statuscmd", "lorch_tui.validatecmd", "lorch_tui.cleancmd", "lorch_tui.configcmd",
                   "lorch_tui.querycmd", "lorch_tui.verifycmd", "lorch_tui.clientscmd", "lorch_tui.driftcmd",
                   "lorch_tui.transformcmd", "lorch_tui.canoncmd", "lorch_tui.listcmd", "lorch_tui.runcmd",
                   "lorch_tui.streamscmd", "lorch_tui.measurescmd", "lorch_tui.rankcmd", "lorch_tui.repincmd",
                   "lorch_tui.movedcmd")
HEAVY_FOR_HELP = ("engine.config", "engine.config.load", "pydantic", "rich", "orjson", "yaml", *RUNNER, *EVENTS)


def loaded(*args: str, module: str = "lorch_tui.cli", cwd: Path = REPO) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``module``'s main with ``args`` as a real process; its result and loaded modules."""
    res = subprocess.run([sys.executable, "-c", REPORT, module, *args], capture_output=True, text=True,
                         cwd=cwd, env=clean_env(COLUMNS="200"), timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    marker = res.stderr.rfind("MODULES:")
    assert marker >= 0, res.stderr
    return res, set(res.stderr[marker + len("MODULES:"):].split())


def present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages included: ``rich`` matches ``rich.console``) were loaded."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.fixture(scope="module")
def tap(tmp_path_factory: pytest.TempPathFactory) -> TinyTap:
    """A tiny singer tap whose workspace has one real run in its history."""
    tap = tiny_tap(tmp_path_factory.mktemp("cli-imports"), records=5)
    res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "run", "--config", str(tap.config)],
                         capture_output=True, text=True, cwd=REPO, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    return tap


def test_a_real_run_loads_the_runner_and_the_report_sees_it(tap: TinyTap) -> None:
    res, modules = loaded("run", "--stage", "extract", "--config", str(tap.config))
    assert res.returncode == 0, res.stderr
    assert present(modules, RUNNER + EVENTS) == sorted(RUNNER + EVENTS)
    assert "lorch_tui.runcmd" in modules


def test_status_reads_the_history_without_runner_or_event_models(tap: TinyTap) -> None:
    res, modules = loaded("status", "--json", "--history", "3", "--config", str(tap.config))
    assert res.returncode == 0, res.stderr
    doc = orjson.loads(res.stdout)
    assert doc["last_run"]["status"] == "success", "status really read the run history"
    assert "engine.store.history" in modules
    assert present(modules, RUNNER + EVENTS + NEVER) == []
    assert present(modules, COMMAND_MODULES) == ["lorch_tui.statuscmd"]


@pytest.mark.parametrize(("args", "command_modules"), [
    (("list", "extractors"), ["lorch_tui.listcmd"]),
    (("validate", "--quick"), ["lorch_tui.validatecmd"]),
    (("run", "--dry-run"), ["lorch_tui.runcmd"]),
])
def test_light_commands_load_only_their_own_module(tap: TinyTap, args: tuple[str, ...],
                                                    command_modules: list[str]) -> None:
    res, modules = loaded(*args, "--config", str(tap.config))
    assert res.returncode == 0, res.stderr
    assert tap.name in res.stdout, "the command really read the config"
    assert present(modules, RUNNER + EVENTS + NEVER) == []
    assert present(modules, COMMAND_MODULES) == command_modules


def test_no_ui_dry_run_loads_no_runner(tap: TinyTap) -> None:
    res, modules = loaded("--no-ui", "--dry-run", "--config", str(tap.config), module="lorch_tui.tui_main")
    assert res.returncode == 0, res.stderr
    assert f"{tap.name}: extract" in res.stdout
    assert present(modules, RUNNER + EVENTS + NEVER) == []


HELPS = [(), ("extract",), ("run",), ("list",), ("transform",), ("transform", "test"), ("transform", "run"),
         ("transform", "new"), ("status",), ("validate",), ("clean",), ("config",), ("config", "schema"),
         ("query",), ("verify",), ("clients",), ("clients", "list"), ("clients", "show"),
         ("clients", "conflicts"), ("clients", "unlinked"), ("clients", "repin"), ("clients", "moved"), ("drift",)]


def test_every_help_is_complete_without_the_heavy_modules() -> None:
    """One process per help text would take long; each is checked in a fresh process anyway
    for the top level, and all of them through one parser in a second process."""
    res, modules = loaded("--help")
    assert res.returncode == 0 and "drift" in res.stdout
    assert present(modules, HEAVY_FOR_HELP + COMMAND_MODULES + NEVER) == []
    res, modules = loaded("clients", "unlinked", "--help")
    assert res.returncode == 0
    assert "--reason R" in res.stdout and "only this reason" in res.stdout
    assert present(modules, HEAVY_FOR_HELP + COMMAND_MODULES + NEVER) == []
    res, modules = loaded("--help", module="lorch_tui.tui_main")
    assert res.returncode == 0 and "--no-ui" in res.stdout
    assert present(modules, HEAVY_FOR_HELP + COMMAND_MODULES + NEVER) == []
    code = ("import sys, contextlib, io\nfrom lorch_tui.cli import build_parser\n"
            f"for args in {HELPS!r}:\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
            "        build_parser().parse_args([*args, '--help'])\n"
            "    assert 'usage: lorchestra' in out.getvalue() and 'global options' in out.getvalue(), args\n"
            "print(' '.join(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert present(set(res.stdout.split()), HEAVY_FOR_HELP + COMMAND_MODULES + NEVER) == []


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every leaf command of the parser and its ``func`` default."""
    found: dict[tuple[str, ...], object] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, (*path, name)))
    if not found and path:
        found[path] = parser.get_default("func")
    return found


def test_every_command_names_a_function_that_exists() -> None:
    from lorch_tui.cli import build_parser
    from lorch_tui.cliparse import Lazy

    commands = _commands(build_parser())
    assert set(commands) == {h for h in HELPS if h and h not in {("transform",), ("config",), ("clients",)}}
    for path, func in commands.items():
        assert isinstance(func, Lazy), path
        assert callable(func.resolve()), f"{' '.join(path)}: {func.target} does not resolve"


def test_the_parsers_choices_match_the_engine() -> None:
    from engine.clients.model import REASONS
    from engine.config import STAGES
    from engine.ops.cleanup import CLEAN_STAGES
    from engine.run.plan import RUN_STAGES
    from lorch_tui.cliparse import pipeline, reading, upkeep

    assert pipeline.STAGE_CHOICES == STAGES
    assert pipeline.RUN_STAGES == RUN_STAGES
    assert upkeep.CLEAN_STAGES == CLEAN_STAGES
    assert list(reading.UNLINKED_REASONS) == sorted(REASONS)
