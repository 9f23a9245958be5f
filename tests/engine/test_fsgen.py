"""engine.store.fsgen.GenerationStore on its own: the contract other writers (chart folders) rely on.

Crash behaviour is proven by the kill-at-every-step tests (test_crash.py, test_crash_steps.py);
these pin the API: publish, read together, mirrors, garbage collection, recovery, the legacy
generation 0, folders inside a generation, and a failed stage leaving nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.store.fsgen import GenerationMissing, GenerationStore


def _publish(store: GenerationStore, files: dict[str, bytes]) -> int:
    with store.stage() as gen:
        for name, data in files.items():
            gen.path(name).write_bytes(data)
        gen.commit()
        return gen.number


def test_publish_read_mirror_and_collect(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path, "acct", owned=("b.txt",))
    with pytest.raises(GenerationMissing):
        with store.open("a.txt"):
            pass
    assert _publish(store, {"a.txt": b"1", "b.txt": b"1"}) == 1
    assert _publish(store, {"a.txt": b"2"}) == 2
    with store.open("a.txt", "b.txt") as (gen, fh):
        assert gen.number == 2 and fh["a.txt"] is not None and fh["a.txt"].read() == b"2"
        assert fh["b.txt"] is None  # the new generation has no b.txt
    assert (tmp_path / "a.txt").read_bytes() == b"2" and not (tmp_path / "b.txt").exists()
    assert os.path.samestat((tmp_path / "a.txt").stat(), store.gen_folder(2).joinpath("a.txt").stat())
    assert _publish(store, {"a.txt": b"3"}) == 3
    assert sorted(p.name for p in store.root.iterdir()) == ["CURRENT", "g000002", "g000003"]
    assert store.mirrors_current()
    (tmp_path / "a.txt").unlink()
    assert not store.mirrors_current()
    assert store.recover() and store.mirrors_current()  # re-linked


def test_a_failed_stage_leaves_nothing_and_the_old_generation_current(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path, "acct")
    _publish(store, {"a.txt": b"old"})
    with pytest.raises(OSError), store.stage() as gen:
        gen.path("a.txt").write_bytes(b"half")
        raise OSError(28, "No space left on device")
    assert sorted(p.name for p in store.root.iterdir()) == ["CURRENT", "g000001"]
    with store.open("a.txt") as (_gen, fh):
        assert fh["a.txt"] is not None and fh["a.txt"].read() == b"old"


def test_recover_drops_partial_and_orphaned_generations(tmp_path: Path) -> None:
    store = GenerationStore(tmp_path, "acct")
    _publish(store, {"a.txt": b"1"})
    (store.root / ".g000002.partial").mkdir()
    (store.root / "g000003").mkdir()  # renamed, but the pointer never moved: a kill
    (store.root / ".CURRENT.tmp-123").write_bytes(b"{")
    assert store.recover()
    assert sorted(p.name for p in store.root.iterdir()) == ["CURRENT", "g000001"]
    assert store.current_number() == 1 and not store.recover()


def test_folders_without_mirrors_and_carry(tmp_path: Path) -> None:
    """The chart-folder use: a tree per generation, no plain names, unchanged files carried."""
    store = GenerationStore(tmp_path, "Doe, Jane (c1)", mirror=False)
    with store.stage() as gen:
        (gen.path("notes")).mkdir()
        (gen.path("notes") / "2024.md").write_text("one")
        gen.path("card.md").write_text("card")
        gen.commit()
    with store.stage() as gen:
        assert gen.carry("card.md") and not gen.carry("missing.md")
        (gen.path("notes")).mkdir()
        (gen.path("notes") / "2025.md").write_text("two")
        gen.commit()
    current = store.current()
    assert current is not None and current.number == 2
    assert (current.folder / "notes" / "2025.md").read_text() == "two"
    assert (current.folder / "card.md").read_text() == "card"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".Doe, Jane (c1).gen"]
    with pytest.raises(ValueError):
        with store.stage() as gen:
            gen.path("../escape")


def test_legacy_plain_files_read_as_generation_zero(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"legacy")
    store = GenerationStore(tmp_path, "acct", legacy=("a.txt",))
    with store.open("a.txt") as (gen, fh):
        assert gen.number == 0 and fh["a.txt"] is not None and fh["a.txt"].read() == b"legacy"
    assert _publish(store, {"a.txt": b"new"}) == 1
    assert (tmp_path / "a.txt").read_bytes() == b"new"
