"""Finding, reading and validating the configuration file, with errors a person can act on.

The config is found in the order of DESIGN.md section 4 (``--config``, ``$LORCH_CONFIG``,
``./config/pipeline.yaml``, the bundled demo). Every problem is reported as
``FILE:LINE: key.path: what is wrong`` and raised as one :class:`ConfigError` (exit 2).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.config import Loc, PipelineConfig, cross_check
from engine.config.errors import format_loc, plain_errors
from engine.errors import ConfigError
from engine.store.fsutil import NotRegularFile, read_regular

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_CONFIG_DIR = REPO_ROOT / "config"
DEMO_CONFIG = BUNDLED_CONFIG_DIR / "demo.yaml"
LOCAL_CONFIG = Path("config") / "pipeline.yaml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus where it came from and the workspace in force."""

    config: PipelineConfig
    path: Path
    origin: str
    workspace: Path


def find_config(explicit: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """The config path and how it was chosen: flag, env, local or demo.

    An empty ``--config`` or ``$LORCH_CONFIG`` is an error, never a silent fall back to the
    next place (at worst the bundled demo), as for ``--workspace``."""
    for value, where in ((explicit, "--config"), (os.environ.get("LORCH_CONFIG"), "$LORCH_CONFIG")):
        if value is None:
            continue
        if not os.fspath(value).strip():
            example = "--config config/pipeline.yaml" if where == "--config" else "LORCH_CONFIG=config/pipeline.yaml"
            raise ConfigError(f"{where} is empty: it must name the config file",
                              hint=f"give a path (e.g. {example}), or leave it out")
        return Path(value).expanduser(), where
    if LOCAL_CONFIG.is_file():
        return LOCAL_CONFIG, "./config/pipeline.yaml"
    return DEMO_CONFIG, "bundled demo"


def load(
    config: str | os.PathLike[str] | None = None,
    workspace: str | os.PathLike[str] | None = None,
) -> LoadedConfig:
    """Find, read and validate the config; resolve the workspace override."""
    path, origin = find_config(config)
    cfg = load_file(path, origin)
    ws_value = _workspace_override(workspace)
    if ws_value is not None and os.path.expanduser(ws_value).startswith("~"):
        raise ConfigError(f"the workspace {ws_value!r} starts with a ~user that names no user of this machine",
                          hint="give the full path, or ~/ for your own home")
    ws = Path(os.path.expanduser(ws_value)).absolute() if ws_value is not None else cfg.workspace
    return LoadedConfig(cfg, path.absolute(), origin, Path(os.path.normpath(ws)))


def _workspace_override(flag: str | os.PathLike[str] | None) -> str | None:
    """``--workspace``, else ``$LORCH_WORKSPACE``, else None (the config's). An empty value
    given on purpose is an error, never a silent fall back to the config's workspace."""
    for value, where in ((flag, "--workspace"), (os.environ.get("LORCH_WORKSPACE"), "$LORCH_WORKSPACE")):
        if value is None:
            continue
        text = os.fspath(value)
        if not text.strip():
            example = "--workspace ~/phi-data" if where == "--workspace" else "LORCH_WORKSPACE=~/phi-data"
            raise ConfigError(f"{where} is empty: it must name the workspace folder",
                              hint=f"give a path (e.g. {example}), or leave it out to use "
                                   "the config's workspace")
        return text
    return None


def _unreadable(exc: OSError | UnicodeDecodeError) -> tuple[str, str]:
    """Why a config file cannot be read, in words, and what to do."""
    if isinstance(exc, UnicodeDecodeError):
        return (f"it is not UTF-8 text (byte {exc.start})", "save the file as UTF-8")
    if isinstance(exc, IsADirectoryError) or (isinstance(exc, NotRegularFile) and exc.folder):
        return ("it is a folder", "pass the YAML file inside it, e.g. --config FOLDER/pipeline.yaml")
    if isinstance(exc, NotRegularFile):
        return ("it is not a regular file (a pipe, a device or a socket)", "pass the YAML file itself")
    if isinstance(exc, PermissionError):
        return ("permission denied", "check the file's owner and mode (`ls -l`); it should be yours, "
                                     "readable by you")
    return (exc.strerror or type(exc).__name__, "check the path and the disk")


_NOT_FOUND_HINTS = {
    "--config": "check the path given to --config (a relative one is taken from the current folder); "
                "to start a config, copy config/pipeline.example.yaml",
    "$LORCH_CONFIG": "fix the path in $LORCH_CONFIG (a relative one is taken from the current folder), "
                     "or unset it (`unset LORCH_CONFIG`) to use --config PATH or ./config/pipeline.yaml",
}


def load_file(path: Path, origin: str | None = None) -> PipelineConfig:
    """Read and validate one config file, raising ConfigError with every problem in it.
    ``origin`` (``--config``, ``$LORCH_CONFIG``) is where the path came from: a missing or
    unreadable file says so, with a hint for that place (a missing $LORCH_CONFIG file said
    only "config file not found", and its hint was to set $LORCH_CONFIG)."""
    came = f" (from {origin})" if origin in _NOT_FOUND_HINTS else ""
    try:
        text = read_regular(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}{came}",
            hint=_NOT_FOUND_HINTS.get(origin or "", "pass --config PATH, set $LORCH_CONFIG, or copy "
                                      "config/pipeline.example.yaml to config/pipeline.yaml"),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why, hint = _unreadable(exc)
        if origin == "$LORCH_CONFIG":
            hint = hint.replace("--config FOLDER/", "LORCH_CONFIG=FOLDER/")
        raise ConfigError(f"cannot read config file {path}{came}: {why}", hint=hint) from None
    data, lines = parse_yaml(text, path)
    problems: list[tuple[Loc, str]] = []
    data = expand_vars(data, (), problems)
    if problems:
        raise ConfigError(format_problems(path, lines, problems))
    try:
        cfg = PipelineConfig.model_validate(data, context={"base_dir": path.absolute().parent})
    except ValidationError as exc:
        problems = plain_errors(exc.errors(), PipelineConfig)
        raise ConfigError(format_problems(path, lines, problems), hint=_HINT) from None
    problems = cross_check(cfg)
    if problems:
        raise ConfigError(format_problems(path, lines, problems), hint=_HINT)
    return cfg


_HINT = "see docs/configuration.md for every key and an example"


FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it: about 10x faster than the pure-Python one, which
every command paid for on each start (issue 18); errors are still reported by the latter."""


def _compose_and_load(text: str, loader_class: Any) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree (for line numbers) and the plain data built from it."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def parse_yaml(text: str, path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML into plain data and a map from key path to line number (1-based)."""
    try:
        try:
            node, data = _compose_and_load(text, FAST_LOADER)
        except yaml.YAMLError:  # the pure-Python parser's message, as it always was
            node, data = _compose_and_load(text, yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: invalid YAML: {problem}", hint="fix the syntax at that line") from None
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise ConfigError(f"{path}:{line}: (top level): the config must be a YAML mapping of keys "
                          "(pipeline, workspace, extractors, ...)")
    lines: dict[Loc, int] = {}
    duplicates: list[tuple[int, Loc, int]] = []
    if node is not None:
        try:
            _walk_lines(node, (), lines, duplicates, budget=[MAX_VALUES])
        except _TooLarge:
            raise ConfigError(f"{path}: the config expands to more than {MAX_VALUES:,} values (YAML aliases "
                              "nested in aliases: a few lines can stand for billions)",
                              hint="write the values out, or use aliases that do not refer to other aliases") from None
        except _AliasLoop as loop:
            raise ConfigError(f"{path}:{loop.line}: {format_loc(loop.loc) or '(top level)'}: a YAML alias "
                              "refers to the value that holds it (a loop)",
                              hint="an alias (*name) must point at a value outside itself") from None
    if duplicates:
        text = "\n".join(f"  {path}:{line}: {format_loc(loc)}: duplicate key (already set on line {first})"
                         for line, loc, first in duplicates)
        raise ConfigError(f"invalid config {path}:\n{text}",
                          hint="YAML would silently keep only the last one; remove the other")
    return data, lines


def duplicate_keys(text: str) -> list[tuple[int, str, int]]:
    """(line, key path, line it was first set on) of every key a YAML mapping repeats: YAML
    keeps the last one silently (for files besides the config, such as the overrides)."""
    return [(line, format_loc(loc), first) for line, loc, first in duplicate_key_locs(text)]


def duplicate_key_locs(text: str) -> list[tuple[int, Loc, int]]:
    """:func:`duplicate_keys` with each key path as its parts (to mask keys that may be PHI)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    dups: list[tuple[int, Loc, int]] = []
    if node is not None:
        try:
            _walk_lines(node, (), {}, dups)
        except _AliasLoop:
            return []  # the loader that built the data reports it
    return dups


MAX_VALUES = 200_000
"""The most values a config may expand to. Seven lines of aliases of aliases took 2.2 GB and
14 s before any check ran (every walk of the data expands them); a real config has hundreds."""


class _TooLarge(Exception):
    """The node tree, aliases expanded, holds more than :data:`MAX_VALUES` values."""


class _AliasLoop(Exception):
    """A node that contains itself through an alias (``a: &a [*a]``)."""

    def __init__(self, loc: Loc, line: int) -> None:
        super().__init__("alias loop")
        self.loc, self.line = loc, line


def _walk_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int], dups: list[tuple[int, Loc, int]],
                path: frozenset[int] = frozenset(), budget: list[int] | None = None) -> None:
    if id(node) in path:  # every walk of this data (expanding ${VARS}, validating) would recurse forever
        raise _AliasLoop(loc, node.start_mark.line + 1)
    if budget is not None:
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLarge
    path = path | {id(node)}
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            child = (*loc, str(key.value))
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                if key.value in seen:
                    dups.append((line, child, seen[key.value]))
                    continue
                seen[key.value] = line
            out[child] = line
            _walk_lines(value, child, out, dups, path, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_lines(item, (*loc, i), out, dups, path, budget)


def expand_vars(value: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: expand_vars(v, (*loc, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_vars(v, (*loc, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        got = os.environ.get(name)
        if got is None or (got == "" and default is not None):
            if default is None:
                problems.append((loc, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"))
                return ""
            return default
        return got

    return _VAR.sub(sub, value)


def format_problems(path: Path, lines: dict[Loc, int], problems: list[tuple[Loc, str]]) -> str:
    """One line per problem: FILE:LINE: key.path: message."""
    out = [f"invalid config {path}:"]
    for loc, msg in problems:
        line = _line_for(loc, lines)
        where = f"{path}:{line}" if line else str(path)
        out.append(f"  {where}: {format_loc(loc)}: {msg}")
    return "\n".join(out)


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        key = tuple(str(p) if not isinstance(p, int) else p for p in loc[:n])
        if key in lines:
            return lines[key]
    return None

