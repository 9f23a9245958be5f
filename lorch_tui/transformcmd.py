"""``lorchestra transform run`` and ``transform new``: writing transforms without guesswork.

``run ID [FILE|-]`` applies a transform exactly as the canonize worker does (compiled once,
envelope added, output validated) to one record or JSON lines and prints the canonical
records; rejects print their code and reason. ``--from-vault EXTRACTOR`` reads the LATEST
run's records of the transform's input stream instead (parts verified against the
manifest) and prints a summary; ``--show`` prints the outputs and reasons too. Record
content goes to the terminal only, because the user asked for it (like ``query``).

``new DOMAIN/NAME`` writes a ``.jsonata`` and ``.meta.yaml`` skeleton (every field of the
kind's schema) and the samples folder, registers nothing, and prints the mapping to add.
Nothing is ever copied from the vault: a sample in the config folder must be synthetic.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml
from rich.console import Console

from engine.canon.compiled import CompiledTransform, RecordRejected, TransformLimits
from engine.canon.registry import (
    DEFAULT_SCHEMAS,
    DEFAULT_TRANSFORMS,
    TRANSFORM_ID,
    Registry,
    RegistryError,
    Transform,
)
from engine.config import Extractor
from engine.config.load import load
from engine.errors import (
    ConfigError,
    ExitCode,
    LorchError,
    UsageError,
    damaged_latest,
    damaged_manifest,
)
from engine.store.workspace import Workspace
from engine.vault.deletions import is_deletion
from engine.vault.layout import read_latest, read_manifest
from engine.vault.numbers import approximate, exact_loads, inexact
from engine.vault.reader import PartCorrupt, StreamKeys, iter_part_records, verify_part
from lorch_tui.capped import run_capped

ENVELOPE_KEYS = ("source", "account")
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_envelope(text: str, t: Transform) -> dict[str, str]:
    """``source=S,account=A`` (either may be left out) into the envelope."""
    env = {"source": t.source, "account": "cli"}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ENVELOPE_KEYS or not value.strip():
            raise UsageError(f"--envelope: {item!r} is not source=... or account=...",
                             hint="for example --envelope source=gmail,account=acct1")
        env[key.strip()] = value.strip()
    return env


def read_input(data: bytes) -> Iterator[tuple[int, Any]]:
    """(line number, record): one JSON document, or JSON lines (blank lines skipped). A
    record holding a number a double cannot hold exactly is :data:`INEXACT` instead, as the
    canonize stage rejects it (``NUMBER_INEXACT``), never rounded here."""
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError:
        if inexact_text(data):  # one document with a number beyond 64 bits
            yield 1, INEXACT
            return
    else:
        yield 1, INEXACT if inexact(data) else record
        return
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not inexact_text(line):
                raise UsageError(f"input line {n} is not JSON",
                                 hint="give one JSON record, or one JSON record per line") from None
            record = INEXACT
        yield n, INEXACT if inexact(line) else record


INEXACT = object()
"""The record :func:`read_input` gives for one with a number a double cannot hold."""


def inexact_text(data: bytes) -> bool:
    """Whether ``data`` is JSON that orjson refuses only for a number's size (beyond 64 bits)."""
    try:
        if not inexact(data):
            return False
        approximate(data)  # the whole text is JSON
    except ValueError:
        return False
    return True


def _compiled(ns: argparse.Namespace) -> tuple[Any, Transform, CompiledTransform]:
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    cfg = loaded.config
    reg = Registry.load(cfg.stages.canonize.transforms_dir, cfg.stages.canonize.schemas_dir)
    try:
        t = reg.get(ns.id)
    except RegistryError as exc:
        raise UsageError(str(exc), hint="run `lorchestra list transforms`") from None
    canon = cfg.stages.canonize
    try:  # the config's limits, as the canonize stage applies them
        compiled = CompiledTransform(reg, t, TransformLimits(canon.transform_timeout_ms, canon.transform_max_depth))
    except Exception as exc:  # noqa: BLE001 - a JSONata or schema error names the file
        raise ConfigError(f"transform {t.id} does not compile ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})",
                          hint=f"fix {t.path} and run `lorchestra transform test {t.id}`") from None
    return loaded, t, compiled


