"""Shared helpers for tests: run the real CLI in a subprocess, write small configs."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import yaml

REPO = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without lorchestra's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORCH_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 120, prog: str = "lorch_tui.cli") -> subprocess.CompletedProcess[str]:
    """Run `lorchestra ARGS` (or another face module) as a real subprocess."""
    return subprocess.run([sys.executable, "-m", prog, *args], capture_output=True, text=True,
                          env=env if env is not None else clean_env(), cwd=cwd or REPO, timeout=timeout)


def demo_extractor(name: str, tap: str = "gmail", records: int = 20, seed: int = 1,
                   **settings: Any) -> dict[str, Any]:
    """One `kind: demo` extractor entry; faults go in settings['faults']."""
    faults = settings.pop("faults", None)
    demo: dict[str, Any] = {"tap": tap, "records": records, "seed": seed}
    if faults:
        demo["faults"] = faults
    domain = {"gmail": "email", "msgraph": "email", "dataverse": "clinical", "sheets": "ops",
              "quickbooks": "finance"}[tap]
    return {"name": name, "domain": domain, "source": tap, "account": name, "kind": "demo",
            "demo": demo, **settings}


def write_config(tmp: Path, extractors: list[dict[str, Any]], **top: Any) -> Path:
    """Write a config with a workspace at tmp/ws; return its path."""
    cfg = {"pipeline": {"name": "test", "version": "1"}, "workspace": str(tmp / "ws"),
           "extractors": extractors, **top}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def copy_workspace(built: Path, tmp_path: Path) -> Path:
    """This test's own copy of a workspace a module fixture built (``tmp_path/ws``)."""
    ws = tmp_path / "ws"
    shutil.copytree(built, ws, symlinks=True)
    return ws


def account_dir(ws: Path, ex: dict[str, Any]) -> Path:
    """The vault folder of an extractor entry."""
    return ws / "vault" / ex["domain"] / ex["source"] / ex["account"]


def runs_of(acct: Path) -> list[Path]:
    """Final run folders of an account, oldest first."""
    return sorted(acct.glob("dt=*/run_id=*"))


def manifest(run: Path) -> dict[str, Any]:
    """A run's manifest."""
    data: dict[str, Any] = orjson.loads((run / "manifest.json").read_bytes())
    return data


def latest(acct: Path) -> dict[str, Any] | None:
    """The LATEST pointer, if any."""
    p = acct / "LATEST.json"
    return orjson.loads(p.read_bytes()) if p.exists() else None


