"""The chart-folder swap without renameat2 (the fallback) is crash-safe: SIGKILL at every step.

A real subprocess replaces one chart folder through ``engine.clients.folders`` with the
exchange forced unavailable (``_exchange`` returns False, as on a kernel or file system
without ``RENAME_EXCHANGE``) and SIGKILLs itself just before its Nth file-system step
(``os.replace``, ``rename``, ``link``, ``unlink``, ``rmdir``, ``mkdir``, ``fsync``), for
every N until a run completes. After each kill, before any repair, the folder is there
(never missing) and every file in it is whole (the old or the new version of that file);
after the next writer's ``recover`` it is exactly the old folder (killed before the swap's
journal was committed) or exactly the new one (after), with no hidden leftovers. The run
must also have met every kind of instant: before the commit, after it with a mix of files
on disk, and after the end. Under a
second per kill point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.clients import folders
from tests.helpers import REPO, clean_env

NAME = "Doe, Jane (01234567)"
OLD = {"client.md": "old card\n", "timeline.md": "old timeline\n", "billing.md": "same bills\n",
       "sessions.md": "old sessions (gone in the new folder)\n"}
NEW = {"client.md": "new card\n", "timeline.md": "new timeline\n", "billing.md": "same bills\n",
       "measures.md": "new measures\n"}
KILLED = -9

SCRIPT = r"""
import json, os, signal, sys
from pathlib import Path
from engine.clients import folders

folders._exchange = lambda a, b: False  # no renameat2 here: the fallback
root, name, at, new = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
calls = [0]

def wrap(fn):
    real = getattr(os, fn)

    def step(*args, **kwargs):
        calls[0] += 1
        if calls[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(os, fn, step)

for fn in ("replace", "rename", "link", "unlink", "rmdir", "mkdir", "fsync"):
    wrap(fn)
folders.replace_folder(root, name, {k: v.encode() for k, v in new.items()})
print(calls[0])
"""


def files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_the_fallback_swap_never_loses_the_folder(tmp_path: Path) -> None:
    outcomes: dict[str, int] = {"old": 0, "new": 0, "mixed before recovery": 0}
    at = 0
    while True:
        at += 1
        assert at < 200, "the swap never completed"
        root = tmp_path / f"r{at}" / "clients"
        root.mkdir(parents=True, mode=0o700)
        folders.replace_folder(root, NAME, {k: v.encode() for k, v in OLD.items()})
        res = subprocess.run([sys.executable, "-c", SCRIPT, str(root), NAME, str(at), json.dumps(NEW)],
                             cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
        if res.returncode == 0:
            assert files(root / NAME) == NEW and os.listdir(root) == [NAME]
            break
        assert res.returncode == KILLED, res.stderr
        # Before any repair: the folder is there and each file is a whole version of itself.
        folder = root / NAME
        assert folder.is_dir(), f"step {at}: the folder is missing after a kill"
        seen = files(folder)
        for fname, text in seen.items():
            assert text in (OLD.get(fname), NEW.get(fname)), f"step {at}: {fname} is not whole"
        if seen not in (OLD, NEW):
            outcomes["mixed before recovery"] += 1
        committed = any(n.startswith(folders.JOURNAL) and n.endswith(".json") for n in os.listdir(root))
        folders.recover(root)  # what the next project run does first
        after = files(folder)
        # the journal committed the new folder (or the swap had finished, journal removed)
        expected = NEW if committed or seen == NEW else OLD
        assert after == expected, f"step {at}: {sorted(after)} after recovery"
        assert os.listdir(root) == [NAME], f"step {at}: leftovers {os.listdir(root)}"
        outcomes["new" if after == NEW else "old"] += 1
    print(f"\nfallback swap: {at - 1} kill points, outcomes {outcomes}")
    assert outcomes["old"] and outcomes["new"] and outcomes["mixed before recovery"], outcomes


def test_recover_ignores_a_journal_it_did_not_write(tmp_path: Path) -> None:
    root = tmp_path / "clients"
    root.mkdir(mode=0o700)
    folders.replace_folder(root, NAME, {k: v.encode() for k, v in OLD.items()})
    (root / f"{folders.JOURNAL}x.json").write_text(json.dumps(
        {"format": 1, "folder": "../escape", "staging": ".staging-x", "files": ["a"]}))
    (root / f".{folders.JOURNAL}y.json.tmp-1").write_text("{")
    folders.recover(root)
    assert os.listdir(root) == [NAME] and files(root / NAME) == OLD


def test_a_file_at_a_chart_folder_s_place_is_replaced_and_leaves_nothing(tmp_path: Path) -> None:
    """A regular file where a chart folder goes was exchanged into the staging name, where
    `rmtree` refused it (WRITE_FAILED) and `recover` (ignoring errors) kept it for ever."""
    root = tmp_path / "clients"
    root.mkdir(mode=0o700)
    (root / NAME).write_text("someone's file\n")
    (root / ".staging-1-2").write_text("left by an older version\n")
    folders.recover(root)
    assert sorted(os.listdir(root)) == [NAME]
    folders.replace_folder(root, NAME, {k: v.encode() for k, v in NEW.items()})
    assert os.listdir(root) == [NAME] and files(root / NAME) == NEW
