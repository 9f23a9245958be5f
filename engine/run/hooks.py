"""The ``on_failure`` hook: tell a person (mail, desktop alert) that a run failed.

Cron runs unattended, so a failure needs a way out of the machine. The hook is a command
from the config; after a run that ended badly (a failed task, an engine error, a full disk,
an interrupt) it gets a PHI-free JSON summary on its stdin (run
id, status, counts, the failed tasks' ids, extractors and error codes, the log path). Its
own stdout and stderr go to ``diagnostics/hooks/on_failure.log`` inside the workspace, never
to ours (our stdout may be a cron mail or a pipe of JSON lines), and a hook that fails or
hangs yields a warning for the face to print: it never changes the run's exit code. A
hook log that cannot be written (a full disk) never stops the hook from running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path
from typing import IO, Any

import orjson

from engine.config.load import LoadedConfig
from engine.run.runner import RunResult
from engine.store.fsutil import ensure_dir, open_private
from engine.store.workspace import Workspace

HOOK_TIMEOUT_S = 60.0


def failure_summary(loaded: LoadedConfig, ws: Workspace, result: RunResult, log_path: str,
                    trigger: str) -> dict[str, Any]:
    """The JSON the hook reads: config identifiers, counts, codes and workspace paths only."""
    s = result.summary
    failed = [f for f in result.finished.values() if f.status in ("failed", "timeout")]
    return {
        "event": "run_failed",
        "run_id": s.run_id if s else None,
        "status": s.status if s else "failed",
        "trigger": trigger,
        "pipeline": {"name": loaded.config.pipeline.name, "version": loaded.config.pipeline.version},
        "host": socket.gethostname(),
        "tasks": s.tasks if s else len(result.finished),
        "succeeded": s.succeeded if s else 0,
        "failed": s.failed if s else len(failed),
        "cancelled": s.cancelled if s else 0,
        "records": s.records if s else 0,
        "duration_s": s.duration_s if s else None,
        "failed_tasks": [
            {"task_id": f.task_id, "stage": f.stage, "extractor": f.extractor, "account": f.account,
             "status": f.status, "attempt": f.attempt, "error_code": f.error_code,
             "exit_code": f.exit_code}
            for f in sorted(failed, key=lambda f: f.task_id)
        ],
        "log_path": log_path,
        "state_db": str(ws.state_db),
        "workspace": str(ws.root),
        "config": str(loaded.path),
    }


REFUSED = {3: "WORKSPACE_BUSY", 4: "WORKSPACE_UNSAFE"}
"""The ``reason`` of a refused run's summary, by its exit code."""


def refusal_summary(loaded: LoadedConfig, exit_code: int, trigger: str) -> dict[str, Any]:
    """The JSON the hook reads when a run was refused before it began (exit 3: another run
    holds the lock; exit 4: the workspace's permissions or links are unsafe): every night's
    cron run can be refused so, and only the hook tells anyone. No message text (it names
    paths under the workspace), only the reason."""
    return {
        "event": "run_refused", "run_id": None, "status": "refused", "trigger": trigger,
        "reason": REFUSED.get(exit_code, "REFUSED"), "exit_code": exit_code,
        "pipeline": {"name": loaded.config.pipeline.name, "version": loaded.config.pipeline.version},
        "host": socket.gethostname(), "tasks": 0, "failed_tasks": [], "workspace": str(loaded.workspace),
        "config": str(loaded.path), "interrupted": False, "internal_error": None, "abandoned_runs": [],
    }


def hook_log_path(ws: Workspace) -> Path:
    """Where the hook's own output goes (inside the workspace: it may say anything)."""
    return ws.diagnostics / "hooks" / "on_failure.log"


async def run_on_failure(loaded: LoadedConfig, ws: Workspace | None, summary: dict[str, Any],
                         timeout_s: float = HOOK_TIMEOUT_S) -> str | None:
    """Run the configured hook with ``summary`` on stdin; a warning text if it did not succeed.
    ``ws`` None: a refused run, whose workspace is not written (its output is discarded)."""
    command = loaded.config.on_failure
    if not command:
        return None
    out_path = hook_log_path(ws) if ws is not None else None
    env = {**os.environ, "LORCH_CONFIG": str(loaded.path), "LORCH_WORKSPACE": str(loaded.workspace),
           "LORCH_RUN_ID": str(summary.get("run_id") or ""), "LORCH_RUN_STATUS": str(summary["status"])}
    name = os.path.basename(command[0])
    out = _open_hook_log(out_path, summary) if out_path is not None else None  # None on a full disk too
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE, stdout=out or asyncio.subprocess.DEVNULL,
                stderr=out or asyncio.subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError as exc:
            return f"the on_failure hook {name!r} could not be started ({type(exc).__name__})"
        try:
            await asyncio.wait_for(proc.communicate(orjson.dumps(summary) + b"\n"), timeout_s)
        except TimeoutError:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
            return f"the on_failure hook {name!r} did not finish in {timeout_s:g}s and was killed"
    finally:
        if out is not None:
            try:
                out.close()
            except OSError:
                pass
    if proc.returncode != 0:
        where = f"its output is in {out_path}" if out is not None else "its output was not kept"
        return f"the on_failure hook {name!r} exited with code {proc.returncode} ({where})"
    return None


def _open_hook_log(path: Path, summary: dict[str, Any]) -> IO[bytes] | None:
    """The hook's output file with a header line, or None when it cannot be written."""
    try:
        ensure_dir(path.parent)
        fh: IO[bytes] = open_private(path, "ab")
    except OSError:
        return None
    try:
        fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} run {summary.get('run_id')}\n".encode())
        fh.flush()
    except OSError:
        pass  # a full disk: the hook still runs; what it prints may be lost
    return fh