def verify_parts(run: Path) -> int:
    """Check every part against the manifest (sha256, sizes, messages, records); return records.

    Format 1 lines are ``{"stream", "record"}``; format 2 lines are Singer messages with a
    ``type`` (RECORD lines counted as records)."""
    m = manifest(run)
    total = 0
    for part in m["parts"]:
        data = (run / part["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == part["sha256"]
        assert len(data) == part["bytes"]
        raw = gzip.decompress(data)
        assert len(raw) == part["uncompressed_bytes"]
        if "compression_ratio" in part or m.get("format", 1) >= 2:  # DESIGN section 3, per part too
            assert part["compression_ratio"] == round(len(raw) / len(data), 3)
        lines = raw.splitlines()
        if m.get("format", 1) == 1:
            assert len(lines) == part["records"]
            assert all(set(orjson.loads(line)) == {"stream", "record"} for line in lines)
            total += len(lines)
            continue
        assert len(lines) == part["messages"]
        records = sum(1 for line in lines if vault_message(line)["type"] == "RECORD")
        assert records == part["records"]
        total += records
    assert total == m["records"]
    return total


def vault_message(line: bytes) -> dict[str, Any]:
    """A format 2 vault line parsed exactly (big numbers as int / Decimal), for assertions."""
    data: dict[str, Any] = json.loads(line, parse_float=Decimal)
    return data


def vault_records(run: Path) -> list[dict[str, Any]]:
    """Every RECORD message of a run's parts, in order, parsed exactly (either format:
    format 1 lines come back as ``{"stream", "record"}``)."""
    out: list[dict[str, Any]] = []
    for part in manifest(run)["parts"]:
        for line in gzip.decompress((run / part["file"]).read_bytes()).splitlines():
            msg = vault_message(line)
            if msg.get("type", "RECORD") == "RECORD":
                out.append(msg)
    return out


def log_events(ws: Path) -> list[dict[str, Any]]:
    """Every event in the workspace's JSON logs."""
    out: list[dict[str, Any]] = []
    for f in sorted((ws / "logs").glob("pipeline-*.log")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines() if line.strip()]
    return out


def object_batch(n: int, salt: str, pad: int = 0) -> list[tuple[str, bytes]]:
    """``n`` distinct small JSON documents with their sha256 (objects for an ObjectWriter);
    ``pad`` > 0 gives them lengths that vary up to ``pad`` bytes."""
    out = []
    for i in range(n):
        extra = f',"pad":"{"x" * (i % pad)}"' if pad else ""
        data = f'{{"kind":"email","n":{i},"salt":"{salt}"{extra}}}\n'.encode()
        out.append((hashlib.sha256(data).hexdigest(), data))
    return out


def store_objects(writer: Any, objects: list[tuple[str, bytes]]) -> Any:
    """Hand ``objects`` to an ``ObjectWriter``, wait for them (no flush) and close it; the writer."""
    try:
        for sha, data in objects:
            writer.write(sha, data)
        writer.finish(sync=False)
    finally:
        writer.close()
    return writer


def wait_for(cond: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _threads_of(pid: int) -> list[str]:
    """Each thread of ``pid`` and of its children: name, state (D = in the kernel, waiting
    for the disk; S = asleep on a lock or a pipe) and the kernel function it waits in."""
    out: list[str] = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            stat = (task / "stat").read_text()
            wchan = (task / "wchan").read_text()
            out.append(f"{pid}/{task.name} {stat[stat.index('(') : stat.rindex(')') + 3]} wchan={wchan}")
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out.extend(_threads_of(int(child)))
    return out


def exit_code(proc: subprocess.Popen[bytes], stderr: Path, timeout: float) -> int:
    """``proc``'s exit code, or fail after ``timeout`` with what each of its threads (and
    its children's) waits on and, when it registered ``faulthandler`` on SIGUSR1, its
    Python stacks: a hang is then diagnosed from the failure alone."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        threads = _threads_of(proc.pid)
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None and "Thread 0x" not in stderr.read_text(
                errors="replace"):
            time.sleep(0.05)
        raise AssertionError(f"still running after {timeout:.0f} s; threads:\n" + "\n".join(threads)
                             + "\nstderr:\n" + stderr.read_text(errors="replace")[-20_000:]) from None


# --- a tiny Singer tap of our own (kind: singer), for tests that need a real tap fast ---

TINY_TAP_SOURCE = '''\
"""A minimal Singer tap: SCHEMA, N RECORDs, STATE; one log line on stderr."""
import json
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
print("tiny tap: starting", file=sys.stderr, flush=True)
schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
out = [json.dumps({"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]})]
out += [json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i, "name": f"item {i}"}})
        for i in range(n)]
out.append(json.dumps({"type": "STATE", "value": {"items": n}}))
sys.stdout.write("\\n".join(out) + "\\n")
'''


@dataclass(frozen=True)
class TinyTap:
    """A written tiny tap and the config that runs it as extractor ``name``."""

    config: Path
    script: Path
    workspace: Path
    name: str
    records: int

    @property
    def account_dir(self) -> Path:
        """The vault folder the extractor writes."""
        return self.workspace / "vault" / "test" / "tiny" / self.name


def tiny_tap(tmp: Path, records: int = 10, *, name: str = "tiny",
             workspace: Path | None = None) -> TinyTap:
    """Write the tiny tap script and a `kind: singer` config running it; workspace tmp/ws."""
    script = tmp / "tiny_tap.py"
    script.write_text(TINY_TAP_SOURCE)
    ws = workspace or tmp / "ws"
    cfg = {
        "pipeline": {"name": "tiny", "version": "1"},
        "workspace": str(ws),
        "extractors": [{"name": name, "domain": "test", "source": "tiny", "account": name,
                        "kind": "singer", "command": [sys.executable, str(script), str(records)],
                        "timeout_s": 60}],
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return TinyTap(path, script, ws, name, records)


def demo_mappings() -> list[dict[str, Any]]:
    """The bundled demo's canonize mappings, plus `msgraph` as a source name for tests."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    maps: list[dict[str, Any]] = cfg["stages"]["canonize"]["mappings"]
    extra = [{**m, "source": "msgraph"} for m in maps if m["source"] == "exchange"]
    return maps + extra


def canonical_paths(ws: Path, ex: dict[str, Any]) -> dict[str, Path]:
    """The canonical files of a demo extractor entry."""
    base = ws / "canonical" / ex["source"]
    return {"data": base / f"{ex['account']}.jsonl", "meta": base / f"{ex['account']}.meta.json",
            "rejects": base / f"{ex['account']}.rejects.jsonl"}


def demo_subset_config(tmp: Path, keep: tuple[str, ...] | list[str] | set[str]) -> Path:
    """The bundled demo config with only the extractors named in ``keep`` (one job of them,
    no overrides file), written under ``tmp``; return its path."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["extractors"] = [e for e in cfg["extractors"] if e["name"] in keep]
    cfg["jobs"] = {"all": list(keep)}
    cfg["stages"]["extract"]["job"] = "all"
    cfg["clients"].pop("overrides", None)
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


FILE_TAP = """\
import sys
with open(sys.argv[1]) as fh:
    sys.stdout.write(fh.read())
"""
"""A tap that replays a file of Singer lines (:func:`singer_file`): its command is
``[sys.executable, <FILE_TAP written to a .py>, <the file>]``."""


def singer_file(path: Path, stream: str, key: str, records: list[dict[str, Any]]) -> None:
    """A file of Singer lines for :data:`FILE_TAP`: one SCHEMA (key ``key``) and the records."""
    lines = [{"type": "SCHEMA", "stream": stream, "schema": {"type": "object"}, "key_properties": [key]}]
    lines += [{"type": "RECORD", "stream": stream, "record": r} for r in records]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


FORMS_MAPPINGS = [
    {"source": "dataverse", "stream": "contacts", "transform": "clinical/dataverse_contact_to_contact_v1"},
    {"source": "forms", "stream": "responses", "transform": "forms/gforms_response_to_form_response_v1"},
    {"source": "sheets", "stream": "Form_Responses_1", "transform": "forms/sheets_form_response_to_form_response_v1"},
]
"""The bundled transforms of a Dataverse system of record and both shapes of form responses."""


def file_extractor(tmp: Path, name: str, source: str, account: str, data: Path) -> dict[str, Any]:
    """An extractor replaying ``data`` through :data:`FILE_TAP` (written as ``tmp/filetap.py``)."""
    return {"name": name, "domain": "clinical", "source": source, "account": account, "kind": "singer",
            "command": [sys.executable, str(tmp / "filetap.py"), str(data)], "timeout_s": 120}


def forms_config(tmp: Path, name: str, extractors: list[dict[str, Any]], clients: dict[str, Any]) -> Path:
    """``tmp/pipeline.yaml``: the extractors, :data:`FORMS_MAPPINGS`, no vectors, ``clients``."""
    cfg = {"pipeline": {"name": name, "version": "1"}, "workspace": str(tmp / "ws"), "extractors": extractors,
           "stages": {"canonize": {"mappings": FORMS_MAPPINGS}, "index": {"vectors": False}}, "clients": clients}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
