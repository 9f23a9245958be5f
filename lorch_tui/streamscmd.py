"""``lorchestra list streams EXTRACTOR [--reveal]``: the streams of an account's LATEST run.

Stream and field names come from the tap and may carry PHI (see :mod:`engine.names`), so
the listing shows declared names as they are and the rest as placeholders such as
``stream #2 (a1b2c3)``, the same labels every other face uses. ``--reveal`` prints the
real names, to this terminal only, like ``query`` prints documents: the one way a person
sees an undeclared name in order to declare it.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from engine.config import Extractor, PipelineConfig
from engine.config.load import LoadedConfig
from engine.errors import UsageError, damaged_latest, damaged_manifest
from engine.names import field_namer, schema_field_paths, stream_namer
from engine.ops.inspect import count
from engine.store.workspace import Workspace, check_not_a_file
from engine.vault.layout import list_runs, read_latest, read_manifest
from engine.vault.paths import manifest_paths
from lorch_tui.bigtable import clean

REVEAL_NOTE = ("note: --reveal prints stream and field names as the tap reported them; they may "
               "carry PHI (client names, birth dates). They go to this command's output only, never "
               "to a log; a file you redirect it to holds PHI (keep it in the workspace, or do not).")


def extractor_of(loaded: LoadedConfig, name: str | None) -> Extractor:
    """The extractor the command names (a usage error when missing or unknown)."""
    names = ", ".join(e.name for e in loaded.config.extractors)
    if not name:
        raise UsageError("`list streams` needs an extractor name: lorchestra list streams EXTRACTOR",
                         hint=f"extractors: {names}")
    ex = loaded.config.extractor(name)
    if ex is None:
        raise UsageError(f"no extractor named {name!r} in {loaded.path}", hint=f"extractors: {names}")
    return ex


def run_manifest(ws: Workspace, ex: Extractor) -> tuple[str | None, dict[str, Any]]:
    """(run folder, manifest) of the account's LATEST run, else its newest run, else (None, {})."""
    acct = ws.account_dir(ex.domain, ex.source, ex.account)
    try:
        latest = read_latest(acct)
    except (OSError, ValueError):  # damaged data, exit 1 and named as `status` names it
        raise damaged_latest(ex.name, acct / "LATEST.json") from None
    try:
        if latest is not None:
            rel = f"dt={latest['dt']}/run_id={latest['run_id']}"
        else:
            runs = list_runs(acct)
            if not runs:
                return None, {}
            rel = runs[0].rel
    except OSError:
        raise UsageError(f"the vault of {ex.name} cannot be read ({acct})",
                         hint="run `lorchestra verify` and `lorchestra validate`") from None
    try:
        return rel, read_manifest(acct / rel)
    except (OSError, ValueError, KeyError, AssertionError):
        raise damaged_manifest(ex.name, acct / rel / "manifest.json") from None


def _is_latest(ws: Workspace, ex: Extractor, rel: str) -> bool:
    """Whether ``rel`` is the run the account's LATEST names."""
    try:
        latest = read_latest(ws.account_dir(ex.domain, ex.source, ex.account))
    except (OSError, ValueError):
        return False
    return latest is not None and rel == f"dt={latest['dt']}/run_id={latest['run_id']}"


def stream_rows(cfg: PipelineConfig, ex: Extractor, ws: Workspace, reveal: bool) -> list[dict[str, Any]]:
    """One row per stream of the run: label, declared, mapping, records, fields."""
    _, manifest = run_manifest(ws, ex)
    streams: dict[str, Any] = manifest["streams"] if isinstance(manifest.get("streams"), dict) else {}
    namer = stream_namer(cfg, ex, ws, reveal=reveal, create_key=False)  # a reader: writes no key
    mappings = {m.stream: m.transform for m in cfg.stages.canonize.mappings if m.source == ex.source}
    rows: list[dict[str, Any]] = []
    for position, (name, label) in enumerate(namer.show_all(streams), start=1):
        info = streams[name] if isinstance(streams[name], dict) else {}
        versions = info["schemas"] if isinstance(info.get("schemas"), list) else []
        newest = versions[-1].get("schema") if versions and isinstance(versions[-1], dict) else None
        fields = field_namer(cfg, ex, name, ws, reveal=reveal, create_key=False)
        declared = schema_field_paths(newest)
        # the records' own paths too: a tap whose SCHEMA is only {"type": "object"} declares none
        seen = sorted((manifest_paths(info) or set()) - set(declared))
        rows.append({"position": position, "stream": label, "declared": name in namer.declared,
                     "mapping": mappings.get(name), "records": count(info.get("records")),
                     "schema_versions": len(versions),
                     "fields": [fields.show_path(p, i) for i, p in enumerate(declared + seen, 1)]})
    return rows


def list_streams(loaded: LoadedConfig, name: str | None, reveal: bool, as_json: bool) -> int:
    """Print the stream listing; 0."""
    from rich.table import Table

    ex = extractor_of(loaded, name)
    check_not_a_file(loaded.workspace)  # exit 2 naming it, not "no run yet"
    ws = Workspace(loaded.workspace)
    rel, manifest = run_manifest(ws, ex)
    rows = stream_rows(loaded.config, ex, ws, reveal)
    latest = rel is not None and _is_latest(ws, ex, rel)
    if reveal:
        print(REVEAL_NOTE, file=sys.stderr)
    if as_json:
        import orjson

        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console(highlight=False)
    if rel is None:
        console.print(f"{ex.name}: no vault run yet (run `lorchestra extract {ex.name}`)", markup=False)
        return 0
    title = f"{ex.name} streams in {rel}"
    if not latest:  # no LATEST yet: the newest run, which may have failed
        title += f" (no LATEST: the newest run, {clean(str(manifest.get('status') or 'status unknown'))})"
    table = Table(title=title)
    for col in ("#", "stream", "declared", "mapping", "records", "schemas", "fields"):
        table.add_column(col, overflow="fold", justify="right" if col in ("#", "records", "schemas") else "left")
    for r in rows:
        cells = (str(r["position"]), r["stream"], "yes" if r["declared"] else "no", r["mapping"] or "",
                 f"{r['records']:,}", str(r["schema_versions"]), ", ".join(r["fields"]))
        table.add_row(*(Text(clean(c)) for c in cells))  # names are data: no markup, no escape codes
    console.print(table, markup=False)
    if not reveal and any(not r["declared"] for r in rows):
        console.print(f"undeclared names are shown as placeholders: `lorchestra list streams {ex.name} "
                      f"--reveal` prints them (PHI); declare the expected ones under this extractor's "
                      f"`streams:` (or map them) to show them everywhere", markup=False)
    return 0