def cmd_transform_run(ns: argparse.Namespace) -> int:
    """`lorchestra transform run ID [FILE|-] [--envelope ...] [--from-vault EX [--limit N] [--show]]`."""
    if ns.from_vault is None and (ns.limit is not None or ns.show):
        raise UsageError("--limit and --show go with --from-vault")
    if ns.from_vault is not None and ns.file is not None:
        raise UsageError("give either FILE or --from-vault, not both")
    code = run_capped(getattr(ns, "argv", None) or sys.argv[1:],
                      load(getattr(ns, "config", None), getattr(ns, "workspace", None))
                      .config.stages.canonize.memory_limit_mb)
    if code is not None:  # ran in a child under the canonize worker's memory cap
        return code
    try:
        return _transform_run(ns)
    except MemoryError:  # the cap, reached in Python itself (the parent says it in full)
        print("WORKER_OUT_OF_MEMORY", file=sys.stderr)
        return int(ExitCode.TASK_FAILED)


def _transform_run(ns: argparse.Namespace) -> int:
    loaded, t, compiled = _compiled(ns)
    if ns.from_vault is not None:
        ex = loaded.config.extractor(ns.from_vault)
        if ex is None:
            raise UsageError(f"no extractor named {ns.from_vault!r} in {loaded.path}",
                             hint="run `lorchestra list extractors`")
        envelope = parse_envelope(ns.envelope or f"source={ex.source},account={ex.account}", t)
        streams = _zones(loaded.config, t, ex.source)
        return run_from_vault(Workspace(loaded.workspace), ex, t, compiled, envelope, ns.limit, ns.show, streams)
    envelope = parse_envelope(ns.envelope, t)
    zones = set(_zones(loaded.config, t, envelope.get("source", t.source)).values())
    if len(zones) > 1:
        print(f"note: the mappings of {t.id} give different time zones per stream ({', '.join(sorted(map(str, zones)))}); "
              "none is bound here: `--from-vault` binds each stream's own", file=sys.stderr)
    elif zones and (zone := zones.pop()) is not None:
        compiled.bindings = {"timezone": zone}
    if ns.file in (None, "-"):
        if sys.stdin.isatty():
            print("reading a record from standard input (end with Ctrl-D)...", file=sys.stderr)
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(ns.file).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {ns.file} ({exc.strerror})") from None
    records = list(read_input(data))
    if not records:
        raise UsageError("no input record", hint="give one JSON record, or one per line")
    pretty = len(records) == 1
    rejected = deleted = 0
    for n, record in records:
        if is_deletion(record):  # as the canonize stage does: no document, no reject
            deleted += 1
            where = f"line {n}: " if not pretty else ""
            print(f"{where}a deletion marker: no document (the canonize stage skips it and removes "
                  "the record it names)", file=sys.stderr)
            continue
        try:
            if record is INEXACT:  # as the canonize stage does: JSONata holds doubles
                raise RecordRejected("NUMBER_INEXACT", "a number in the record cannot be held exactly by a double")
            if not isinstance(record, dict):  # the vault refuses such a RECORD (TAP_MESSAGE_INVALID)
                raise RecordRejected("NOT_A_RECORD", "the input is not a JSON object, as every Singer record is")
            out = compiled.apply(record, envelope)
        except RecordRejected as exc:
            rejected += 1
            where = f"line {n}: " if not pretty else ""
            print(f"{where}rejected {exc.code}: {exc.reason}", file=sys.stderr)
            continue
        opts = orjson.OPT_SORT_KEYS | (orjson.OPT_INDENT_2 if pretty else 0)
        sys.stdout.write(orjson.dumps(out, option=opts).decode() + "\n")
    if not pretty:
        gone = f", {deleted} deletion marker(s) skipped" if deleted else ""
        print(f"{len(records) - rejected - deleted} transformed, {rejected} rejected{gone}", file=sys.stderr)
    return int(ExitCode.TASK_FAILED if rejected else ExitCode.OK)


