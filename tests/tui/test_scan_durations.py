"""The dashboard's scan reads the newest extract durations through an index, so its cost stops
at its limit instead of growing with the run history (issue 18). A real state database made
by the engine's own ``connect`` (its schema), filled with years of nightly tasks; the cost is
SQLite's virtual machine steps, the same for 400 and for 4,000 nights."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from engine.store import state
from engine.store.workspace import Workspace
from lorch_tui.scan import extract_durations

ACCOUNTS = 15
LIMIT = 3000


def history(root: Path, nights: int) -> Workspace:
    ws = Workspace(root)

    async def make() -> None:
        db = await state.connect(ws.state_db)
        await db.close()

    asyncio.run(make())
    con = sqlite3.connect(ws.state_db, isolation_level=None)
    con.execute("BEGIN")
    for night in range(nights):
        run = f"2020{night:06d}T020000Z"
        started = f"2020-{night:06d}T02:00:00Z"
        con.execute("INSERT INTO runs (run_id, trigger, pipeline, stages, started_at, status) "
                    "VALUES (?, 'cron', 'p', 'all', ?, 'success')", (run, started))
        con.executemany(
            "INSERT INTO tasks (run_id, task_id, stage, extractor, account, status, started_at, duration_s, "
            "vault_run) VALUES (?, ?, ?, ?, ?, 'success', ?, ?, ?)",
            [(run, f"{stage}:x{a}", stage, f"x{a}", f"a{a}", f"{started[:-1]}.{a:02d}Z", 1.0 + a,
              f"dt=2020/run_id={run}" if stage == "extract" else None)
             for a in range(ACCOUNTS) for stage in ("extract", "canonize", "index")])
    con.execute("COMMIT")
    con.close()
    return ws


def steps(ws: Workspace) -> tuple[dict[str, dict[str, float]], int]:
    """The scan's read and the VM steps of the query (every opcode, over the same connection's
    read-only open: counted with a progress handler on a patched ``open_readonly``)."""
    import lorch_tui.scan as scan

    count = [0]
    real = scan.open_readonly

    def counted(path: Path) -> sqlite3.Connection | None:
        conn = real(path)
        if conn is not None:
            conn.set_progress_handler(lambda: count.__setitem__(0, count[0] + 1) or 0, 1)
        return conn

    scan.open_readonly = counted  # type: ignore[assignment]
    try:
        found = extract_durations(ws, LIMIT)
    finally:
        scan.open_readonly = real  # type: ignore[assignment]
    return found, count[0]


def test_extract_durations_cost_the_same_for_400_and_4000_nights(tmp_path: Path) -> None:
    short, short_steps = steps(history(tmp_path / "short", 400))
    long, long_steps = steps(history(tmp_path / "long", 4000))
    assert sum(map(len, short.values())) == LIMIT == sum(map(len, long.values()))
    assert set(long) == {f"x{a}" for a in range(ACCOUNTS)}
    newest = "dt=2020/run_id=2020003999T020000Z"
    assert long["x3"][newest] == 4.0 and "dt=2020/run_id=2020000000T020000Z" not in long["x3"]
    assert long_steps <= short_steps * 1.05, (short_steps, long_steps)  # not 10x: the index stops at LIMIT


def test_the_index_is_in_the_schema_and_the_plan_uses_it(tmp_path: Path) -> None:
    ws = history(tmp_path / "ws", 3)
    con = sqlite3.connect(ws.state_db)
    plan = " ".join(str(r[3]) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT extractor, vault_run, duration_s FROM tasks WHERE stage = 'extract' "
        "AND vault_run IS NOT NULL AND duration_s IS NOT NULL ORDER BY started_at DESC LIMIT 10"))
    con.close()
    assert "tasks_stage_started" in plan and "TEMP B-TREE" not in plan, plan
