"""Commands about the transform registry: list transforms and mappings, run golden samples.

`transform test` compiles each transform exactly as the canonize worker does and compares
its output on the golden samples with the expected files; the diff names keys only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from engine.canon.compiled import CompiledTransform, RecordRejected, TransformLimits
from engine.canon.registry import Registry, RegistryError
from engine.config import PipelineConfig
from engine.config.load import load
from engine.errors import ExitCode, UsageError
from engine.vault.numbers import inexact


def registry_for(cfg: PipelineConfig) -> Registry:
    """The registry the config points at (the bundled one by default)."""
    return Registry.load(cfg.stages.canonize.transforms_dir, cfg.stages.canonize.schemas_dir)


def transform_rows(cfg: PipelineConfig) -> list[dict[str, object]]:
    """One row per registered transform: which mappings use it, and its other versions.

    ``status`` is ``in use``, ``in use (newer: _v2)`` when a later version is registered but
    not mapped yet, ``unused``, or ``unused (older version)`` once a later one is mapped.
    """
    reg = registry_for(cfg)
    if not reg.transforms_dir.is_dir():
        raise UsageError(f"stages.canonize.transforms_dir {reg.transforms_dir} is not a folder (missing, or a file)",
                         hint="fix the path in the config, or create the folder (`lorchestra transform new`)")
    used: dict[str, list[str]] = {}
    for m in cfg.stages.canonize.mappings:
        used.setdefault(m.transform, []).append(f"{m.source}/{m.stream}")
    versions: dict[str, list[int]] = {}
    for t in reg.transforms.values():
        versions.setdefault(t.id.rsplit("_v", 1)[0], []).append(t.version)
    rows: list[dict[str, object]] = []
    for t in reg.transforms.values():
        base = t.id.rsplit("_v", 1)[0]
        newer = sorted(v for v in versions[base] if v > t.version)
        mapped_newer = any(f"{base}_v{v}" in used for v in newer)
        if t.id in used:
            status = f"in use (newer: _v{newer[-1]})" if newer else "in use"
        else:
            status = "unused (older version)" if mapped_newer else "unused"
        rows.append({"id": t.id, "input": f"{t.source}/{t.stream}", "output": t.kind, "schema": t.schema,
                     "samples": len(t.samples), "used_by": used.get(t.id, []),
                     "status": status})
    return rows


def mapping_rows(cfg: PipelineConfig) -> list[dict[str, object]]:
    """One row per mapping, with whether its transform exists."""
    reg = registry_for(cfg)
    return [{"source": m.source, "stream": m.stream, "transform": m.transform,
             "max_rejects": m.max_rejects,
             "found": m.transform in reg.transforms}
            for m in cfg.stages.canonize.mappings]


def diff_keys(got: Any, want: Any, path: str = "") -> list[str]:
    """Key paths where two JSON values differ (values are never printed: they may be PHI)."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: list[str] = []
        for k in sorted(set(got) | set(want)):
            out += diff_keys(got.get(k), want.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in diff_keys(g, w, f"{path}[{i}]")]
    return [] if got == want else [path or "(root)"]


def _sample_files(given: Path, expected: Path) -> tuple[Any, dict[str, Any]] | str:
    """A golden sample's input and expected output, or what is wrong with them (the file's
    path and why; never its content)."""
    parsed: list[Any] = []
    for path in (given, expected):
        try:
            parsed.append(orjson.loads(path.read_bytes()))
        except OSError as exc:
            return f"cannot read {path} ({exc.strerror or type(exc).__name__})"
        except orjson.JSONDecodeError as exc:
            return f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})"
    if not isinstance(parsed[1], dict):
        return f"{expected} is not a JSON object (the canonical record the input must give)"
    return parsed[0], parsed[1]


def cmd_transform_test(ns: argparse.Namespace) -> int:
    """`lorchestra transform test [ID]`."""
    cfg = load(getattr(ns, "config", None), getattr(ns, "workspace", None)).config
    reg = registry_for(cfg)
    console = Console(highlight=False)
    for problem in reg.problems:
        console.print(f"[red]registry problem:[/] {problem}")
    try:
        chosen = [reg.get(ns.id)] if ns.id else list(reg.transforms.values())
    except RegistryError as exc:
        raise UsageError(str(exc), hint="run `lorchestra list transforms`") from None
    failures = tested = 0
    untested: list[str] = []
    for t in chosen:
        try:
            compiled = CompiledTransform(reg, t, TransformLimits(cfg.stages.canonize.transform_timeout_ms,
                                                                 cfg.stages.canonize.transform_max_depth))
        except Exception as exc:  # noqa: BLE001 - a JSONata or schema error: its first line names the place
            failures += 1
            first = str(exc).splitlines()[0] if str(exc) else ""
            console.print(Text.assemble(("FAIL", "red"), f" {t.id}: does not compile ({type(exc).__name__}: {first}); "
                                        f"fix {t.path}"))
            continue
        if not t.samples:
            untested.append(t.id)
            console.print(f"[yellow]{t.id}: no golden samples[/]")
        for sample in t.samples:
            tested += 1
            name = sample.input.name
            loaded = _sample_files(sample.input, sample.expected)
            if isinstance(loaded, str):
                failures += 1
                console.print(Text.assemble(("FAIL", "red"), f" {t.id} {name}: {loaded}"))
                continue
            record, want = loaded
            envelope = {"source": want.get("source", t.source), "account": want.get("account", "golden")}
            try:
                if inexact(sample.input.read_bytes()):  # canonize rejects it: never approved rounded
                    raise RecordRejected("NUMBER_INEXACT", "a number in the record cannot be held exactly by a double")
                got = compiled.apply(record, envelope)
                diffs = diff_keys(got, want)
            except RecordRejected as exc:  # the reason names the field (a schema path)
                diffs = [f"rejected: {exc.code} ({exc.reason})"]
            if diffs:
                failures += 1
                console.print(f"[red]FAIL[/] {t.id} {name}: differs at {', '.join(diffs[:10])}")
            else:
                console.print(f"[green]ok[/]   {t.id} {name}")
    # never "all golden samples pass" when there were none: it said so of a registry whose only
    # transform had no samples (nothing failed, so exit 0, but nothing was tested either)
    missing = (f"; {len(untested)} transform(s) without golden samples were not tested "
               "(add samples: docs/transforms.md, 9.4)") if untested and tested else ""
    if failures:
        console.print(f"{failures} failed{missing}")
    elif reg.problems:  # the samples passed, the registry did not: never "all ... pass" and exit 1
        what = "the golden samples pass" if tested else "no golden samples found, nothing was tested"
        console.print(f"{what}; {len(reg.problems)} registry problem(s) above")
    elif not tested:
        which = (untested[0] if len(untested) == 1 else f"{len(untested)} transforms") + " without samples"
        console.print(f"[yellow]no golden samples found[/]: nothing was tested ({which}); add samples to "
                      "the meta's `samples:` (docs/transforms.md, 9.4)" if untested else
                      "[yellow]no golden samples found[/]: the registry has no transforms")
    else:
        console.print(f"all {tested} golden sample(s) pass{missing}")
    return int(ExitCode.TASK_FAILED if failures or reg.problems else ExitCode.OK)
