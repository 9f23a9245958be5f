"""The PHI proof: canary patients go in, and come out only where PHI is allowed to live.

Every demo tap plants the canaries of ``engine.demo_taps.canary.CANARIES`` (a name, a
birth date, a diagnosis, an address, an e-mail) in its first records and in its stderr log
lines. One workspace runs the whole pipeline through every face (``lorchestra run`` plain,
on a terminal and with ``--json``; ``lorch-tui --no-ui`` plain and ``--json``; ``lorchestra
extract``; the read-only commands; the dashboard under Pilot with the real engine, exported
as SVG) with failures injected: a 2 MB stderr flood of PHI log lines, a malformed line, a
tap that fails after logging a patient's name (and is retried), invalid UTF-8, a RECORD
before its SCHEMA, an unknown message type, and a mapping whose every record is rejected
(reasons and records go to the rejects file). A Singer tap of PHI *names*
(``tests/fixtures/taps/phi_names_tap.py``: streams named after a client's intake file,
schema property names that are PHI column headers, a BATCH file named after the client)
proves that names from the data stay in the vault too: the faces show placeholders, and
only ``lorchestra list streams EXTRACTOR --reveal`` prints the real names.

Then every canary is searched for in everything that must stay PHI-free: all printed
output (stdout and stderr of every command), every event (the JSON logs and ``--json``
output), every file of the workspace outside the places PHI lives (``vault/``,
``canonical/``, ``vector-store/``, ``catalogs/``), which covers ``logs/``, ``state/`` and
``diagnostics/``, every table and column of the state database (and its raw bytes), and the
dashboard's screens. Any hit fails the test naming the place. The canaries must also be
found where PHI lives (vault parts, tap stderr logs, canonical files, the index), so the
search cannot pass by searching nothing.
"""

from __future__ import annotations

import gzip
import html
import os
import pty
import re
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config.load import load
from engine.demo_taps.canary import CANARIES, CANARY_ADDRESS
from tests.fixtures.taps import phi_names_tap
from tests.helpers import REPO, clean_env, demo_extractor, demo_mappings, run_cli, write_config
from tests.tui.test_dashboard import select_via_latest

INTAKE, NOTES = phi_names_tap.INTAKE, phi_names_tap.NOTES
PHI_HOMES = ("vault", "canonical", "vector-store", "catalogs", "clients")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


NAMES_TAP = REPO / "tests" / "fixtures" / "taps" / "phi_names_tap.py"


def names_extractor(tmp: Path) -> dict[str, Any]:
    """A Singer tap whose stream names, schema property names and BATCH file name carry PHI."""
    return {"name": "intake-files", "domain": "clinical", "source": "intakefiles", "account": "intake",
            "kind": "singer", "command": [sys.executable, str(NAMES_TAP)], "streams": ["contacts"],
            "env": {"PHI_TAP_DIR": str(tmp / "tap-files"), "PYTHONPATH": str(REPO)}}


def extractors(tmp: Path) -> list[dict[str, Any]]:
    """Nine accounts: the five demo taps (six accounts with faults) and a tap of PHI names."""
    rejected = demo_extractor("sheets-rejected", "sheets", records=12, seed=8)
    rejected["source"] = "sheets-wrong"
    return [
        demo_extractor("mail-ok", "gmail", records=12, seed=1),
        names_extractor(tmp),
        demo_extractor("graph-flood", "msgraph", records=12, seed=2,
                       faults={"stderr_flood_bytes": 2 << 20, "unknown_message_at": 3}),
        demo_extractor("dv-ok", "dataverse", records=12, seed=3),
        demo_extractor("sheets-malformed", "sheets", records=12, seed=4, faults={"malformed_at": 5}),
        demo_extractor("qb-fails", "quickbooks", records=12, seed=5, faults={"fail_after": 4, "exit_code": 3},
                       retries=1, retry_backoff_s=0.1),
        demo_extractor("mail-utf8", "gmail", records=12, seed=6, faults={"invalid_utf8_at": 3}),
        demo_extractor("dv-early", "dataverse", records=12, seed=7, faults={"record_before_schema": True}),
        rejected,
    ]


