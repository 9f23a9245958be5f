"""End to end in a real terminal: the real `lorch-tui` inside tmux, driven by send-keys.

The screen is read back with `capture-pane` and polled with deadlines. The tmux server has
its own socket (`-L`), so it never touches a user's sessions, and is killed at the end.
Skipped only where tmux is not installed (`.ci/run` installs it when it can).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, clean_env, demo_extractor, write_config
from tests.tui.dash import EXTRACTORS, dashboard_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WIDTH, HEIGHT = 120, 35
LABELS = [name for name, _, _ in EXTRACTORS]  # the LATEST table's account column (account = name here)
RUN_ID = r"\d{8}T\d{6}Z"


class Tmux:
    """One detached tmux session on a private server."""

    def __init__(self, command: str) -> None:
        self.socket = f"lorch-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = clean_env(TERM="xterm-256color")
        self.run("new-session", "-d", "-s", "e2e", "-x", str(WIDTH), "-y", str(HEIGHT), command)

    def run(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                             env=self.env, timeout=30)
        if res.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args[:1])} failed: {res.stderr.strip()}")
        return res.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "e2e")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "e2e", *keys)

    def wait(self, cond: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if cond(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; the screen was:\n{text}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, env=self.env, timeout=30)
        folder = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        (folder / self.socket).unlink(missing_ok=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    cfg = dashboard_config(tmp_path, records=30)
    tui = f"{shlex.quote(sys.executable)} -m lorch_tui.tui_main --config {shlex.quote(str(cfg))}"
    # after the app exits, say how, and keep the pane open so the test can read it
    command = f"cd {shlex.quote(str(REPO))} && {tui}; echo LORCH-EXIT=$?; sleep 60"
    term = Tmux(command)
    try:
        yield term
    finally:
        term.kill()


def all_fresh(screen: str) -> bool:
    return all(re.search(rf"{re.escape(label)}\s+{RUN_ID}\s+30\b", screen) for label in LABELS)


def test_the_real_dashboard_in_tmux(terminal: Tmux) -> None:
    screen = terminal.wait(lambda s: "no run yet" in s and "q quit" in s and all(label in s for label in LABELS),
                           "the dashboard to open", timeout=60)
    for title in ("Vault", "LATEST", "Run detail", "Stage progress", "Log"):
        assert f"─ {title} ─" in screen, title
    assert "R run all" in screen and "? help" in screen  # the footer
    assert not all_fresh(screen)

    terminal.keys("R")
    screen = terminal.wait(all_fresh, "every LATEST row to show a run of 30 records", timeout=90)
    screen = terminal.wait(lambda s: re.search(r"│ success: \d+ success · [\d,]+ records extracted", s) is not None,
                           "the run to end", timeout=60)
    assert "task_finished" in screen  # the log tail followed the run

    terminal.keys("?")
    terminal.wait(lambda s: "lorchestra dashboard: keys" in s, "the help screen")
    terminal.keys("Escape")
    terminal.wait(lambda s: "lorchestra dashboard: keys" not in s, "the help screen to close")

    terminal.keys("q")
    terminal.wait(lambda s: "LORCH-EXIT=0" in s, "lorch-tui to quit with 0")


@pytest.fixture
def hanging_terminal(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    """The dashboard on one account whose tap hangs after 5 records (a run that stays running)."""
    exs = [demo_extractor("slow-mail", "gmail", records=50, seed=4, retries=0, timeout_s=600,
                          faults={"hang_after": 5})]
    cfg = write_config(tmp_path, exs)
    tui = f"{shlex.quote(sys.executable)} -m lorch_tui.tui_main --config {shlex.quote(str(cfg))}"
    command = f"cd {shlex.quote(str(REPO))} && {tui}; echo LORCH-EXIT=$?; sleep 60"
    term = Tmux(command)
    try:
        yield term, tmp_path / "ws"
    finally:
        term.kill()


def workers_of(ws: Path) -> list[str]:
    """Command lines of live processes that name this workspace or its config (ours only)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(ws.parent) in cmd and "tmux" not in cmd and "sleep 60" not in cmd:
            out.append(cmd)
    return out


def test_ctrl_q_during_a_run_asks_cancels_reaps_and_records(hanging_terminal: tuple[Tmux, Path]) -> None:
    """Textual's ctrl+q during a run takes the q path: it asks, cancels, reaps the worker and
    the tap, records the run as cancelled, and the process exits 0 (no loop-closed spew)."""
    terminal, ws = hanging_terminal
    terminal.wait(lambda s: "q quit" in s and "slow-mail" in s, "the dashboard to open", timeout=60)
    terminal.keys("R")
    terminal.wait(lambda s: "running" in s and "extract" in s, "the run to be running", timeout=60)
    assert workers_of(ws), "the worker should be alive during the run"
    terminal.keys("C-q")
    terminal.wait(lambda s: "A run is in progress. Cancel it and quit?" in s, "the question")
    terminal.keys("y")
    screen = terminal.wait(lambda s: "LORCH-EXIT=" in s, "lorch-tui to quit", timeout=60)
    assert "LORCH-EXIT=0" in screen and "Loop" not in screen and "Traceback" not in screen
    deadline = time.monotonic() + 10
    while workers_of(ws) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not workers_of(ws), workers_of(ws)
    con = sqlite3.connect(ws / "state" / "lorch.sqlite")
    try:
        runs = con.execute("SELECT status FROM runs").fetchall()
        tasks = con.execute("SELECT status FROM tasks WHERE stage = 'extract'").fetchall()
    finally:
        con.close()
    assert runs == [("cancelled",)] and tasks == [("cancelled",)]


def test_a_closed_terminal_during_a_run_ends_the_dashboard_and_frees_the_workspace(tmp_path: Path) -> None:
    """Closing the window mid-run (the pty goes away: SIGHUP) left lorch-tui hung for ever:
    Textual's writer thread died on the closed terminal, the app blocked on its full queue
    while painting the cancel, the lock stayed held and the nightly `--no-ui` run exited 3
    (busy). Now the dashboard stops painting, cancels, records and exits; the lock is free."""
    exs = [demo_extractor("slow-mail", "gmail", records=50, seed=4, retries=0, timeout_s=600,
                          faults={"hang_after": 5})]
    cfg = write_config(tmp_path, exs)
    ws = tmp_path / "ws"
    tui = f"{shlex.quote(sys.executable)} -m lorch_tui.tui_main --config {shlex.quote(str(cfg))}"
    terminal = Tmux(f"cd {shlex.quote(str(REPO))} && exec {tui}")
    try:
        terminal.wait(lambda s: "q quit" in s and "slow-mail" in s, "the dashboard to open", timeout=60)
        terminal.keys("R")
        terminal.wait(lambda s: "running" in s and "extract" in s, "the run to be running", timeout=60)
        assert workers_of(ws), "the dashboard and its worker should be alive during the run"
    finally:
        terminal.kill()  # the window closes under the dashboard
    deadline = time.monotonic() + 45
    while workers_of(ws) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workers_of(ws), f"still alive after the terminal closed: {workers_of(ws)}"
    con = sqlite3.connect(ws / "state" / "lorch.sqlite")
    try:
        runs = con.execute("SELECT status FROM runs").fetchall()
    finally:
        con.close()
    assert runs == [("cancelled",)]
    res = subprocess.run([sys.executable, "-m", "lorch_tui.tui_main", "--no-ui", "--dry-run", "--config", str(cfg)],
                         capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr  # not 3: the workspace is not busy
