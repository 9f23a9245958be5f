"""The checks behind ``lorchestra validate``: will a run work, and is the workspace private?

A run that fails at 2 a.m. because a tap is not installed, a transform does not compile or
a folder is world-readable is a run that could have been refused at setup time. Each check
returns :class:`Check` items (ok, warn or fail; a failure is either a configuration problem,
exit 2, or a permission problem, exit 4) and never writes; the walk of the workspace's
modes and the fixer that tightens them are in :mod:`engine.ops.permissions`. Messages hold
config identifiers and paths, never file content.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

from engine.check import Check, Kind, Status
from engine.config import Extractor, PipelineConfig
from engine.store.workspace import Workspace
from engine.vault.layout import read_latest, read_manifest

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def check_config_secrets(cfg: PipelineConfig, path: Path) -> list[Check]:
    """A warning when the config holds `env` values (tokens) and others can read the file."""
    holders = [ex.name for ex in cfg.extractors if ex.env] + [lo.name for lo in cfg.loaders if lo.env]
    try:
        loose = bool(path.stat().st_mode & 0o077)
    except OSError:
        return []
    if not holders or not loose:
        return []
    return [Check("config", "env", "warn", f"{path} holds `env` values ({', '.join(holders[:3])}"
                  f"{', ...' if len(holders) > 3 else ''}: tokens, often) and is readable by others: "
                  f"chmod 600 it, or keep the secrets in the tap's own config file")]


def check_extractors(cfg: PipelineConfig) -> list[Check]:
    """Each extractor's executable (or Meltano project) can be found."""
    return [_check_extractor(ex) for ex in cfg.extractors]


def _executable(name: str) -> str | None:
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


def _check_extractor(ex: Extractor) -> Check:
    def c(status: Status, msg: str) -> Check:
        return Check("extractors", ex.name, status, msg)

    if ex.catalog is not None and not ex.catalog.is_file():
        return c("fail", f"the catalog file {ex.catalog} does not exist")
    if ex.kind == "demo":
        assert ex.demo is not None
        return c("ok", f"bundled demo tap {ex.demo.tap}")
    if ex.kind == "meltano":
        assert ex.meltano is not None
        project = ex.meltano.project
        if not (project / "meltano.yml").is_file():
            return c("fail", f"no meltano.yml in the Meltano project folder {project}")
        if _executable(ex.meltano.executable) is None:
            return c("fail", f"the meltano command {ex.meltano.executable!r} is not found on PATH")
        return c("ok", f"meltano project {project}, plugin {ex.meltano.plugin}")
    assert ex.command
    found = _executable(ex.command[0])
    if found is None:
        prog = ex.command[0]
        if os.sep in prog and os.path.isfile(prog):
            return c("fail", f"the tap command {prog!r} is a file without execute permission: "
                             f"`chmod u+x {prog}`, or run it through its interpreter "
                             f"(`command: [python3, {prog}]`)")
        return c("fail", f"the tap command {prog!r} is not found "
                         f"{'(no such file)' if os.sep in prog else 'on PATH'}")
    if ex.config is not None:
        if not ex.config.is_file():
            return c("fail", f"the tap config file {ex.config} does not exist")
        if ex.config.stat().st_mode & 0o077:
            return c("warn", f"the tap config file {ex.config} (it may hold credentials) is readable "
                             f"by others: chmod 600 it")
    return c("ok", f"tap {found}")


def check_transforms(cfg: PipelineConfig) -> list[Check]:
    """The registry loads cleanly; every mapping's transform is present and compiles."""
    from engine.canon.compiled import compile_expression
    from engine.canon.registry import Registry

    canon = cfg.stages.canonize
    reg = Registry.load(canon.transforms_dir, canon.schemas_dir)
    out = [Check("transforms", "registry", "fail", p) for p in reg.problems]
    sources = {ex.source for ex in cfg.extractors}
    for m in canon.mappings:
        subject = f"{m.source}/{m.stream}"
        if m.source not in sources:
            # a warning, not an error: one mapping list may serve several configs
            out.append(Check("transforms", subject, "warn",
                             f"mapping source {m.source!r} matches no extractor's source "
                             f"({', '.join(sorted(sources))})"))
            continue
        t = reg.transforms.get(m.transform)
        if t is None:
            out.append(Check("transforms", subject, "fail",
                             f"transform {m.transform!r} is not in the registry {reg.transforms_dir}"))
            continue
        try:
            compile_expression(t.expression)
        except Exception as exc:  # the engine raises ValueError with a JSONata code
            out.append(Check("transforms", subject, "fail",
                             f"transform {m.transform} does not compile: {_first_line(exc)}"))
            continue
        if (t.source, t.stream) != (m.source, m.stream):
            out.append(Check("transforms", subject, "warn",
                             f"transform {m.transform} is written for {t.source}/{t.stream}"))
            continue
        out.append(Check("transforms", subject, "ok", f"{m.transform} compiles"))
    if not canon.mappings:
        out.append(Check("transforms", "mappings", "warn", "no mappings: canonize will produce nothing"))
    return out