def _zones(cfg: Any, t: Transform, source: str) -> dict[str, str | None]:
    """Stream -> the mapping's ``timezone`` (bound as ``$timezone`` while that stream's records
    are transformed, as the canonize stage binds it per stream), for the streams the config
    maps to this transform for ``source``; the meta's input stream, no zone, when none does.
    A preview ignored the zone and showed other times than canonize wrote."""
    maps = [m for m in cfg.stages.canonize.mappings if m.transform == t.id and m.source == source]
    return {m.stream: m.timezone for m in maps} or {t.stream: None}


def vault_records(ws: Workspace, ex: Extractor, stream: str) -> Iterator[tuple[bool, Any]]:
    """(exact, record) for one stream of the extractor's LATEST run, parts verified first and
    read as the canonize stage reads them; ``exact`` is False (and the record parsed without
    rounding) when a number in it would not survive a double."""
    account_dir = ws.account_dir(ex.domain, ex.source, ex.account)
    try:
        latest = read_latest(account_dir)
    except (OSError, ValueError):
        raise damaged_latest(ex.name, account_dir / "LATEST.json") from None
    if latest is None:
        raise UsageError(f"extractor {ex.name} has no LATEST run yet",
                         hint=f"run `lorchestra extract {ex.name}` first")
    run_dir = account_dir / f"dt={latest['dt']}" / f"run_id={latest['run_id']}"
    try:
        manifest = read_manifest(run_dir)
        keys = StreamKeys(manifest)
    except (OSError, ValueError, AssertionError):
        raise damaged_manifest(ex.name, run_dir / "manifest.json") from None
    for part in manifest.get("parts") or []:
        if int((part.get("streams") or {}).get(stream, 0)) == 0:
            continue
        problem = verify_part(run_dir, part)
        if problem is not None:
            raise LorchError(f"{run_dir}/{part.get('file')}: {problem}", exit_code=ExitCode.TASK_FAILED,
                             hint="run `lorchestra verify` (damaged data: exit 1, as verify says)")
        try:
            for rec in iter_part_records(run_dir / str(part["file"]), keys):
                if rec.stream == stream:
                    exact = not inexact(rec.record)
                    yield exact, (orjson.loads(rec.record) if exact else exact_loads(rec.record))
        except (zlib.error, EOFError, orjson.JSONDecodeError, PartCorrupt, ValueError):
            raise LorchError(f"{run_dir}/{part.get('file')}: PART_CORRUPT", exit_code=ExitCode.TASK_FAILED,
                             hint="run `lorchestra verify` (damaged data: exit 1, as verify says)") from None


