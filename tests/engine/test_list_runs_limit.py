"""``list_runs(limit=N)`` reads only the newest date folders (the dashboard's scan must not
grow with an account's history) and returns exactly the newest N runs."""

from __future__ import annotations

from pathlib import Path

from engine.vault.layout import list_runs
from engine.vault.storage import LOCAL


class CountingStorage:
    """The local storage, counting the folders listed."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def list(self, path: Path) -> list[str]:
        self.listed.append(path.name)
        return LOCAL.list(path)

    def is_dir(self, path: Path) -> bool:
        return LOCAL.is_dir(path)


def history(acct: Path, days: int, per_day: int) -> None:
    """``days`` date folders of ``per_day`` runs each, plus what list_runs must skip."""
    for d in range(days):
        day = f"2025-{1 + d // 28:02d}-{1 + d % 28:02d}"
        for k in range(per_day):
            (acct / f"dt={day}" / f"run_id={day.replace('-', '')}T{k:02d}0000Z").mkdir(parents=True)
        (acct / f"dt={day}" / f".run_id={day.replace('-', '')}T230000Z.partial").mkdir()
    (acct / "LATEST.json").write_text("{}")
    (acct / "dt=9999-99-99-not-a-date").mkdir()


def test_the_newest_n_runs_are_the_same_as_from_the_whole_list(tmp_path: Path) -> None:
    acct = tmp_path / "acct"
    history(acct, days=40, per_day=3)
    every = list_runs(acct)
    assert len(every) == 120
    assert [r.run_id for r in every] == sorted((r.run_id for r in every), reverse=True)
    for n in (1, 2, 3, 4, 30, 119, 120, 500):
        assert list_runs(acct, limit=n) == every[:n], n


def test_a_limit_lists_only_the_newest_date_folders(tmp_path: Path) -> None:
    acct = tmp_path / "acct"
    history(acct, days=60, per_day=2)
    storage = CountingStorage()
    got = list_runs(acct, storage, limit=5)  # type: ignore[arg-type]
    assert len(got) == 5
    assert storage.listed[0] == "acct"
    assert len(storage.listed) == 1 + 3  # the account, then three days of two runs each
    storage.listed.clear()
    list_runs(acct, storage)  # type: ignore[arg-type]
    assert len(storage.listed) == 1 + 60