LIMIT_TEXT = {
    "TRANSFORM_TIMEOUT": "ran past transform_timeout_ms",
    "TRANSFORM_TOO_DEEP": "recursed past transform_max_depth",
    "WORKER_OUT_OF_MEMORY": "allocated past memory_limit_mb",
    "WORKER_CRASHED": "crashed its probe process",
}


def check_transform_limits(cfg: PipelineConfig) -> list[Check]:
    """Every mapped transform evaluated on its samples (and an empty record) under the
    canonize stage's limits, in a capped child process; a breach is a configuration failure."""
    from engine.canon.probe import probe_transforms
    from engine.canon.registry import Registry

    canon = cfg.stages.canonize
    reg = Registry.load(canon.transforms_dir, canon.schemas_dir)
    sources = {ex.source for ex in cfg.extractors}
    ids = sorted({m.transform for m in canon.mappings if m.source in sources and m.transform in reg.transforms})
    if not ids:
        return []
    found = probe_transforms(cfg, ids)
    out: list[Check] = []
    for tid in ids:
        code = found.get(tid)
        if code:
            out.append(Check("limits", tid, "fail",
                             f"{code}: the transform {LIMIT_TEXT.get(code, 'failed')} on its samples "
                             f"(timeout {canon.transform_timeout_ms} ms, depth {canon.transform_max_depth}, "
                             f"memory {canon.memory_limit_mb} MiB); see docs/operations.md"))
        else:
            samples = len(reg.transforms[tid].samples)
            out.append(Check("limits", tid, "ok", f"{samples} sample(s) and an empty record within the limits"))
        bad = [s for s in reg.transforms[tid].samples if not (_json_file(s.input) and _json_file(s.expected))]
        if bad:
            out.append(Check("transforms", tid, "fail",
                             f"{len(bad)} golden sample(s) missing or not valid JSON (first: {bad[0].input.name}); "
                             f"`lorchestra transform test {tid}` names each file"))
    return out


def _json_file(path: Path) -> bool:
    """Whether ``path`` reads as JSON (a golden sample file)."""
    try:
        orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else type(exc).__name__)


def check_schemas(cfg: PipelineConfig) -> list[Check]:
    """Every schema file is valid JSON Schema 2020-12."""
    import jsonschema_rs

    from engine.canon.registry import DEFAULT_SCHEMAS

    folder = cfg.stages.canonize.schemas_dir or DEFAULT_SCHEMAS
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return [Check("schemas", str(folder), "fail", "no schema files (*.json) in this folder")]
    out: list[Check] = []
    for path in files:
        try:
            doc: Any = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            out.append(Check("schemas", path.name, "fail", f"{path} is not readable JSON"))
            continue
        if not isinstance(doc, dict):
            out.append(Check("schemas", path.name, "fail", "a schema must be a JSON object"))
            continue
        if doc.get("$schema") not in (None, SCHEMA_DIALECT):
            out.append(Check("schemas", path.name, "fail", f"$schema must be {SCHEMA_DIALECT}"))
            continue
        try:
            jsonschema_rs.meta.validate(doc)
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
            out.append(Check("schemas", path.name, "fail", f"not a valid schema: {_first_line(exc)}"))
            continue
        note = "" if "$schema" in doc else " (no $schema: read as 2020-12)"
        out.append(Check("schemas", path.name, "ok" if not note else "warn", f"valid JSON Schema 2020-12{note}"))
    return out