class Proof:
    """Collects every text that must be PHI-free, and every hit."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.searched: list[str] = []

    def search(self, place: str, text: str | bytes) -> None:
        """Record each canary found in ``text`` as a hit at ``place``."""
        self.searched.append(place)
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        for canary in CANARIES:
            if canary in text:
                self.hits.append(f"{canary!r} in {place}")

    def command(self, *args: str, prog: str = "lorch_tui.cli", expect: tuple[int, ...] = (0, 1)) -> str:
        """Run a face, search its stdout and stderr, return its stdout."""
        res = run_cli(*args, prog=prog, timeout=300)
        where = f"`{prog} {' '.join(args)}`"
        assert res.returncode in expect, f"{where} exited {res.returncode}: {res.stderr[-2000:]}"
        self.search(f"stdout of {where}", res.stdout)
        self.search(f"stderr of {where}", res.stderr)
        return res.stdout

    def on_a_terminal(self, *args: str) -> None:
        """Run a face with stdout and stderr on a pseudo-terminal (rich progress), search it."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", *args], cwd=REPO,
                                env=clean_env(COLUMNS="200", LINES="50", TERM="xterm-256color"),
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
        os.close(slave)
        out = bytearray()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the terminal's other end closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        os.close(master)
        assert proc.wait(timeout=60) in (0, 1), "the terminal run failed to start"
        self.search(f"the terminal (pty) output of `lorchestra {' '.join(args)}`",
                    ANSI.sub("", out.decode("utf-8", errors="replace")))

    def workspace(self, ws: Path) -> None:
        """Every file outside the PHI homes, and the state database table by table."""
        for path in sorted(p for p in ws.rglob("*") if p.is_file()):
            rel = path.relative_to(ws)
            if rel.parts[0] in PHI_HOMES:
                continue
            self.search(f"file {rel}", path.read_bytes())
        db = ws / "state" / "lorch.sqlite"
        assert db.is_file(), "the state database must exist, or this part proves nothing"
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert "runs" in tables and "tasks" in tables
            for table in tables:
                cols = [r[1] for r in con.execute(f"PRAGMA table_info('{table}')")]
                rows = con.execute(f"SELECT * FROM '{table}'").fetchall()
                if table in ("runs", "tasks"):
                    assert rows, f"the state database table {table} is empty: nothing was searched"
                for col, values in zip(cols, zip(*rows, strict=True), strict=True) if rows else ():
                    self.search(f"state database {table}.{col}", "\n".join(map(str, values)))
        finally:
            con.close()


def manifest_of(account: Path) -> dict[str, Any]:
    """The manifest of the run an account's LATEST names."""
    latest = orjson.loads((account / "LATEST.json").read_bytes())
    data: dict[str, Any] = orjson.loads(
        (account / f"dt={latest['dt']}" / f"run_id={latest['run_id']}" / "manifest.json").read_bytes())
    return data


def found_in(paths: list[Path], *, gz: bool = False) -> set[str]:
    """The canaries present in these files."""
    text = "".join((gzip.decompress(p.read_bytes()) if gz else p.read_bytes()).decode("utf-8", "replace")
                   for p in paths)
    return {c for c in CANARIES if c in text}


