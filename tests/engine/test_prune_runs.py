"""`lorchestra clean --older-than DAYS`: old vault runs go, what a stage reads stays.

Real extracts by a real tap into a real vault; the CLI in a subprocess.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from engine.ops.prune import old_run_targets
from engine.store.workspace import Workspace
from tests.helpers import TINY_TAP_SOURCE, latest, run_cli, runs_of


def _config(tmp: Path) -> Path:
    script = tmp / "tap.py"
    script.write_text(TINY_TAP_SOURCE)
    ex = {"domain": "d", "source": "s", "kind": "singer", "command": [sys.executable, str(script), "3"]}
    cfg = tmp / "p.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp / "ws"),
                                   "extractors": [{**ex, "name": "full", "account": "full"},
                                                  {**ex, "name": "inc", "account": "inc", "incremental": True}]}))
    return cfg


def test_old_runs_but_never_latest_or_its_incremental_chain(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    for _ in range(3):
        assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0
    ws = Workspace(tmp_path / "ws")
    full, inc = ws.vault / "d" / "s" / "full", ws.vault / "d" / "s" / "inc"
    assert len(runs_of(full)) == 3 and len(runs_of(inc)) == 3
    later = datetime.now(UTC) + timedelta(days=10)
    gone = {t.path for t in old_run_targets(ws, 5, now=later)}
    latest_full = full / f"dt={latest(full)['dt']}" / f"run_id={latest(full)['run_id']}"  # type: ignore[index]
    assert gone == set(runs_of(full)) - {latest_full}, "the incremental account's runs are all its chain"
    assert old_run_targets(ws, 30, now=later) == []
    (inc / "LATEST.json").write_text("{")  # unreadable: nothing of the account can be told apart
    assert {t.path.parent.parent for t in old_run_targets(ws, 5, now=later)} == {full}


def test_clean_older_than_deletes_them_and_the_account_still_verifies(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    for _ in range(2):
        assert run_cli("run", "--stage", "extract", "--account", "full", "--config", str(cfg)).returncode == 0
    full = tmp_path / "ws" / "vault" / "d" / "s" / "full"
    old_run = runs_of(full)[0]
    assert old_run.name != f"run_id={latest(full)['run_id']}"  # type: ignore[index]
    aged = full / "dt=2020-01-01" / "run_id=20200101T000000Z"
    aged.parent.mkdir(mode=0o700)
    shutil.move(old_run, aged)
    dry = run_cli("clean", "--older-than", "30", "--dry-run", "--config", str(cfg))
    assert dry.returncode == 0 and "old runs" in dry.stdout and "dry run: nothing was deleted" in dry.stdout
    assert aged.is_dir()
    refused = run_cli("clean", "--older-than", "30", "--config", str(cfg))  # no terminal, no --yes
    assert refused.returncode == 2 and aged.is_dir()
    res = run_cli("clean", "--older-than", "30", "--yes", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert not aged.exists() and not aged.parent.exists() and len(runs_of(full)) == 1
    assert run_cli("verify", "--config", str(cfg)).returncode == 0
    assert run_cli("clean", "--older-than", "0", "--config", str(cfg)).returncode == 2  # at least a day


def test_all_yes_with_older_than_keeps_the_vault_but_deletes_the_old_runs(tmp_path: Path) -> None:
    """`--all --older-than 30 --yes` dropped the old runs silently (--all --yes keeps the vault),
    and the warning counted run folders as accounts and spoke of "every extract"."""
    cfg = _config(tmp_path)
    for _ in range(2):
        assert run_cli("run", "--stage", "extract", "--account", "full", "--config", str(cfg)).returncode == 0
    full = tmp_path / "ws" / "vault" / "d" / "s" / "full"
    aged = full / "dt=2020-01-01" / "run_id=20200101T000000Z"
    aged.parent.mkdir(mode=0o700)
    shutil.move(runs_of(full)[0], aged)
    dry = run_cli("clean", "--older-than", "30", "--dry-run", "--config", str(cfg))
    assert "this deletes 1 old vault run(s) of 1 account(s)" in dry.stdout and "every extract" not in dry.stdout
    res = run_cli("clean", "--all", "--older-than", "30", "--yes", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert not aged.exists() and len(runs_of(full)) == 1 and (full / "LATEST.json").is_file()


def test_older_than_never_offers_the_whole_vault(tmp_path: Path) -> None:
    """`--all --older-than 30` on a terminal asked to type 'vault' for every account folder, and
    typing it deleted LATEST too; the listing counted the old runs twice."""
    cfg = _config(tmp_path)
    assert run_cli("run", "--stage", "extract", "--account", "full", "--config", str(cfg)).returncode == 0
    dry = run_cli("clean", "--all", "--older-than", "30", "--dry-run", "--config", str(cfg))
    assert dry.returncode == 0 and "account folder(s): the raw audit trail" not in dry.stdout, dry.stdout
    assert "delete extract" not in dry.stdout
    both = run_cli("clean", "--stage", "extract", "--older-than", "30", "--dry-run", "--config", str(cfg))
    assert both.returncode == 2 and "choose one" in both.stderr