def run_from_vault(ws: Workspace, ex: Extractor, t: Transform, compiled: CompiledTransform,
                   envelope: dict[str, str], limit: int | None, show: bool,
                   streams: dict[str, str | None] | None = None) -> int:
    """Transform the LATEST run's records of the streams the config maps to the transform
    (its meta's input stream when none); print a summary."""
    err = Console(stderr=True, highlight=False)
    if ex.source != t.source:
        err.print(f"[yellow]note:[/] {t.id} is written for source {t.source}; "
                  f"{ex.name} is source {ex.source}")
    records = rejected = deleted = 0
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    zones = streams or {t.stream: None}

    def each() -> Iterator[tuple[bool, Any]]:
        for stream, zone in zones.items():
            compiled.bindings = {"timezone": zone} if zone is not None else {}
            yield from vault_records(ws, ex, stream)
    for exact, record in each():
        if limit is not None and records >= limit:
            break
        records += 1
        if is_deletion(record):
            deleted += 1
            continue
        try:
            if not exact:  # as the canonize stage does: JSONata holds doubles
                raise RecordRejected("NUMBER_INEXACT", "a number in the record cannot be held exactly by a double")
            out = compiled.apply(record, envelope)
        except RecordRejected as exc:
            rejected += 1
            codes[exc.code] += 1
            if show:
                print(f"record {records}: rejected {exc.code}: {exc.reason}", file=sys.stderr)
            continue
        kinds[str(out.get("kind"))] += 1
        if show:
            sys.stdout.write(orjson.dumps(out, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    summary = Console(stderr=show, highlight=False)
    summary.print(f"{t.id} over {ex.name} (LATEST, stream(s) {', '.join(zones)}): "
                  f"{records} record(s), {records - rejected - deleted} transformed, {rejected} rejected")
    if deleted:
        summary.print(f"  deletion markers skipped: {deleted} (no documents: the canonize stage removes "
                      "the records they name)")
    for code, n in sorted(codes.items()):
        summary.print(f"  rejected {code}: {n}")
    for kind, n in sorted(kinds.items()):
        summary.print(f"  kind {kind}: {n}")
    if records == 0:
        summary.print("  no record of the transform's input stream in LATEST "
                      "(`lorchestra drift` shows the run's streams)")
    elif rejected and not show:
        summary.print(f"  reasons: `lorchestra transform run {t.id} --from-vault {ex.name} --show` (prints PHI)")
    return int(ExitCode.TASK_FAILED if rejected else ExitCode.OK)


def skeleton_expression(tid: str, source: str, stream: str, kind: str, schema: dict[str, Any]) -> str:
    """A JSONata skeleton: every field of the kind's schema (the envelope is added later)."""
    props = [p for p in (schema.get("properties") or {}) if p not in ("kind", "source", "account")]
    lines = [f'    "{p}": null{"," if i < len(props) - 1 else ""}' for i, p in enumerate(props)]
    return (
        "/*\n"
        f"  {tid}: {source} / {stream.replace('*/', '* /')} -> canonical `{kind}`.\n\n"
        "  Fill each field from the source record (paths are relative to the record, e.g.\n"
        "  `id`, `payload.headers`); the stage adds kind, source and account and validates the\n"
        "  result against the schema. Every field is present; a value the record lacks is null.\n"
        "  Try it: lorchestra transform run ID sample.json, lorchestra transform run ID --from-vault EXTRACTOR\n"
        "*/\n"
        "(\n  {\n" + "\n".join(lines) + "\n  }\n)\n"
    )


def skeleton_meta(tid: str, source: str, stream: str, kind: str) -> str:
    """The meta file of a new transform (no samples yet; see docs/transforms.md)."""
    meta = {"id": tid, "version": int(tid.rsplit("_v", 1)[1]), "input": {"source": source, "stream": stream},
            "output": {"kind": kind, "schema": f"{kind}.v1"},
            "description": f"{source} records of one stream to the canonical {kind}.", "samples": []}
    name = tid.split("/")[1]
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + (
        "# Golden samples are SYNTHETIC records written by hand (never copied from the vault: the\n"
        "# config folder is not a PHI place). Add them like this:\n"
        f"#  - input: samples/{name}__basic.json\n"
        f"#    expected: samples/{name}__basic.expected.json\n"
    )


def mapping_line(source: str, stream: str, tid: str) -> str:
    """The mapping to add, as one YAML flow mapping (quoted where YAML needs it)."""
    flow = yaml.safe_dump({"source": source, "stream": stream, "transform": tid}, default_flow_style=True,
                          sort_keys=False, allow_unicode=True, width=1000)
    return flow.strip()


def config_relative(folder: Path, config: Path) -> str:
    """``folder`` as the config should name it: relative to the config file's folder (what a
    relative path in the config means, not the current folder: "point transforms_dir at mytx"
    named the wrong folder when run from elsewhere), absolute when they share nothing but
    ``/``; quoted as YAML needs."""
    target = Path(os.path.abspath(folder))
    base = Path(os.path.abspath(config)).parent
    common = os.path.commonpath([target, base])
    value = str(target) if common == os.sep else os.path.relpath(target, base)
    return yaml.safe_dump(value, allow_unicode=True, width=1000).strip().removesuffix("\n...").strip()


def cmd_transform_new(ns: argparse.Namespace) -> int:
    """`lorchestra transform new DOMAIN/NAME --source S --stream T --kind K [--dir PATH]`."""
    loaded = load(getattr(ns, "config", None), getattr(ns, "workspace", None))
    canon = loaded.config.stages.canonize
    tid = ns.name if re.search(r"_v\d+$", ns.name) else f"{ns.name}_v1"
    if not TRANSFORM_ID.match(tid):
        raise UsageError(f"{ns.name!r} is not DOMAIN/NAME in lower case [a-z0-9_]",
                         hint="for example clinical/intake_form_to_contact (the id gets _v1)")
    if not _SAFE.match(ns.source):
        raise UsageError(f"--source {ns.source!r}: use letters, digits, '_', '-' and '.' (an extractor's source)")
    if not ns.stream or not ns.stream.isprintable():
        raise UsageError("--stream: give the Singer stream name (printable characters)")
    if not _KIND.match(ns.kind):
        raise UsageError(f"--kind {ns.kind!r}: a kind is lower case [a-z0-9_]")
    root = Path(ns.dir) if ns.dir else canon.transforms_dir
    if root is None:
        raise UsageError("the config has no stages.canonize.transforms_dir (it uses the bundled registry)",
                         hint="set stages.canonize.transforms_dir to a folder of your own, or pass --dir PATH")
    bundled = DEFAULT_TRANSFORMS.resolve()
    if root.resolve() == bundled or bundled in root.resolve().parents:
        raise UsageError(f"{root} is the bundled registry, which the project's updates replace: a transform "
                         "written there would be lost (and would change what every install runs)",
                         hint="write it in a folder of your own: --dir PATH, and point "
                              "stages.canonize.transforms_dir at it")
    schemas = canon.schemas_dir or DEFAULT_SCHEMAS
    schema_file = schemas / f"{ns.kind}.v1.json"
    if not schema_file.is_file():
        kinds = ", ".join(sorted(p.name.removesuffix(".v1.json") for p in schemas.glob("*.v1.json")))
        raise UsageError(f"no schema {schema_file.name} in {schemas}",
                         hint=f"kinds: {kinds or 'none'}; a new kind needs its schema first (docs/transforms.md)")
    domain, name = tid.split("/")
    expr_path = root / domain / f"{name}.jsonata"
    meta_path = root / domain / f"{name}.meta.yaml"
    for path in (expr_path, meta_path):
        if path.exists():
            raise UsageError(f"{path} already exists", hint="choose another name, or bump the version (_v2)")
    schema = orjson.loads(schema_file.read_bytes())
    (root / domain / "samples").mkdir(parents=True, exist_ok=True)
    expr_path.write_text(skeleton_expression(tid, ns.source, ns.stream, ns.kind, schema), encoding="utf-8")
    meta_path.write_text(skeleton_meta(tid, ns.source, ns.stream, ns.kind), encoding="utf-8")
    out = Console(highlight=False)
    out.print(f"wrote {expr_path}\nwrote {meta_path}\nsamples go in {root / domain / 'samples'} "
              "(synthetic records only; see docs/transforms.md)")
    out.print("\nNothing is registered yet. To canonize the stream, add this mapping to the config "
              f"({loaded.path}):\n", markup=False)
    mapping = f"      - {mapping_line(ns.source, ns.stream, tid)}"
    out.print(f"  stages:\n    canonize:\n      mappings:\n{mapping}", markup=False)
    if ns.dir and (canon.transforms_dir is None or Path(ns.dir).resolve() != canon.transforms_dir.resolve()):
        out.print(f"\nand point stages.canonize.transforms_dir at {config_relative(root, loaded.path)}"
                  " (a relative transforms_dir is the config file's folder's)", markup=False)
    out.print("\nthen: lorchestra transform run " + tid + " --from-vault EXTRACTOR, add a sample, "
              "lorchestra transform test " + tid, markup=False)
    return int(ExitCode.OK)
