"""`clean` and `validate --fix-permissions` never act outside the workspace.

A reviewer's attacks, as the user's own mistakes would make them: a stage folder symlinked
elsewhere, the lock file symlinked to a dotfile, a workspace path that is a symlink to a
shared folder, and `--workspace` pointed at a folder that never was a workspace. Real CLI in
subprocesses, real files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import run_cli, tiny_tap


def _built(tmp_path: Path) -> tuple[Path, Path]:
    tap = tiny_tap(tmp_path, 2)
    assert run_cli("run", "--config", str(tap.config), "--stage", "extract").returncode == 0
    return tap.config, tap.workspace


def test_clean_refuses_a_symlinked_stage_folder_and_deletes_nothing_outside(tmp_path: Path) -> None:
    cfg, ws = _built(tmp_path)
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine\n")
    if (ws / "canonical").exists():
        shutil.rmtree(ws / "canonical")
    (ws / "canonical").symlink_to(precious)
    res = run_cli("clean", "--all", "--yes", "--config", str(cfg))
    assert res.returncode == 4, res.stdout + res.stderr
    assert (precious / "notes.txt").read_text() == "mine\n"


def test_a_symlinked_lock_file_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    cfg, ws = _built(tmp_path)
    dotfile = tmp_path / "bashrc"
    dotfile.write_text("export PATH=...\n")
    (ws / "state" / "lock").unlink()
    (ws / "state" / "lock").symlink_to(dotfile)
    for args in (("clean", "--partials", "--yes"), ("run", "--stage", "extract")):
        res = run_cli(*args, "--config", str(cfg))
        assert res.returncode == 4, (args, res.stdout + res.stderr)
    assert dotfile.read_text() == "export PATH=...\n"


def test_clean_refuses_a_folder_that_never_was_a_workspace(tmp_path: Path) -> None:
    cfg, _ws = _built(tmp_path)
    mine = tmp_path / "notaws"
    (mine / "clients" / "Doe, Jane").mkdir(parents=True)
    (mine / "clients" / "Doe, Jane" / "letter.txt").write_text("mine\n")
    res = run_cli("clean", "--all", "--yes", "--workspace", str(mine), "--config", str(cfg))
    assert res.returncode == 2 and "does not look like a lorchestra workspace" in res.stderr, res.stdout + res.stderr
    assert (mine / "clients" / "Doe, Jane" / "letter.txt").is_file() and not (mine / "state").exists()


def test_fix_permissions_never_follows_a_symlinked_workspace(tmp_path: Path) -> None:
    cfg, ws = _built(tmp_path)
    shared = tmp_path / "shared"
    (shared / "team").mkdir(parents=True)
    (shared / "team").chmod(0o755)
    (shared / "team" / "tool.sh").write_text("#!/bin/sh\n")
    (shared / "team" / "tool.sh").chmod(0o755)
    link = tmp_path / "wsl"
    link.symlink_to(shared)
    res = run_cli("validate", "--workspace", str(link), "--fix-permissions", "--config", str(cfg))
    assert res.returncode == 4, res.stdout + res.stderr
    assert (shared / "team").stat().st_mode & 0o777 == 0o755
    assert (shared / "team" / "tool.sh").stat().st_mode & 0o777 == 0o755
    shutil.rmtree(shared)


def test_validate_warns_of_a_config_holding_env_secrets_that_others_can_read(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                   "extractors": [{"name": "a", "domain": "d", "source": "s", "account": "a",
                                                   "kind": "singer", "command": ["/bin/true"],
                                                   "env": {"TAP_TOKEN": "SEKRET-1"}}]}))
    cfg.chmod(0o644)
    res = run_cli("validate", "--quick", "--skip-permissions", "--config", str(cfg))
    assert "holds `env` values (a: tokens, often) and is readable by others" in res.stdout, res.stdout
    assert "SEKRET" not in res.stdout + res.stderr
    cfg.chmod(0o600)
    assert "holds `env` values" not in run_cli("validate", "--quick", "--skip-permissions", "--config",
                                               str(cfg)).stdout


def test_fix_permissions_still_tightens_a_workspace_with_a_stray_symlink_inside(tmp_path: Path) -> None:
    """The guard against a symlinked workspace path must not turn the fix off for a link inside
    (which the walk leaves alone): `canonical/` stayed 0755, PHI readable by others."""
    cfg, ws = _built(tmp_path)
    (ws / "diagnostics" / "stray-link").symlink_to("/etc/hostname")
    (ws / "vault").chmod(0o755)
    run_cli("validate", "--quick", "--fix-permissions", "--config", str(cfg))
    assert (ws / "vault").stat().st_mode & 0o777 == 0o700


def test_the_lock_file_is_never_written_through_a_link_or_into_a_fifo(tmp_path: Path) -> None:
    """Past the run-start check (--skip-permissions), a `state/lock` symlinked to a dotfile was
    truncated and written; a hard-linked one too; a FIFO hung the open."""
    import os

    cfg, ws = _built(tmp_path)
    lock = ws / "state" / "lock"
    dotfile = tmp_path / "bashrc"
    for make in ("symlink", "hardlink", "fifo"):
        dotfile.write_text("export PATH=...\n")
        lock.unlink()
        if make == "symlink":
            lock.symlink_to(dotfile)
        elif make == "hardlink":
            os.link(dotfile, lock)
        else:
            os.mkfifo(lock, 0o600)
        res = run_cli("run", "--stage", "extract", "--skip-permissions", "--config", str(cfg), timeout=60)
        assert res.returncode == 4 and "is not a plain file of its own" in res.stderr, (make, res.stderr)
        assert dotfile.read_text() == "export PATH=...\n", make
    lock.unlink()
    assert run_cli("run", "--stage", "extract", "--config", str(cfg)).returncode == 0  # created again


def test_validate_warns_of_a_workspace_inside_a_git_checkout_unless_ignored(tmp_path: Path) -> None:
    """`workspace: phi-data` beside a config in a checkout put every record where `git add -A`
    commits it, and validate said all checks passed."""
    import subprocess

    repo = tmp_path / "clone"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    cfg, _ws = _built(tmp_path)
    res = run_cli("validate", "--quick", "--skip-permissions", "--workspace", str(repo / "phi-data"),
                  "--config", str(cfg))
    assert f"is inside the git work tree {repo}" in res.stdout, res.stdout
    (repo / ".gitignore").write_text("phi-data/\n")
    res = run_cli("validate", "--quick", "--skip-permissions", "--workspace", str(repo / "phi-data"),
                  "--config", str(cfg))
    assert "git work tree" not in res.stdout


def test_validate_warns_of_a_short_client_id_in_the_overrides_without_echoing_it(tmp_path: Path) -> None:
    import yaml

    cfg, _ws = _built(tmp_path)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("version: 1\nlink:\n  - {document: 'a:b:c:d', client: 78ea5078}\n"
                         "merge:\n  - [Jane Qzxc Doe, 0123456789abcdef]\n")
    overrides.chmod(0o600)
    doc = yaml.safe_load(cfg.read_text())
    doc["clients"] = {"sources": ["tiny"], "overrides": str(overrides)}
    cfg.write_text(yaml.safe_dump(doc))
    res = run_cli("validate", "--quick", "--skip-permissions", "--config", str(cfg))
    assert "2 client id(s) are not 16 hex digits" in res.stdout, res.stdout
    assert "Qzxc" not in res.stdout + res.stderr and "78ea5078" not in res.stdout


def test_validate_tells_a_tap_without_execute_permission_from_a_missing_one(tmp_path: Path) -> None:
    import yaml

    tap = tmp_path / "tap.py"
    tap.write_text("print()\n")
    tap.chmod(0o600)
    cfg = tmp_path / "p.yaml"
    ex = {"domain": "d", "source": "s", "kind": "singer"}
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                   "extractors": [{**ex, "name": "a", "account": "a", "command": [str(tap)]},
                                                  {**ex, "name": "b", "account": "b",
                                                   "command": [str(tmp_path / "gone.py")]}]}))
    res = run_cli("validate", "--quick", "--skip-permissions", "--config", str(cfg))
    said = " ".join(res.stdout.split())  # rich wraps long lines
    assert f"`chmod u+x {tap}`" in said and "(no such file)" in said, res.stdout
