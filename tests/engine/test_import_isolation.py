"""``engine`` never imports Textual or ``lorch_tui``; the cron path (``--no-ui``) never loads Textual.

Checked twice: dynamically (import every engine module in a fresh interpreter, and run
``lorch-tui --no-ui`` for real) and statically (no import statement under engine/ names them).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import orjson

from tests.helpers import REPO, clean_env, tiny_tap

ENGINE = REPO / "engine"
FORBIDDEN = ("textual", "lorch_tui")

IMPORT_ALL = """\
import importlib, pkgutil, sys, orjson
import engine
names = ["engine"]
failed = []
def onerror(name):
    failed.append(name)
for info in pkgutil.walk_packages(engine.__path__, "engine.", onerror=onerror):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # running a package's __main__ would start it (e.g. a demo tap)
    importlib.import_module(info.name)
    names.append(info.name)
engine_textual = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "lorch_tui"))
import lorch_tui.cli, lorch_tui.tui_main
lorch_tui.cli.build_parser()
lorch_tui.tui_main.build_parser()
face_textual = sorted(m for m in sys.modules if m.split(".")[0] == "textual")
sys.stdout.write(orjson.dumps({"names": names, "failed": failed, "engine_textual": engine_textual,
                               "face_textual": face_textual}).decode())
"""


def test_importing_every_engine_module_loads_no_textual() -> None:
    res = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                         cwd=REPO, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    got = orjson.loads(res.stdout)
    assert got["failed"] == []
    names = set(got["names"])
    on_disk = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in ENGINE.rglob("*.py") if p.name != "__main__.py" and "__pycache__" not in p.parts
    }
    assert on_disk <= names, f"modules not imported: {sorted(on_disk - names)}"
    assert {"engine.config", "engine.config.load", "engine.events", "engine.run.runner", "engine.run.task",
            "engine.store.workspace", "engine.stages.extract", "engine.vault.writer", "engine.run.worker"} <= names
    if (ENGINE / "demo_taps").is_dir():
        assert "engine.demo_taps" in names
    assert got["engine_textual"] == [], "engine pulled in textual or lorch_tui"
    assert got["face_textual"] == [], "lorch_tui.cli / tui_main import textual at module level"


NO_UI_RUN = """\
import sys
from lorch_tui import tui_main
rc = tui_main.main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "textual")
print("TEXTUAL-MODULES:", len(loaded), file=sys.stderr)
sys.exit(rc)
"""


def test_no_ui_run_never_loads_textual(tmp_path: Path) -> None:
    tap = tiny_tap(tmp_path, records=5)
    res = subprocess.run([sys.executable, "-c", NO_UI_RUN, "--no-ui", "--config", str(tap.config)],
                         capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    assert "TEXTUAL-MODULES: 0" in res.stderr
    assert list(tap.account_dir.glob("dt=*/run_id=*")), "the --no-ui run really ran the extract"


def imported_modules(path: Path) -> list[str]:
    """Every module an import statement in ``path`` names (absolute or resolved relative)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append(node.module)
    return found


DYNAMIC = re.compile(r"""(import_module|__import__)\(\s*['"](textual|lorch_tui)\b""")


def test_no_engine_file_imports_textual_or_lorch_tui() -> None:
    files = [p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(files) > 10
    offenders: list[str] = []
    for path in files:
        for module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(REPO)}: import {module}")
        if DYNAMIC.search(path.read_text()):
            offenders.append(f"{path.relative_to(REPO)}: dynamic import of a forbidden package")
    assert offenders == []


def test_the_static_check_would_catch_an_offender(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from __future__ import annotations\nif True:\n    from textual.app import App\n"
                   "def f():\n    import lorch_tui.cli\n")
    assert [m for m in imported_modules(bad) if m.split(".")[0] in FORBIDDEN] == ["textual.app", "lorch_tui.cli"]
    assert DYNAMIC.search("importlib.import_module('textual.widgets')")
