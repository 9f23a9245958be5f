"""A chart folder's name is its client's name (PHI): no command that prints workspace paths
may print it (docs/security.md, "Chart folder names never reach the terminal").

One module-scoped `lorchestra run --demo` builds a small workspace with chart folders; each test
copies it, breaks something under `clients/` and runs the real CLI (`lorchestra run`, `run
--json`, `lorch-tui --no-ui`, `validate`, `validate --quick`, `validate --fix-permissions`,
`clean --stage project`) in subprocesses. Every client name, taken from the client tables and
from the chart folder names, must be missing from stdout and stderr, while the folder's id
suffix (and the hint that finds the folder by it) is there.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.clients.charts import FILES, is_chart_folder
from engine.store.shown import CHART_FILES, CHART_ID, shown_name, shown_path
from tests.helpers import clean_env, copy_workspace, run_cli

ENV = clean_env(LORCH_DEMO_RECORDS="20", COLUMNS="400")
INVENTED = "Able-Smith, Alice"
"""A client name planted by the tests themselves (beside the demo's): a chart-named symlink,
an `.aside-` folder the older fallback left, a folder a person made."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("charts") / "ws"
    res = run_cli("run", "--demo", "--workspace", str(ws), env=ENV, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return ws


copy = copy_workspace


def cli(ws: Path, *args: str, prog: str = "lorch_tui.cli") -> subprocess.CompletedProcess[str]:
    res = run_cli(*args, "--workspace", str(ws), env=ENV, prog=prog, timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def charts(ws: Path) -> list[Path]:
    found = sorted(p for p in (ws / "clients").iterdir() if is_chart_folder(p.name))
    assert len(found) >= 3, "the demo wrote too few chart folders for these tests"
    return found


def id_of(folder: Path) -> str:
    m = CHART_ID.search(folder.name)
    assert m is not None, folder
    return m.group(1)


def client_names(ws: Path) -> set[str]:
    """Every client's name as the client tables and the chart folders spell it, and each part
    of it (a family or given name alone is PHI too), plus the tests' invented one."""
    con = sqlite3.connect(f"file:{ws / 'vector-store' / 'index.sqlite'}?mode=ro", uri=True)
    rows = con.execute("SELECT name, sort_name, folder FROM clients").fetchall()
    con.close()
    assert len(rows) >= 3, rows
    names = {INVENTED}
    for name, sort_name, folder in rows:
        names |= {n for n in (name, sort_name, CHART_ID.sub("", folder or "")) if n}
    folders = {CHART_ID.sub("", p.name) for p in charts(ws)}
    assert folders <= names, "the folder names are the tables' names: the search is the right one"
    return names | {w for n in names for w in re.findall(r"[^\W\d_]{4,}", n)}


def assert_private(out: str, names: set[str]) -> None:
    leaked = sorted(n for n in names if n in out)
    assert not leaked, f"client names printed: {leaked}\n{out}"


def test_a_refused_run_shows_the_chart_folder_by_its_id(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    names = client_names(ws)
    folder = charts(ws)[0]
    cid = id_of(folder)
    os.chmod(folder, 0o755)
    faces = ((("run", "--demo"), "lorch_tui.cli"), (("run", "--demo", "--json"), "lorch_tui.cli"),
             (("--no-ui", "--demo"), "lorch_tui.tui_main"), (("--no-ui", "--demo", "--json"), "lorch_tui.tui_main"))
    for args, prog in faces:
        res = cli(ws, *args, prog=prog)
        out = res.stdout + res.stderr
        assert res.returncode == 4, (args, out)
        assert f"{ws}/clients/<client {cid}> (drwxr-xr-x)" in res.stderr, (args, out)
        assert f"grep {cid}" in res.stderr, (args, out)
        assert_private(out, names)
    os.chmod(folder, 0o700)

    # a symlink named like a chart, to a real chart folder: both ends masked
    (ws / "clients" / f"{INVENTED} (4d9a9cd2)").symlink_to(folder.name)
    res = cli(ws, "run", "--demo")
    assert res.returncode == 4, res.stdout + res.stderr
    assert f"clients/<client 4d9a9cd2> is a symlink to {ws}/clients/<client {cid}>" in res.stderr, res.stderr
    assert_private(res.stdout + res.stderr, names)


def test_validate_shows_chart_folders_by_id_and_fixes_the_real_paths(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    names = client_names(ws)
    loose_folder, loose_file_folder, target = charts(ws)[:3]
    loose_file = loose_file_folder / "measures.md"
    os.chmod(loose_folder, 0o755)
    os.chmod(loose_file, 0o644)
    link = ws / "clients" / f"{INVENTED} (4d9a9cd2)"
    link.symlink_to(target)
    handmade = ws / "clients" / f"{INVENTED} notes"
    handmade.mkdir(mode=0o755)
    os.chmod(handmade, 0o755)
    a, b, c = id_of(loose_folder), id_of(loose_file_folder), id_of(target)

    res = cli(ws, "validate")
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    for line in (f"FAIL {ws}/clients/<client {a}>: drwxr-xr-x, should be 0700",
                 f"FAIL {ws}/clients/<client {b}>/measures.md: -rw-r--r--, should be 0600",
                 f"{ws}/clients/<client 4d9a9cd2> is a symlink to {ws}/clients/<client {c}>",
                 f"FAIL {ws}/clients/<name hidden>: drwxr-xr-x, should be 0700",
                 "| grep "):
        assert line in res.stdout, (line, out)
    assert_private(out, names)

    res = cli(ws, "validate", "--quick")
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    assert f"{ws}/clients/<client {a}> (drwxr-xr-x)" in res.stdout, out
    assert f"{ws}/clients/<name hidden> (drwxr-xr-x)" in res.stdout, out
    assert "<client 4d9a9cd2> is a symlink" in res.stdout and "| grep " in res.stdout, out
    assert_private(out, names)

    res = cli(ws, "validate", "--fix-permissions")
    out = res.stdout + res.stderr
    assert res.returncode == 4, out  # the symlink is still there
    assert "tightened 3 path(s)" in res.stdout, out
    assert_private(out, names)
    assert stat.S_IMODE(loose_folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(loose_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(handmade.stat().st_mode) == 0o700

    link.unlink()
    handmade.rmdir()
    res = cli(ws, "validate")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_private(res.stdout + res.stderr, names)


def test_clean_counts_the_chart_folders_and_lists_no_name(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    names = client_names(ws)
    n = len(charts(ws))
    aside = ws / "clients" / f".aside-{INVENTED} (4d9a9cd2)"  # what the older fallback could leave
    aside.mkdir(mode=0o700)
    (aside / "client.md").write_text("x")
    handmade = ws / "clients" / f"{INVENTED} notes"
    handmade.mkdir(mode=0o700)

    res = cli(ws, "clean", "--stage", "project", "--dry-run")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"clients/: {n} chart folder(s), names hidden" in res.stdout, out
    assert "clients/.aside-<client 4d9a9cd2>  (1 file(s)" in res.stdout, out
    assert "clients/<name hidden>  (0 file(s)" in res.stdout, out
    assert f"of them {n} chart folder(s)" in res.stdout and "grep 4d9a9cd2" in res.stdout, out
    assert_private(out, names)
    assert len(charts(ws)) == n, "a dry run deletes nothing"

    res = cli(ws, "clean", "--stage", "project", "--yes")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert f"clients/: {n} chart folder(s)" in res.stdout and "deleted" in res.stdout, out
    assert_private(out, names)
    assert list((ws / "clients").iterdir()) == [], "clean deleted the real folders"


def undeletable(folder: Path) -> tuple[Callable[[], None], str]:
    """Make ``folder``'s files impossible to delete (0500, or immutable for root, who ignores
    modes); returns the undo and the errno's name."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o500)
        return lambda: os.chmod(folder, 0o700), "EACCES"
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root where chattr +i is not possible: nothing refuses a delete")
    return lambda: subprocess.run([chattr, "-i", str(folder)], check=True), "EPERM"


def test_a_chart_folder_clean_cannot_delete_is_named_by_its_id(built: Path, tmp_path: Path) -> None:
    ws = copy(built, tmp_path)
    names = client_names(ws)
    stuck = charts(ws)[1]
    undo, code = undeletable(stuck)
    try:
        res = cli(ws, "clean", "--stage", "project", "--yes")
    finally:
        undo()
    out = res.stdout + res.stderr
    assert res.returncode == 4, out
    assert f"permission denied ({code}) on {ws}/clients/<client {id_of(stuck)}>/" in res.stderr, out
    assert_private(out, names)
    assert stuck.is_dir(), "the folder it could not delete is still there"


def test_the_mask_matches_the_chart_folder_rule(built: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`engine.store` cannot import the client layer: its pattern must say what
    `is_chart_folder` says, and every file of a chart folder is one it shows."""
    samples = [p.name for p in charts(built)] + [
        "Doe, Jane (0123abcd)", "Doe (0123abc)", "Doe (0123ABCD)", "(0123abcd)", " (0123abcd)",
        ".hidden (0123abcd)", "Doe (0123abcd) ", "Unnamed (0123456789abcdef)",
        "Doe (0123456789abcdef0)", "Doe, Jane (0123abcd) copy", "x (0123abcd)"]
    for name in samples:
        masked = shown_name(name)
        assert masked.startswith("<client ") == is_chart_folder(name), (name, masked)
        if is_chart_folder(name):
            assert masked == f"<client {name.rsplit('(', 1)[1][:-1]}>"
        else:
            assert masked == "<name hidden>", (name, masked)
    assert shown_name("Doe (0123abcd)\n") == "<name hidden>"  # never made by the stage; still masked
    assert set(FILES) <= CHART_FILES
    assert {p.name for c in charts(built) for p in c.iterdir()} <= CHART_FILES
    for name in (".staging-12-345", ".trash-12-345", ".swap-12-345.json"):
        assert shown_name(name) == name
    assert shown_name(".aside-Doe, Jane (0123abcd)") == ".aside-<client 0123abcd>"
    assert shown_name("notes about Jane.txt", top=False) == "<name hidden>"

    root = tmp_path / "ws"
    folder = root / "clients" / "Doe, Jane (0123abcd)"
    assert shown_path(folder / "measures.md", root) == f"{root}/clients/<client 0123abcd>/measures.md"
    for other in (root / "canonical" / "gmail" / "acct.jsonl", root / "clients", root,
                  tmp_path / "clients" / "Doe, Jane (0123abcd)"):
        assert shown_path(other, root) == str(other), other
    monkeypatch.chdir(tmp_path)  # a relative workspace, as `--workspace ws` gives it to a walk
    assert shown_path("ws/clients/Doe, Jane (0123abcd)", Path("ws")) == "ws/clients/<client 0123abcd>"