def screen_text(svg: str) -> str:
    """The visible text of a Textual SVG screenshot (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def dashboard_run(cfg: Path, proof: Proof) -> None:
    """Run everything from the dashboard with the real engine (R), and export the screens."""
    from lorch_tui.app import LorchApp

    umask = os.umask(0o077)  # the dashboard sets umask 077 in this (the test's) process
    try:
        app = LorchApp(load(cfg), watch=False)
        async with app.run_test(size=(200, 60)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("R")
            deadline = time.monotonic() + 300
            while not app.engine.busy and time.monotonic() < deadline and app.model.status != "running":
                await pilot.pause(0.05)
            while app.engine.busy and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert not app.engine.busy, "the dashboard's run did not end within 300 s"
            await pilot.pause(1.0)
            screen = screen_text(app.export_screenshot())
            visible = screen[screen.find("lorchestra ·"):]
            assert "graph-flood" in visible and "SCHEMA_MISS" in visible, f"the screen shows the run:\n{visible}"
            proof.search("the dashboard screen after its run (SVG)", screen)
            for n in range(4):  # walk the LATEST table: each account's run detail is shown
                await pilot.press("down")
                await pilot.pause(0.3)
                proof.search(f"the dashboard screen, account row {n + 2} (SVG)",
                             screen_text(app.export_screenshot()))
            await select_via_latest(pilot, "intake-files")
            await pilot.pause(0.5)
            shot = screen_text(app.export_screenshot())
            proof.search("the dashboard screen with the run detail of intake-files (SVG)", shot)
            assert "stream #" in shot and "contacts: " in shot, \
                "the run detail of intake-files shows its undeclared streams as placeholders:\n" + \
                shot[shot.find("lorchestra ·"):]
    finally:
        os.umask(umask)


@pytest.mark.timeout(900)
async def test_no_canary_leaves_the_phi_homes(tmp_path: Path) -> None:
    exs = extractors(tmp_path)
    wrong = [{"source": "sheets-wrong", "stream": s, "transform": "finance/qbo_invoice_to_invoice_v1",
              "max_rejects": 1000} for s in ("Clients", "Session_Log")]
    cfg = write_config(tmp_path, exs, stages={"extract": {"cancel_grace_s": 1},
                                              "canonize": {"mappings": demo_mappings() + wrong}},
                       clients={"sources": ["dataverse"], "own_addresses": ["*@practice.example.org"]})
    ws = tmp_path / "ws"
    c = str(cfg)
    proof = Proof()
    proof.command("run", "--config", c)
    proof.command("run", "--config", c, "--json")
    proof.on_a_terminal("run", "--config", c)
    proof.command("--no-ui", "--config", c, prog="lorch_tui.tui_main")
    proof.command("--no-ui", "--config", c, "--json", prog="lorch_tui.tui_main")
    proof.command("extract", "graph-flood", "--config", c, "--json")
    proof.command("extract", "qb-fails", "--config", c)
    await dashboard_run(cfg, proof)
    for args in (("status",), ("status", "--json", "--history", "10"), ("verify", "--all", "--deep"),
                 ("verify", "--json"), ("list", "extractors"), ("list", "mappings"), ("validate",),
                 ("list", "streams", "intake-files"), ("list", "streams", "intake-files", "--json")):
        proof.command(*args, "--config", c, expect=(0, 1, 2))
    proof.workspace(ws)

    # names from the data: the vault keeps them, and only --reveal prints them
    intake = ws / "vault" / "clinical" / "intakefiles" / "intake"
    kept = set(manifest_of(intake)["streams"])
    assert kept == {"contacts", INTAKE, NOTES}, kept
    in_parts = {msg["stream"] for p in intake.glob("dt=*/run_id=*/part-*.jsonl.gz")
                for msg in map(orjson.loads, gzip.decompress(p.read_bytes()).splitlines()) if "stream" in msg}
    assert in_parts == kept, "every record is kept under its real stream name"
    revealed = run_cli("list", "streams", "intake-files", "--reveal", "--config", c)
    assert revealed.returncode == 0 and INTAKE in revealed.stdout and CANARY_ADDRESS in revealed.stdout

    # not vacuous: PHI did flow, and lives where it may
    parts = sorted(ws.glob("vault/**/part-*.jsonl.gz"))
    assert found_in(parts, gz=True) == set(CANARIES), "every canary is in the vault's parts"
    assert found_in(sorted(ws.glob("vault/**/tap.stderr.log"))) == set(CANARIES), "and in tap stderr logs"
    canonical = sorted(p for p in (ws / "canonical").rglob("*.jsonl") if not p.name.endswith(".rejects.jsonl"))
    in_canonical = found_in(canonical)
    assert {"Zebulon Canarywhistle", "1911-11-11"} <= in_canonical, in_canonical
    assert found_in(sorted((ws / "canonical").rglob("*.rejects.jsonl"))), "rejected records keep their PHI"
    objects = sorted((ws / "vector-store" / "objects").rglob("*.json"))
    assert found_in(objects), "the index holds canonical documents"
    charts = sorted((ws / "clients").rglob("*.md"))
    assert "Zebulon Canarywhistle" in found_in(charts), "the client charts hold PHI (the project ran)"
    assert any("flood" in p.parent.name or p.stat().st_size > 2 << 20
               for p in ws.glob("vault/**/tap.stderr.log")), "the PHI flood reached the vault"
    assert len(proof.searched) > 40, proof.searched

    assert not proof.hits, "PHI left the workspace's PHI homes:\n  " + "\n  ".join(proof.hits)
