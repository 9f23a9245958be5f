"""Index objects are checked against their sha256 before anyone uses them.

A real pipeline (extract -> canonize -> index -> project over two small demo accounts, real
subprocesses) builds a workspace; then one object file is damaged on disk the way a bad
sector or a hand edit would: still valid JSON, other content. `query --json` must refuse
(exit 1, `OBJECT_CORRUPT`, the object's path and the repair command, nothing on stdout),
the query API must raise, the project stage must fail without replacing its tables, and
`run --stage index --force` must repair the object so the same query prints the canonical
document again. About 10 s.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.index.query import ObjectCorrupt, ObjectMissing, Query, Store
from engine.index.store import read_object
from engine.measures import step as measures_step
from tests.helpers import clean_env, demo_extractor, run_cli, write_config


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    res = run_cli(*args, "--config", str(cfg), env=clean_env(COLUMNS="200"), timeout=300)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def events(res: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def object_file(ws: Path, sha: str) -> Path:
    return ws / "vector-store" / "objects" / sha[:2] / sha[2:4] / f"{sha}.json"


def damage(path: Path) -> bytes:
    """Change one character inside a string of the JSON object; return the original bytes."""
    original = path.read_bytes()
    doc = orjson.loads(original)
    key = next(k for k, v in doc.items() if isinstance(v, str) and len(v) > 2 and k != "kind")
    doc[key] = doc[key][:-1] + ("X" if doc[key][-1] != "X" else "Y")
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n")
    return original


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Path, Path]:
    import yaml

    from tests.helpers import REPO

    mappings = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["stages"]["canonize"]["mappings"]
    cfg = write_config(tmp_path, [demo_extractor("dv", "dataverse", records=8, seed=3),
                                  demo_extractor("g1", "gmail", records=8, seed=3)],
                       stages={"canonize": {"mappings": mappings}, "index": {"vectors": False}},
                       clients={"sources": ["dataverse"]})
    res = cli(cfg, "run")
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp_path / "ws", cfg


def _rows(ws: Path, source: str) -> list[tuple[str, str]]:
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    try:
        return [(str(e), str(s)) for e, s in con.execute(
            "SELECT entity_id, sha256 FROM documents WHERE source = ? ORDER BY entity_id", (source,))]
    finally:
        con.close()


def _gmail_row(ws: Path) -> tuple[str, str, str]:
    """(entity id, sha256, a word of its title) of one indexed mail."""
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    try:
        entity, sha, title = con.execute(
            "SELECT entity_id, sha256, title FROM documents WHERE source = 'gmail' "
            "AND title IS NOT NULL ORDER BY entity_id LIMIT 1").fetchone()
    finally:
        con.close()
    word = max(re.findall(r"[A-Za-z]{3,}", title), key=len)
    return str(entity), str(sha), word


def test_a_damaged_object_is_refused_and_force_repairs_it(built: tuple[Path, Path]) -> None:
    ws, cfg = built
    entity, sha, word = _gmail_row(ws)
    path = object_file(ws, sha)
    before = cli(cfg, "query", "--source", "gmail", "--json", "--limit", "0")
    assert before.returncode == 0 and before.stdout
    original = damage(path)
    damaged = path.read_bytes()
    assert hashlib.sha256(damaged).hexdigest() != sha

    res = cli(cfg, "query", "--source", "gmail", "--json", "--limit", "0")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stdout == "", "nothing is printed, not even the intact documents"
    assert "OBJECT_CORRUPT" in res.stderr and str(path) in res.stderr.replace("\n", "")
    assert "lorchestra run --stage index --force" in res.stderr.replace("\n  ", " ")
    assert damaged.decode() not in res.stderr
    # the table view prints no content and still works
    assert cli(cfg, "query", "--source", "gmail").returncode == 0
    # ranked queries read through the same check
    ranked = cli(cfg, "query", "--source", "gmail", "--text", word, "--words-only", "--json", "--limit", "0")
    assert ranked.returncode == 1, ranked.stdout + ranked.stderr
    assert "OBJECT_CORRUPT" in ranked.stderr and ranked.stdout == ""

    with Store.open(ws) as store:
        [doc] = store.get(entity, source="gmail")
        with pytest.raises(ObjectCorrupt) as caught:
            store.document_bytes(doc)
        assert caught.value.code == "OBJECT_CORRUPT" and caught.value.path == str(path)
        with pytest.raises(ObjectCorrupt):
            store.document(doc)
        others = [d for d in store.find(Query(source="dataverse", limit=None))]
        assert all(store.document_bytes(d) for d in others)

    # a forced index run also restores an object that is gone altogether
    _e2, other_sha = next((e, s) for e, s in _rows(ws, "dataverse"))
    other = object_file(ws, other_sha)
    other_bytes = other.read_bytes()
    other.unlink()
    fixed = cli(cfg, "run", "--stage", "index", "--force")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert path.read_bytes() == original and other.read_bytes() == other_bytes
    assert other.stat().st_mode & 0o777 == 0o600
    after = cli(cfg, "query", "--source", "gmail", "--json", "--limit", "0")
    assert after.returncode == 0 and after.stdout == before.stdout


def test_the_project_stage_fails_on_a_damaged_object_and_keeps_its_tables(built: tuple[Path, Path]) -> None:
    ws, cfg = built
    _entity, sha, _word = _gmail_row(ws)
    db = ws / "vector-store" / "index.sqlite"
    con = sqlite3.connect(db)
    tables_before = con.execute("SELECT * FROM client_links ORDER BY 1, 2, 3, 4, 5").fetchall()
    con.close()
    # The project stage reads an account's canonical file when it is the one indexed (each
    # line checked by its sha256); make it read the objects instead, as after a failed index.
    meta = ws / "canonical" / "gmail" / "g1.meta.json"
    provenance = orjson.loads(meta.read_bytes())
    provenance["output"]["sha256"] = "0" * 64
    meta.write_bytes(orjson.dumps(provenance))
    damage(object_file(ws, sha))

    res = cli(cfg, "run", "--stage", "project", "--force", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    [done] = [e for e in events(res) if e["type"] == "task_finished" and e["stage"] == "project"]
    assert done["status"] == "failed" and done["error_code"] == "OBJECT_CORRUPT"
    detail = Path(done["detail_path"])
    assert detail.is_relative_to(ws) and detail.stat().st_mode & 0o777 == 0o600
    text = detail.read_text()
    assert str(object_file(ws, sha)) in text and "--stage index --force" in text
    con = sqlite3.connect(db)
    assert con.execute("SELECT * FROM client_links ORDER BY 1, 2, 3, 4, 5").fetchall() == tables_before
    con.close()


def test_read_object_checks_the_name(tmp_path: Path) -> None:
    data = b'{"kind":"form_response","answers":[]}\n'
    sha = hashlib.sha256(data).hexdigest()
    path = object_file(tmp_path, sha)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    objects = tmp_path / "vector-store" / "objects"
    assert read_object(objects, sha) == data
    assert measures_step._read(str(objects), sha) == orjson.loads(data)
    path.write_bytes(data.replace(b"[]", b"[1]"))
    with pytest.raises(ObjectCorrupt):
        read_object(objects, sha)
    with pytest.raises(ObjectCorrupt):  # the measures step never scores a damaged response
        measures_step._read(str(objects), sha)
    path.unlink()
    with pytest.raises(ObjectMissing):
        read_object(objects, sha)
    assert measures_step._read(str(objects), sha) == {}
