"""What a tap gets besides its config: a catalog (given, or discovered and cached) and a STATE.

* ``catalog: FILE`` is passed as is. ``discover: true`` runs ``TAP --discover`` and caches the
  catalog at ``{workspace}/catalogs/{extractor}.json`` (0600); it is reused until it is older
  than ``discover_max_age_h`` or the tap's command or config file changed. The cache lives in
  the PHI workspace but not in ``state/`` (which is PHI-free): a discovered schema names
  columns and properties, and a spreadsheet's header row can be a list of client names.
  Streams the catalog leaves unselected at the top level are selected, as Meltano's default
  ``select: ["*.*"]`` does, so taps that need an explicit selection still sync.
* ``incremental: true`` writes the final STATE of the run LATEST names to a 0600 file in
  the new run's temporary folder; the caller removes it when the tap has ended.

Nothing here reads the tap's config file (it may hold secrets): only its path and mtime.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine.config import Extractor
from engine.events import ErrorCode
from engine.stages.tapproc import Supervisor, reap
from engine.stages.taps import tap_command
from engine.store.fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    dump_json,
    ensure_dir,
    open_private,
    read_json,
)
from engine.store.workspace import Workspace
from engine.vault.layout import RunRef, read_latest, read_manifest

STATE_FILE = "tap-state.json"


class InputProblem(Exception):
    """The tap's inputs could not be prepared; carries a stable code (and the tap's exit code)."""

    def __init__(self, code: ErrorCode, exit_code: int | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.exit_code = exit_code

    @property
    def status(self) -> str:
        """The task status this problem means: cancelled, timeout or failed."""
        return {ErrorCode.CANCELLED: "cancelled", ErrorCode.TIMEOUT: "timeout"}.get(self.code, "failed")


@dataclass
class TapInputs:
    """The catalog and state files for one run, and what the manifest says about them."""

    catalog: Path | None = None
    state: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    def cleanup(self) -> None:
        """Remove the STATE file (it belongs to the previous run's manifest, not this run)."""
        if self.state is not None:
            self.state.unlink(missing_ok=True)


def prepare_inputs(ex: Extractor, ws: Workspace, account_dir: Path, scratch: Path,
                   sup: Supervisor, stderr_log: Path, *, want_state: bool = True) -> TapInputs:
    """Catalog and STATE for a run of ``ex`` (raises InputProblem)."""
    inputs = TapInputs()
    if ex.catalog is not None:
        inputs.catalog = ex.catalog
        inputs.manifest["catalog"] = {"source": "file", "path": str(ex.catalog)}
    elif ex.discover:
        inputs.catalog, fresh = cached_or_discovered(ex, ws, scratch, sup, stderr_log)
        inputs.manifest["catalog"] = {"source": "discovered", "path": str(inputs.catalog),
                                      "discovered_now": fresh,
                                      "sha256": hashlib.sha256(inputs.catalog.read_bytes()).hexdigest()}
    if ex.incremental and want_state:
        state, run = last_state(account_dir)
        inputs.manifest["incremental"] = {"from_run": run, "state_passed": state is not None}
        if state is not None:
            inputs.state = scratch / STATE_FILE
            with open_private(inputs.state, "wb") as fh:
                fh.write(state_bytes(state))
    return inputs


def state_bytes(state: Any) -> bytes:
    """The STATE for ``--state``: the tap's own text when the manifest kept it (a number a
    double cannot hold, in a format 2 run), else the value as JSON."""
    if isinstance(state, ExactState):
        return state.text.encode()
    return dump_json(state, sort_keys=False)


class ExactState:
    """A STATE value kept as the tap's JSON text (the manifest's ``state_text``)."""

    def __init__(self, text: str) -> None:
        self.text = text


def last_state(account_dir: Path) -> tuple[Any, str | None]:
    """The final STATE of the run LATEST names and that run's folder (None, None: no LATEST)."""
    try:
        latest = read_latest(account_dir)
        if latest is None:
            return None, None
        ref = RunRef(str(latest["dt"]), str(latest["run_id"]))
        manifest = read_manifest(ref.path(account_dir))
    except (OSError, ValueError, KeyError, AssertionError):
        raise InputProblem(ErrorCode.STATE_UNREADABLE) from None
    if manifest.get("status") != "success":
        raise InputProblem(ErrorCode.STATE_UNREADABLE)
    text = manifest.get("state_text")
    if isinstance(text, str):
        return ExactState(text), ref.rel
    return manifest.get("state"), ref.rel


def catalog_paths(ws: Workspace, ex: Extractor) -> tuple[Path, Path]:
    """The cached catalog of ``ex`` and its sidecar (when and from what it was discovered)."""
    return ws.catalogs / f"{ex.name}.json", ws.catalogs / f"{ex.name}.meta.json"


def fingerprint(ex: Extractor) -> str:
    """What the discovery depends on: the command and the config file's path, size and mtime."""
    parts: list[Any] = [ex.kind, ex.command, str(ex.config) if ex.config else None,
                        ex.demo.model_dump() if ex.demo else None]
    if ex.config is not None:
        try:
            st = ex.config.stat()
            parts += [st.st_size, st.st_mtime_ns]
        except OSError:
            parts.append(None)
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


def cached_or_discovered(ex: Extractor, ws: Workspace, scratch: Path, sup: Supervisor,
                         stderr_log: Path) -> tuple[Path, bool]:
    """The catalog to pass: the cached one if still good, else a new discovery (and True)."""
    path, meta_path = catalog_paths(ws, ex)
    fp = fingerprint(ex)
    try:
        meta = read_json(meta_path)
        fresh = (meta.get("fingerprint") == fp and path.is_file()
                 and time.time() - float(meta["discovered_at"]) < ex.discover_max_age_h * 3600)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        fresh = False
    if fresh:
        return path, False
    catalog = discover(ex, scratch, sup, stderr_log)
    ensure_dir(ws.catalogs)
    atomic_write_bytes(path, dump_json(select_all(catalog), indent=True, sort_keys=False) + b"\n")
    atomic_write_json(meta_path, {"fingerprint": fp, "discovered_at": time.time(),
                                  "streams": len(catalog["streams"])})
    return path, True


def discover(ex: Extractor, scratch: Path, sup: Supervisor, stderr_log: Path) -> dict[str, Any]:
    """Run the tap in discovery mode; return its catalog (raises InputProblem)."""
    cmd = tap_command(ex, scratch, discover=True)
    out_path = scratch / "discovered-catalog.json"
    try:
        with open_private(out_path, "wb") as out, open_private(stderr_log, "ab") as err:
            try:
                proc, dog = sup.spawn(cmd.argv, stdout=out, stderr=err, env=cmd.env, cwd=cmd.cwd)
            except OSError:
                raise InputProblem(ErrorCode.TAP_NOT_FOUND) from None
            rc = reap(proc, dog)
        if sup.reason is not None:
            raise InputProblem(ErrorCode.CANCELLED if sup.reason == "cancelled" else ErrorCode.TIMEOUT, rc)
        if rc != 0:
            raise InputProblem(ErrorCode.DISCOVERY_FAILED, rc)
        try:
            catalog = orjson.loads(out_path.read_bytes())
        except orjson.JSONDecodeError:
            raise InputProblem(ErrorCode.DISCOVERY_FAILED, rc) from None
    finally:
        if out_path.exists():
            os.unlink(out_path)
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        raise InputProblem(ErrorCode.DISCOVERY_FAILED, rc)
    return catalog


def select_all(catalog: dict[str, Any]) -> dict[str, Any]:
    """Mark each stream selected at the top level unless the catalog already decides."""
    for stream in catalog["streams"]:
        if not isinstance(stream, dict):
            continue
        metadata = stream.setdefault("metadata", [])
        if not isinstance(metadata, list):
            continue
        top = next((m for m in metadata if isinstance(m, dict) and m.get("breadcrumb") == []), None)
        if top is None:
            top = {"breadcrumb": [], "metadata": {}}
            metadata.append(top)
        entry = top.setdefault("metadata", {})
        if isinstance(entry, dict) and "selected" not in entry:
            entry["selected"] = True
    return catalog