def check_streams(cfg: PipelineConfig, ws: Workspace) -> list[Check]:
    """Streams in each account's LATEST run that no mapping covers (warnings).

    Stream names come from the tap and may carry PHI: an undeclared one is shown as a
    placeholder (:mod:`engine.names`), and the message says how to declare it.
    """
    from engine.names import stream_namer

    mapped = {(m.source, m.stream) for m in cfg.stages.canonize.mappings}
    out: list[Check] = []
    seen: dict[str, set[str]] = {}  # source -> the streams its accounts' LATEST runs (and chains) hold
    unknown: set[str] = set()  # sources with an account not extracted yet (or unreadable)
    for ex in cfg.extractors:
        acct = ws.account_dir(ex.domain, ex.source, ex.account)
        try:
            latest = read_latest(acct)
            if latest is None:
                unknown.add(ex.source)  # not extracted yet: what it holds cannot be told
                continue
            run_dir = acct / f"dt={latest['dt']}" / f"run_id={latest['run_id']}"
            manifest = read_manifest(run_dir)
        except (OSError, ValueError, KeyError, AssertionError):
            unknown.add(ex.source)
            out.append(Check("streams", ex.name, "warn", "LATEST or its manifest cannot be read"))
            continue
        shown = stream_namer(cfg, ex, ws, create_key=False).show_all(manifest.get("streams") or {})
        seen.setdefault(ex.source, set()).update(_chain_streams(acct, run_dir, manifest))
        unmapped = [label for name, label in shown if (ex.source, name) not in mapped]
        hidden = sum(1 for name, label in shown if label != name)
        if unmapped:
            out.append(Check("streams", ex.name, "warn",
                             f"streams without a mapping (not canonized): {', '.join(unmapped)}"))
        else:
            out.append(Check("streams", ex.name, "ok", f"all {len(shown)} stream(s) mapped"))
        absent = sorted(set(ex.streams) - {name for name, _ in shown})
        if absent:
            out.append(Check("streams", ex.name, "warn",
                             f"declared stream(s) not in the LATEST run: {', '.join(absent)} "
                             f"(renamed or no longer emitted? compare with `lorchestra list streams {ex.name}`)"))
        if hidden:
            out.append(Check("streams", ex.name, "warn",
                             f"{hidden} stream name(s) are not declared, so they are shown as "
                             f"placeholders (a stream name may carry PHI): see them with `lorchestra "
                             f"list streams {ex.name} --reveal`, then add the expected ones to this "
                             f"extractor's `streams:` list (or map them under stages.canonize.mappings)"))
    for m in cfg.stages.canonize.mappings:  # a typo in a mapping's stream maps nothing
        if m.source in seen and m.source not in unknown and m.stream not in seen[m.source]:
            out.append(Check("mappings", f"{m.source}/{m.stream}", "warn",
                             f"no LATEST run of source {m.source} (nor the runs it builds on) holds stream "
                             f"{m.stream!r}: a typo? (`lorchestra list streams EXTRACTOR` names theirs; an "
                             f"account with no mapped stream at all is refused, NOTHING_MAPPED, but one "
                             f"of two mapped streams misspelled only loses its documents)"))
    return out


def _chain_streams(acct: Path, run_dir: Path, manifest: dict[str, object]) -> set[str]:
    """The streams of LATEST's run and of every run of its incremental chain (an incremental
    run leaves out a stream with nothing new)."""
    from engine.vault.chain import ChainBroken, ChainRun, incremental_chain

    try:
        chain = incremental_chain(acct, ChainRun(run_dir, dict(manifest)))
    except ChainBroken:
        chain = [ChainRun(run_dir, dict(manifest))]
    return {str(s) for r in chain for s in (r.manifest.get("streams") or {})}


def check_output_dirs(ws: Workspace) -> list[Check]:
    """The workspace and its output folders exist and are writable, or can be created."""
    out: list[Check] = []
    for d in (ws.root, ws.vault, ws.canonical, ws.vector_store, ws.state, ws.logs):
        name = str(d.relative_to(ws.root)) if d != ws.root else "workspace"
        if d.exists():
            ok = d.is_dir() and os.access(d, os.W_OK | os.X_OK)
            out.append(Check("workspace", name, "ok" if ok else "fail",
                             f"{d} is writable" if ok else f"{d} is not a writable folder"))
            continue
        parent = d.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        ok = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        out.append(Check("workspace", name, "ok" if ok else "fail",
                         f"{d} will be created (0700)" if ok else f"{d} cannot be created: {parent} is not writable"))
    repo = git_work_tree(ws.root)
    ignored = _git_ignored(repo, ws.root) if repo is not None else None
    if repo is not None and not ignored:  # `git add -A` there commits the PHI
        out.append(Check("workspace", "git", "warn",
                         f"{ws.root} is inside the git work tree {repo}: `git add -A` would commit its PHI; "
                         "set `workspace` to a folder outside any checkout (e.g. ~/phi-data), or at least "
                         "list it in .gitignore" + (" (git is not on PATH, so whether it is ignored "
                                                    "could not be asked)" if ignored is None else "")))
    return out


def _git_ignored(repo: Path, path: Path) -> bool | None:
    """Whether git ignores ``path`` in ``repo`` (None when git is not there to ask)."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run([git, "-C", str(repo), "check-ignore", "-q", f"{path.absolute()}/"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def git_work_tree(path: Path) -> Path | None:
    """The git work tree ``path`` lies in (a folder above it holding ``.git``), or None."""
    here = path.absolute()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def exit_kind(checks: list[Check]) -> Kind | None:
    """Which exit code the checks call for: permission (4) over config (2), else None (0)."""
    failed = {c.kind for c in checks if c.status == "fail"}
    if "permission" in failed:
        return "permission"
    return "config" if failed else None


def preflight_canonize(cfg: PipelineConfig) -> None:
    """Before a run that canonizes: every mapping's transform and every schema must be usable.

    A missing or broken transform, an invalid schema, or a mapping no extractor feeds is a
    configuration error (exit 2) found before any task starts, not a task failure later.
    """
    from engine.errors import ConfigError

    failed = [c for c in (*check_transforms(cfg), *check_schemas(cfg)) if c.status == "fail"]
    if failed:
        lines = "\n".join(f"  {c.group} {c.subject}: {c.message}" for c in failed)
        raise ConfigError(f"the canonize stage cannot run:\n{lines}",
                          hint="run `lorchestra validate` for the full checklist; see docs/transforms.md")
