"""``lorchestra clean`` sizes what it will delete with one ``scandir`` per folder (issue 18: the
index's million object files made ``clean --all --dry-run`` cost 9 CPU-s); the figures are the
ones a plain ``os.walk`` gives, links never followed. Real files."""

from __future__ import annotations

import os
from pathlib import Path

from engine.ops.cleanup import _measure


def walked(path: Path) -> tuple[int, int]:
    """(files, bytes) the straightforward way, for comparison."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            size += os.lstat(os.path.join(dirpath, name)).st_size
            files += 1
    return files, size


def test_sizes_match_a_plain_walk_and_links_are_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "vector-store"
    for a in range(3):
        for b in range(4):
            folder = root / "objects" / f"{a:02x}" / f"{b:02x}"
            folder.mkdir(parents=True)
            for n in range(a + b):
                (folder / f"{n}.json").write_bytes(b"x" * (n * 10 + 1))
    (root / "index.sqlite").write_bytes(b"s" * 4096)
    (root / "empty").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"y" * 100_000)
    (root / "to-folder").symlink_to(outside)  # neither counted nor followed, as os.walk
    (root / "to-file").symlink_to(outside / "big")  # counted as the link itself
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    files, size = _measure(root)
    assert (files, size) == walked(root)
    assert files == sum(a + b for a in range(3) for b in range(4)) + 3
    assert size < 100_000
    assert _measure(root / "index.sqlite") == (1, 4096)
    assert _measure(root / "to-folder")[0] == 1
