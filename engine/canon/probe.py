"""``validate``'s limit check: run each mapped transform's samples under the run's limits.

A transform that compiles can still loop for ever, recurse without end or allocate until the
machine stops it; ``validate`` would say "all checks passed" and the nightly canonize would
hang. So each mapped transform is evaluated, in a child process capped exactly like a
canonize worker (``memory_limit_mb``, ``transform_timeout_ms``, ``transform_max_depth``), on
each of its golden samples' inputs and on an empty record (a transform that loops whatever
its input does so there too). Only a breached limit counts here; wrong output is
``lorchestra transform test``'s business. The child's output is PHI-free: transform ids and
codes; its stderr is only searched for the fixed out-of-memory markers, never shown.

Run as ``python -m engine.canon.probe`` with a JSON request on stdin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from engine.config import PipelineConfig

EMPTY_INPUT_BUDGET = 1


def probe_transforms(cfg: PipelineConfig, ids: list[str]) -> dict[str, str | None]:
    """Each transform id -> the limit code it breached (``TRANSFORM_TIMEOUT``,
    ``TRANSFORM_TOO_DEEP``, ``WORKER_OUT_OF_MEMORY``, ``WORKER_CRASHED``), or None."""
    canon = cfg.stages.canonize
    request: dict[str, Any] = {
        "transforms_dir": str(canon.transforms_dir) if canon.transforms_dir else None,
        "schemas_dir": str(canon.schemas_dir) if canon.schemas_dir else None,
        "timeout_ms": canon.transform_timeout_ms, "max_depth": canon.transform_max_depth,
        "memory_limit_mb": canon.memory_limit_mb,
    }
    results: dict[str, str | None] = {}
    todo = list(ids)
    while todo:
        request["ids"] = todo
        done, blamed, code = _run_child(request, len(todo))
        results.update(done)
        if blamed is not None:
            results[blamed] = code
        todo = [i for i in todo if i not in results]
        if blamed is None and todo:  # the child ended without a word about these: do not loop
            results.update({i: "WORKER_CRASHED" for i in todo})
            break
    return results


def _run_child(request: dict[str, Any], count: int) -> tuple[dict[str, str | None], str | None, str | None]:
    """Run one child over ``request['ids']``; the results it finished, and the id it was
    busy with when it died or ran out of time (with the code for that)."""
    from engine.limits import OOM_MARKERS

    budget = count * (10 * request["timeout_ms"] / 1000 + 5) + 10
    # stderr through a pipe, never a file: a golden sample may be real data (no temporary
    # file outside the workspace ever holds what the child says).
    proc = subprocess.Popen([sys.executable, "-m", "engine.canon.probe"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    timed_out = False
    try:
        out, err = proc.communicate(orjson.dumps(request), timeout=budget)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    tail = err[-65536:]
    done: dict[str, str | None] = {}
    current: str | None = None
    for line in out.splitlines():
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "start" in msg:
            current = msg["start"]
        elif "done" in msg:
            done[msg["done"]] = msg.get("code")
            current = None
    if current is None:
        return done, None, None
    if timed_out:
        return done, current, "TRANSFORM_TIMEOUT"
    oom = any(m in tail for m in OOM_MARKERS)
    return done, current, "WORKER_OUT_OF_MEMORY" if oom else "WORKER_CRASHED"


def _inputs(transform: Any) -> list[Any]:
    inputs: list[Any] = [{}]
    for sample in transform.samples:
        try:
            inputs.append(orjson.loads(Path(sample.input).read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            continue
    return inputs


def main() -> int:
    """The child: cap memory, evaluate every input of every transform, report codes."""
    from engine.limits import cap_memory

    req = orjson.loads(sys.stdin.buffer.read())
    # Capped first, before anything imports the JSONata engine, as the canonize worker does:
    # the engine reserves about 1 GiB of address space at import when nothing limits it, and
    # a cap set after that left no room for the evaluation at 512 or 1024 MiB (a recursion
    # reported as WORKER_CRASHED where the canonize task says TRANSFORM_TOO_DEEP). Under the
    # cap it reserves what fits.
    cap_memory(req["memory_limit_mb"])
    from engine.canon.compiled import TransformLimits, compile_expression, evaluate, limit_code
    from engine.canon.registry import Registry

    reg = Registry.load(Path(req["transforms_dir"]) if req["transforms_dir"] else None,
                        Path(req["schemas_dir"]) if req["schemas_dir"] else None)
    compiled: dict[str, tuple[Any, Any] | None] = {}
    for tid in req["ids"]:
        try:
            t = reg.transforms[tid]
            compiled[tid] = (t, compile_expression(t.expression))
        except (KeyError, OSError, ValueError):
            compiled[tid] = None  # missing or not compiling: the compile check reports it
    limits = TransformLimits(req["timeout_ms"], req["max_depth"])
    out = sys.stdout.buffer
    for tid in req["ids"]:
        out.write(orjson.dumps({"start": tid}) + b"\n")
        out.flush()
        code = None
        entry = compiled[tid]
        if entry is not None:
            t, expr = entry
            envelope = {"source": t.source, "account": "validate"}
            for record in _inputs(t):
                try:
                    evaluate(expr, record, envelope, limits)
                except MemoryError:
                    code = "WORKER_OUT_OF_MEMORY"
                except Exception as exc:  # an ordinary JSONata error: not this check's business
                    code = limit_code(exc)
                if code:
                    break
        out.write(orjson.dumps({"done": tid, "code": code}) + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
