"""``lorchestra list extractors|jobs|loaders|transforms|mappings|streams EXTRACTOR``.

Imported only when ``list`` runs (see :mod:`lorch_tui.cliparse`); the transform registry
and the vault reader are imported only for the kinds of listing that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from engine.config import PipelineConfig
from engine.config.load import load
from engine.errors import UsageError


def cmd_list(ns: argparse.Namespace) -> int:
    """`lorchestra list extractors|jobs|loaders|transforms|mappings|streams EXTRACTOR`."""
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    if ns.what == "streams":
        from lorch_tui.streamscmd import list_streams

        return list_streams(loaded, ns.name, ns.reveal, ns.json)
    if ns.name is not None or ns.reveal:
        raise UsageError(f"`list {ns.what}` takes no EXTRACTOR and no --reveal (only `list streams` does)")
    rows = _rows(loaded.config, ns.what)
    if ns.json:
        import orjson

        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _print_table(rows)
    return 0


def _rows(cfg: PipelineConfig, what: str) -> list[dict[str, object]]:
    """The rows of one kind of listing (PHI-free: names and commands from the config)."""
    from engine.stages.taps import describe, describe_loader

    if what == "extractors":
        return [{"name": e.name, "kind": e.kind, "domain": e.domain, "source": e.source,
                 "account": e.account, "command": describe(e)} for e in cfg.extractors]
    if what == "jobs":
        return [{"job": j, "extractors": len(m), "kinds": _kinds(cfg, m), "members": list(m),
                 "commands": _commands(cfg, m), "default": cfg.stages.extract.job == j}
                for j, m in cfg.jobs.items()]
    if what == "loaders":
        return [{"name": lo.name, "command": describe_loader(lo)} for lo in cfg.loaders]
    if what == "transforms":
        from lorch_tui.canoncmd import transform_rows

        return transform_rows(cfg)
    from lorch_tui.canoncmd import mapping_rows

    return mapping_rows(cfg)


def _print_table(typed: list[dict[str, object]]) -> None:
    """A table as wide as the terminal; columns that do not fit are named below it."""
    from rich.console import Console
    from rich.table import Table

    from lorch_tui.tables import add_name_column, add_other_column, fit_keys, is_name, say_left_out

    rows = [{k: shown(k, v) for k, v in r.items()} for r in typed]
    console = Console(highlight=False)
    table = Table()
    kept, dropped = fit_keys(rows, console.width) if rows else (["(none)"], [])
    for key in kept:
        if is_name(key):  # names stay whole; the other columns wrap, or are dropped, first
            add_name_column(table, key, [r[key] for r in rows])
        else:
            add_other_column(table, key, [r[key] for r in rows])
    for row in rows:
        table.add_row(*(row[k] for k in kept))
    console.print(table)
    say_left_out(console, dropped)


def _kinds(cfg: PipelineConfig, members: list[str]) -> dict[str, int]:
    """``{"demo": 3, "singer": 1}``: the kinds of a job's extractors."""
    kinds = Counter(ex.kind for name in members if (ex := cfg.extractor(name)) is not None)
    return dict(sorted(kinds.items()))


def _commands(cfg: PipelineConfig, members: list[str]) -> dict[str, dict[str, str]]:
    """Each member's kind and command, as ``list extractors`` shows them."""
    from engine.stages.taps import describe

    return {name: {"kind": ex.kind, "command": describe(ex)}
            for name in members if (ex := cfg.extractor(name)) is not None}


def shown(key: str, value: object) -> str:
    """A typed value of a row (``--json`` keeps the types) as the table shows it."""
    if isinstance(value, bool):
        return ("yes" if value else "MISSING") if key == "found" else ("yes" if value else "")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if key == "commands" and isinstance(value, dict):  # a job's members, one per line
        return "\n".join(f"{name}: {c['kind']} · {c['command']}" for name, c in value.items())
    if isinstance(value, dict):  # a job's kinds
        return ", ".join(f"{k} x{n}" for k, n in value.items())
    return str(value)
