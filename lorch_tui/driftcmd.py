"""``lorchestra drift [EXTRACTOR] [--json] [--reveal]``: how the sources' fields changed.

Per stream of each account's LATEST run (with, for an incremental run, the runs back to the
last full one: what its canonical output is built from): fields that appeared and vanished
since the previous successful run (and its chain), and fields the mapped transform reads
that no record has (:mod:`engine.drift.compare`). Only
manifests are read. Names from the data are printed only when the config declares them
(:mod:`engine.names`); ``--reveal`` prints them all (PHI, to the terminal only).
Exit 0 whatever the drift (scripts read ``--json``); 2 for an unknown extractor.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape

from engine.canon.registry import Registry
from engine.config import Extractor, PipelineConfig
from engine.config.load import load
from engine.drift.compare import AccountDrift, StreamDrift, account_drift
from engine.errors import ExitCode, UsageError
from engine.names import Namer, field_namer, placeholder, stream_namer
from engine.store.workspace import Workspace, check_not_a_file
from engine.vault.paths import split_path
from lorch_tui.bigtable import clean

SHOW_AT_MOST = 20
PROBLEMS = {"NO_LATEST": "no LATEST run yet",
            "MANIFEST_INVALID": "LATEST or its manifest cannot be read (`lorchestra verify`)"}


@dataclass
class Shown:
    """How one extractor's names are shown (engine.names: declared names, else placeholders)."""

    streams: Namer
    fields: dict[str, Namer]

    def field(self, stream: str, path: str, position: int) -> str:
        """A field path: shown when every key in it is declared for the stream (backticked
        keys compared unquoted), else ``field #N (tag)``."""
        namer = self.fields[stream]
        if namer.reveal or all(seg in namer.declared for seg in split_path(path)):
            return path
        return placeholder("field", position, namer.tag(path))


def names_for(cfg: PipelineConfig, ws: Workspace, ex: Extractor, streams: list[str], reveal: bool) -> Shown:
    """The namers of one extractor: its streams, and each stream's fields."""
    return Shown(stream_namer(cfg, ex, ws, reveal, create_key=False),  # a reader: writes no key
                 {s: field_namer(cfg, ex, s, ws, reveal, create_key=False) for s in streams})


def stream_json(sd: StreamDrift, names: Shown, position: int) -> dict[str, Any]:
    """One stream's drift, names shown by the rule."""
    order = {p: i for i, p in enumerate(sorted(sd.current | (sd.previous or set()) | sd.reads), 1)}

    def show(paths: list[str]) -> list[str]:
        return [names.field(sd.stream, p, order[p]) for p in paths]

    return {"stream": names.streams.show(sd.stream, position), "transform": sd.transform, "known": sd.known,
            "fields": len(sd.current), "appeared": show(sd.appeared), "vanished": show(sd.vanished),
            "missing_reads": show(sd.missing_reads), "vanished_reads": show(sd.vanished_reads),
            "lost": show(sorted(sd.lost)) if sd.known and sd.judged_vanished else [],
            "dynamic_reads": sd.dynamic, "judged_vanished": sd.judged_vanished, "capped": sd.capped}


def account_json(d: AccountDrift, names: Shown) -> dict[str, Any]:
    """One account's drift as JSON."""
    return {"extractor": d.extractor, "latest_run": d.latest_run, "previous_run": d.previous_run,
            "incremental": d.incremental, "chain": d.chain, "previous_chain": d.previous_chain,
            "chain_broken": d.chain_broken, "mark": d.mark, "problem": d.problem,
            "streams": [stream_json(s, names, i) for i, s in enumerate(d.streams, 1)]}


def cmd_drift(ns: argparse.Namespace) -> int:
    """`lorchestra drift [EXTRACTOR] [--json] [--reveal]`."""
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    cfg = loaded.config
    if ns.extractor is not None and cfg.extractor(ns.extractor) is None:
        raise UsageError(f"no extractor named {ns.extractor!r} in {loaded.path}",
                         hint="run `lorchestra list extractors`")
    check_not_a_file(loaded.workspace)  # exit 2 naming it, not "no run yet"
    ws = Workspace(loaded.workspace)
    reg = Registry.load(cfg.stages.canonize.transforms_dir, cfg.stages.canonize.schemas_dir)
    chosen = [e for e in cfg.extractors if ns.extractor in (None, e.name)]
    report = []
    for ex in chosen:
        drift = account_drift(cfg, ws, ex, reg)
        names = names_for(cfg, ws, ex, [s.stream for s in drift.streams], ns.reveal)
        report.append(account_json(drift, names))
    if ns.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return int(ExitCode.OK)
    print_report(Console(highlight=False), report, ns.reveal)
    return int(ExitCode.OK)


def _listing(label: str, items: list[str], style: str) -> str:
    more = f", ... {len(items) - SHOW_AT_MOST} more" if len(items) > SHOW_AT_MOST else ""
    return f"      [{style}]{label} ({len(items)}):[/] " + escape(clean(", ".join(items[:SHOW_AT_MOST]))) + more


def print_report(console: Console, report: list[dict[str, Any]], reveal: bool) -> None:
    """The human-readable drift report."""
    for acct in report:
        head = f"[bold]{acct['extractor']}[/] {acct['mark']}"
        if acct["problem"]:
            console.print(f"{head}  [dim]{PROBLEMS.get(acct['problem'], acct['problem'])}[/]")
            continue
        against = acct["previous_run"] or "no earlier successful run"
        if len(acct["previous_chain"]) > 1:
            against += f" (incremental, on {len(acct['previous_chain']) - 1} earlier run(s))"
        console.print(f"{head}  LATEST {acct['latest_run']} vs {against}")
        if acct["incremental"]:
            console.print(f"  [dim]LATEST is incremental: compared with the {len(acct['chain'])} run(s) back to "
                          f"full run {acct['chain'][-1]} that its canonical output is built from; a field "
                          "vanishes when every changed record lost it[/]")
        if acct["chain_broken"]:
            console.print("  [yellow]a run of the incremental chain is missing or unreadable "
                          "(`lorchestra verify`): vanished fields are not judged[/]")
        for s in acct["streams"]:
            s = {**s, "stream": escape(clean(s["stream"]))}  # names from the data: never controls
            via = f" -> {s['transform']}" if s["transform"] else " [dim](not mapped)[/]"
            if not s["known"]:
                console.print(f"    {s['stream']}{via}: [dim]no field paths recorded (run predates them, "
                              "or no records)[/]")
                continue
            console.print(f"    {s['stream']}{via}: {s['fields']} field path(s)"
                          + (" [yellow](capped)[/]" if s["capped"] else ""))
            if s["appeared"]:
                console.print(_listing("appeared", s["appeared"], "green"))
            if s["vanished"]:
                console.print(_listing("vanished", s["vanished"], "yellow"))
            if s["vanished_reads"]:
                console.print(_listing("WARNING read by the transform but vanished", s["vanished_reads"], "bold red"))
            other = [p for p in s["missing_reads"] if p not in s["vanished_reads"]]
            lost = [p for p in other if p in s["lost"]]
            if lost:
                console.print(_listing("read by the transform, lost by every changed record", lost, "yellow"))
            other = [p for p in other if p not in s["lost"]]
            if other:
                console.print(_listing("read by the transform, in no record", other, "yellow"))
            if s["dynamic_reads"]:
                console.print("      [dim]the transform also reads names built at run time (not checked)[/]")
    if not reveal:
        console.print("[dim]names the config does not declare are shown as placeholders; "
                      "--reveal prints them (PHI: to this command's output only, never to a log)[/]")
