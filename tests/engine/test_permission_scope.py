"""What the run-start permission check covers, and what only `lorchestra validate` covers (issue 18).

A run start must answer in well under a second on a workspace of a million index objects, so
it does not walk every object file nor the vault runs that LATEST no longer names
(docs/security.md); a full `validate` still does. Everything here goes through real runs of
the real CLI on a real workspace; test_security.py and test_workspace.py prove the rest
(every folder, and every file a run writes or reads, still refuses a run with exit 4).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.store.workspace import run_start_problems
from tests.helpers import account_dir, demo_extractor, demo_mappings, run_cli, runs_of, write_config


def test_run_start_skips_history_that_validate_still_walks(tmp_path: Path) -> None:
    ex = demo_extractor("mail", records=8)
    cfg = write_config(tmp_path, [ex], stages={"canonize": {"mappings": demo_mappings()},
                                               "index": {"vectors": False}})
    ws = tmp_path / "ws"
    assert run_cli("run", "--config", str(cfg)).returncode == 0
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0
    old_run, latest_run = runs_of(account_dir(ws, ex))
    objects = sorted((ws / "vector-store" / "objects").glob("*/*/*.json"))
    assert objects, "the index wrote no object files: the check would be vacuous"
    obj, fanout = objects[0], objects[0].parent.parent

    # history a run neither writes nor reads: only the full validate sees it
    for loose in (obj, old_run / "manifest.json"):
        os.chmod(loose, 0o644)
        assert run_start_problems(ws) == ([], [], [])
        res = run_cli("validate", "--quick", "--config", str(cfg))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "validate" in res.stdout, "the quick checklist says what it left to the full validate"
        res = run_cli("validate", "--config", str(cfg))
        assert res.returncode == 4 and str(loose) in res.stdout, res.stdout
        os.chmod(loose, 0o600)

    # the object store's first fan-out level and the LATEST run are checked at run start
    for loose, mode in ((fanout, 0o755), (latest_run / "manifest.json", 0o644)):
        os.chmod(loose, mode)
        loose_paths, links, special = run_start_problems(ws)
        assert links == special == [] and [p.split(" (")[0] for p in loose_paths] == [str(loose)]
        res = run_cli("extract", "mail", "--config", str(cfg))
        assert res.returncode == 4 and str(loose) in res.stderr, res.stdout + res.stderr
        res = run_cli("validate", "--quick", "--config", str(cfg))
        assert res.returncode == 4 and str(loose) in res.stdout, res.stdout
        os.chmod(loose, 0o700 if loose.is_dir() else 0o600)
    assert len(runs_of(account_dir(ws, ex))) == 2, "refused runs wrote nothing"


def test_an_unreadable_latest_pointer_means_the_whole_account_is_walked(tmp_path: Path) -> None:
    ex = demo_extractor("mail", records=5)
    cfg = write_config(tmp_path, [ex])
    ws = tmp_path / "ws"
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0
    acct = account_dir(ws, ex)
    old_run = runs_of(acct)[0]
    os.chmod(old_run / "manifest.json", 0o644)
    assert run_start_problems(ws) == ([], [], [])
    (acct / "LATEST.json").write_bytes(b"{not json")
    loose, _, _ = run_start_problems(ws)
    assert [p.split(" (")[0] for p in loose] == [str(old_run / "manifest.json")]
