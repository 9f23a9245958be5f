"""The run-start permission check does not ``lstat`` the vault's older days and runs (issue 18:
five years of nightly runs of 15 accounts are 27,000 ``dt=`` folders, 80 CPU-ms of every run
start; now 13). They are listed, so a symlink or a special file among them still refuses the
run; their modes are left to the full ``lorchestra validate``, like the index's object files
(docs/security.md). Nor does it descend into the chart folders (2,000 clients: 12,000 paths,
60-70 CPU-ms; now 6): each chart folder is checked, its files are left to ``validate``.
Real folders; the ``lstat`` calls are counted through ``os.scandir``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store.workspace import loose_permissions, run_start_problems


def vault(root: Path, days: int) -> Path:
    """A workspace whose one account has ``days`` nightly runs; LATEST names the newest."""
    os.umask(0o077)
    acct = root / "vault" / "email" / "gmail" / "box"
    for d in range(days):
        run = acct / f"dt=2021-01-{d:04d}" / f"run_id=2021{d:04d}T020000Z"
        run.mkdir(parents=True)
        (run / "manifest.json").write_text("{}")
    (acct / "LATEST.json").write_text(json.dumps({"dt": f"2021-01-{days - 1:04d}",
                                                  "run_id": f"2021{days - 1:04d}T020000Z"}))
    (root / "state").mkdir()
    return acct


class Counted:
    """An ``os.DirEntry`` whose ``stat`` calls are counted."""

    def __init__(self, entry: os.DirEntry[str], calls: list[str]) -> None:
        self._entry, self._calls = entry, calls
        self.name, self.path = entry.name, entry.path

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        self._calls.append(self.path)
        return self._entry.stat(follow_symlinks=follow_symlinks)

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()


def stats_of_a_run_start(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    calls: list[str] = []
    real = os.scandir

    def scandir(path: Any) -> Iterator[Counted]:
        with real(path) as it:
            return iter([Counted(e, calls) for e in it])

    with monkeypatch.context() as m:
        m.setattr(os, "scandir", scandir)
        found = run_start_problems(root)
    return found, calls


def test_older_days_are_not_stat_ed_so_the_cost_does_not_grow_with_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = []
    for days in (30, 300):
        root = tmp_path / f"ws{days}"
        vault(root, days)
        found, calls = stats_of_a_run_start(root, monkeypatch)
        assert found == ([], [], [])
        assert any(c.endswith("manifest.json") for c in calls), "the LATEST run is still checked"
        counts.append(len(calls))
    assert counts[0] == counts[1], counts


def test_a_loose_older_day_is_left_to_validate_but_a_symlink_there_refuses(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    acct = vault(root, 5)
    old_day, old_run = acct / "dt=2021-01-0001", acct / "dt=2021-01-0001" / "run_id=20210001T020000Z"
    for loose in (old_day, old_run, old_run / "manifest.json"):
        os.chmod(loose, 0o755 if loose.is_dir() else 0o644)
        assert run_start_problems(root) == ([], [], [])
        assert [p.split(" (")[0] for p in loose_permissions(root)] == [str(loose)]  # the full walk
        os.chmod(loose, 0o700 if loose.is_dir() else 0o600)
    newest_day = acct / "dt=2021-01-0004"
    os.chmod(newest_day, 0o755)  # the day of the LATEST run: still checked at run start
    assert [p.split(" (")[0] for p in run_start_problems(root)[0]] == [str(newest_day)]
    os.chmod(newest_day, 0o700)
    (acct / "dt=1999-01-01").symlink_to(tmp_path)
    os.mkfifo(acct / "dt=1999-01-02")
    _loose, links, special = run_start_problems(root)
    assert [p.split(" is ")[0] for p in links] == [str(acct / "dt=1999-01-01")]
    assert [p.split(" is ")[0] for p in special] == [str(acct / "dt=1999-01-02")]


def charts(root: Path, clients: int) -> Path:
    """A workspace with ``clients`` chart folders of five files each (as the project stage writes)."""
    os.umask(0o077)
    (root / "state").mkdir(parents=True)
    for i in range(clients):
        folder = root / "clients" / f"Doe, Jane ({i:08x})"
        folder.mkdir(parents=True)
        for name in ("client.md", "timeline.md", "sessions.md", "billing.md", "measures.md"):
            (folder / name).write_text("x")
    return root / "clients"


def test_chart_files_are_not_stat_ed_at_a_run_start_only_the_chart_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = []
    for clients in (20, 200):
        root = tmp_path / f"ws{clients}"
        charts(root, clients)
        found, calls = stats_of_a_run_start(root, monkeypatch)
        assert found == ([], [], [])
        assert not [c for c in calls if c.endswith(".md")]
        counts.append(len(calls))
    assert counts[1] - counts[0] == 180, counts  # one lstat per chart folder, none per file


def test_a_loose_chart_file_is_left_to_validate_but_a_loose_chart_folder_refuses(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    folder = charts(root, 3) / "Doe, Jane (00000001)"
    os.chmod(folder / "timeline.md", 0o644)
    assert run_start_problems(root) == ([], [], [])
    assert [p.rsplit(" (", 1)[0] for p in loose_permissions(root)] == [str(folder / "timeline.md")]
    os.chmod(folder / "timeline.md", 0o600)
    for loose in (folder, folder.parent):
        os.chmod(loose, 0o755)
        assert [p.rsplit(" (", 1)[0] for p in run_start_problems(root)[0]] == [str(loose)]
        os.chmod(loose, 0o700)
    (folder.parent / "Elsewhere").symlink_to(tmp_path)
    assert [p.split(" is ")[0] for p in run_start_problems(root)[1]] == [str(folder.parent / "Elsewhere")]
