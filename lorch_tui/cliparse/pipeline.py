"""Parsers of the commands that run or describe the pipeline: extract, run, list, transform, config.

Only declarations: each command's function is a :class:`~lorch_tui.cliparse.base.Lazy` reference,
so building these parsers imports no command module (see the package docstring).
"""

from __future__ import annotations

import argparse
from typing import Any

from lorch_tui.argtypes import DEMO_HELP, positive
from lorch_tui.cliparse.base import Lazy, run_options

STAGE_CHOICES = ("extract", "canonize", "index", "project")
"""What ``--stage`` accepts (``engine.config.STAGES``; a test keeps them equal)."""
RUN_STAGES = ("extract", "canonize", "index", "project")
"""The stages ``run`` can run now, named in its help (``engine.run.plan.RUN_STAGES``; a test keeps them equal)."""
LIST_WHAT = ("extractors", "jobs", "loaders", "transforms", "mappings", "streams")
"""What ``list`` lists."""


def extract(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra extract NAME``."""
    ex = sub.add_parser("extract", parents=[common], help="run one extractor into the vault",
                        description="Run one extractor (tap) and write a vault run; LATEST moves on success.")
    ex.add_argument("name", metavar="NAME", help="the extractor name, or its account when only one "
                                                 "extractor has it (see `lorchestra list extractors`)")
    ex.add_argument("--target", metavar="LOADER",
                    help="pipe the tap into this loader (a Singer target from `loaders:`) instead of "
                         "the vault; the vault and LATEST are not touched")
    ex.add_argument("--demo", action="store_true", help=DEMO_HELP)
    run_options(ex)
    ex.set_defaults(func=Lazy("lorch_tui.runcmd:cmd_extract"))


def run(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra run``."""
    run = sub.add_parser("run", parents=[common], help="run the pipeline (or some stages / accounts)",
                         description="Run per-account chains of the pipeline's stages.")
    run.add_argument("--stage", action="append", choices=list(STAGE_CHOICES),
                     help=f"run only this stage (repeatable; available now: {', '.join(RUN_STAGES)}; "
                          "project needs a `clients` section)")
    run.add_argument("--account", action="append", metavar="NAME",
                     help="only extractors whose name or account matches (glob, repeatable)")
    run.add_argument("--job", metavar="NAME", help="only the extractors of this job")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit without writing")
    run.add_argument("--force", action="store_true",
                     help="rebuild canonical output, index rows and client charts even when their "
                          "inputs show nothing changed")
    run.add_argument("--demo", action="store_true", help=DEMO_HELP)
    run_options(run)
    run.set_defaults(func=Lazy("lorch_tui.runcmd:cmd_run"))


def listing(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra list WHAT``."""
    ls = sub.add_parser("list", parents=[common],
                        help="list extractors, jobs, loaders, transforms, mappings or an extractor's streams",
                        description="List what the config and the transform registry define, or with "
                                    "`list streams EXTRACTOR` the streams of that account's LATEST run "
                                    "(undeclared stream and field names as placeholders; --reveal shows them).")
    ls.add_argument("what", choices=list(LIST_WHAT), help="what to list")
    ls.add_argument("name", nargs="?", metavar="EXTRACTOR", help="for `streams`: the extractor")
    ls.add_argument("--reveal", action="store_true",
                    help="for `streams`: print real stream and field names, which may be PHI (printed, never logged)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=Lazy("lorch_tui.listcmd:cmd_list"))


def transform(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra transform test|run|new``."""
    tr = sub.add_parser("transform", parents=[common], help="work with JSONata transforms",
                        description="Commands for the transform registry.")
    trs = tr.add_subparsers(dest="transform_command", metavar="ACTION", required=True)
    tt = trs.add_parser("test", parents=[common], help="run transforms' golden samples",
                        description="Run each transform's golden samples and compare with the expected output.")
    tt.add_argument("id", nargs="?", metavar="ID", help="one transform id (default: all)")
    tt.set_defaults(func=Lazy("lorch_tui.canoncmd:cmd_transform_test"))
    _transform_run(trs, common)
    _transform_new(trs, common)


def _transform_run(trs: Any, common: argparse.ArgumentParser) -> None:
    tr = trs.add_parser(
        "run", parents=[common], help="run a transform on a record, JSON lines, or the vault",
        description="Apply one transform as the canonize stage does (envelope, schema validation) and "
                    "print the canonical records; rejects print their code and reason. Prints record "
                    "content: to the terminal only.",
        epilog="exit codes: 0 every record transformed, 1 some were rejected, 2 bad input or usage")
    tr.add_argument("id", metavar="ID", help="the transform id (see `lorchestra list transforms`)")
    tr.add_argument("file", nargs="?", metavar="FILE|-",
                    help="a JSON record or JSON lines (default and '-': standard input)")
    tr.add_argument("--envelope", metavar="source=S,account=A", default="",
                    help="the envelope to add (default: the transform's source, account 'cli')")
    tr.add_argument("--from-vault", metavar="EXTRACTOR",
                    help="run over the records of this extractor's LATEST run and print a summary")
    tr.add_argument("--limit", type=positive, metavar="N", help="with --from-vault: at most N records (1 or more)")
    tr.add_argument("--show", action="store_true",
                    help="with --from-vault: also print every output and reject reason (PHI)")
    tr.set_defaults(func=Lazy("lorch_tui.transformcmd:cmd_transform_run"))


def _transform_new(trs: Any, common: argparse.ArgumentParser) -> None:
    nw = trs.add_parser(
        "new", parents=[common], help="write the skeleton of a new transform",
        description="Write DOMAIN/NAME_v1.jsonata and .meta.yaml skeletons (every field of the kind's "
                    "schema) and a samples folder in the registry; print the mapping to add. Nothing "
                    "is registered in the config and nothing is copied from the vault.")
    nw.add_argument("name", metavar="DOMAIN/NAME", help="for example clinical/intake_form_to_contact")
    nw.add_argument("--source", required=True, metavar="S", help="the config source of the input records")
    nw.add_argument("--stream", required=True, metavar="T", help="the Singer stream of the input records")
    nw.add_argument("--kind", required=True, metavar="K", help="the canonical kind (a schema K.v1.json)")
    nw.add_argument("--dir", metavar="PATH",
                    help="the registry folder (default: the config's stages.canonize.transforms_dir)")
    nw.set_defaults(func=Lazy("lorch_tui.transformcmd:cmd_transform_new"))


def config(sub: Any, common: argparse.ArgumentParser) -> None:
    """``lorchestra config schema``."""
    p = sub.add_parser("config", parents=[common], help="work with the configuration file",
                       description="Commands about the pipeline configuration file.")
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    sc = actions.add_parser("schema", parents=[common], help="print the config's JSON Schema",
                            description="Print the JSON Schema (2020-12) of the pipeline config, "
                                        "for editor completion and checking of pipeline.yaml.")
    sc.set_defaults(func=Lazy("lorch_tui.configcmd:cmd_config_schema"))
