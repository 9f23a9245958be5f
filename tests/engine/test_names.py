"""Names from the data: declared names are shown, others as keyed placeholders everywhere.

A real Singer tap (``tests/fixtures/taps/phi_names_tap.py``) names streams after a client's
intake file and uses PHI column headers as schema property names; the faces (validate,
list streams, the dashboard's scan) must show placeholders for them, the vault must keep
the real names, and ``list streams --reveal`` must print them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config.load import load
from engine.demo_taps.canary import CANARIES, CANARY_ADDRESS
from engine.names import (
    Namer,
    declared_fields,
    key_path,
    load_key,
    placeholder,
    schema_field_paths,
    stream_namer,
    transform_names,
)
from engine.store.workspace import Workspace
from lorch_tui.scan import scan
from tests.fixtures.taps.phi_names_tap import INTAKE, NOTES
from tests.helpers import REPO, clean_env, manifest, run_cli, runs_of, write_config

TAP = REPO / "tests" / "fixtures" / "taps" / "phi_names_tap.py"
TAG = r"\([0-9a-f]{6}\)"
GMAIL = {"source": "gmail", "stream": "messages", "transform": "email/gmail_to_canonical_v1"}


def names_extractor(tmp: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "intake-files", "domain": "clinical", "source": "intakefiles", "account": "intake",
            "kind": "singer", "command": [sys.executable, str(TAP)],
            "env": {"PHI_TAP_DIR": str(tmp / "tap-files"), "PYTHONPATH": str(REPO)}, **extra}


def cli(*args: str) -> Any:
    return run_cli(*args, env=clean_env(COLUMNS="250"))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after one extract of the PHI-names tap (contacts declared); its config."""
    tmp = tmp_path_factory.mktemp("names")
    cfg = write_config(tmp, [names_extractor(tmp, streams=["contacts"])])
    res = cli("extract", "intake-files", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    return cfg


def no_canary(text: str) -> None:
    hits = [c for c in CANARIES if c in text]
    assert not hits, f"PHI in the output: {hits}\n{text}"


# --- the key and the placeholder ---


def test_the_key_is_private_stable_and_created_once(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    assert load_key(ws, create=False) is None
    first = load_key(ws)
    assert first is not None and len(first) == 32 and load_key(ws) == first
    assert stat.S_IMODE(key_path(ws).stat().st_mode) == 0o600
    assert stat.S_IMODE(key_path(ws).parent.stat().st_mode) == 0o700
    assert [p.name for p in key_path(ws).parent.iterdir()] == ["names.key"], "no temporary file is left"
    assert load_key(Workspace(tmp_path / "missing")) is None, "no workspace: no key, nothing created"
    assert not (tmp_path / "missing").exists()


def test_placeholders_are_stable_keyed_and_never_the_name(tmp_path: Path) -> None:
    a, b = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    a.root.mkdir()
    b.root.mkdir()
    name = f"intake_{CANARIES[0]}.csv"
    one = Namer(a, frozenset({"messages"})).show_all([name, "messages"])
    again = Namer(a, frozenset({"messages"})).show_all([name, "messages"])
    other = Namer(b, frozenset({"messages"})).show_all([name, "messages"])
    assert one == again, "the same workspace gives the same placeholder in every face"
    assert one[0] == (name, one[0][1]) and re.fullmatch(rf"stream #1 {TAG}", one[0][1])
    assert one[1] == ("messages", "messages"), "a declared name is shown as it is"
    assert other[0][1] != one[0][1], "another workspace's key gives another tag: the hash is keyed"
    assert Namer(a, reveal=True).show(name, 1) == name
    assert placeholder("file", 2, None) == "file #2"
    assert Namer(Workspace(tmp_path / "none"), create_key=False).show(name, 3) == "stream #3"


def test_field_paths_and_declared_fields(extracted: Path) -> None:
    schema = {"properties": {"id": {}, "addr": {"properties": {"street": {}, "zip": {}}}}}
    assert schema_field_paths(schema) == ["id", "addr", "addr.street", "addr.zip"]
    # a key with a dot or a slash is one segment, written as the records' own paths write it
    # (`list streams --reveal` listed `../../up` twice: once bare, once in backticks)
    odd = {"properties": {"../../up": {}, "a.b": {"properties": {"c d": {}}}}}
    assert schema_field_paths(odd) == ["`../../up`", "`a.b`", "`a.b`.`c d`"]
    assert transform_names('{"to": payload.headers.`X Custom`, "n": $count(parts)}') >= {
        "payload", "headers", "X Custom", "parts", "to", "$count"}
    cfg = load(extracted).config
    ex = cfg.extractors[0]
    fields = declared_fields(cfg, ex, "contacts")
    assert "id" in fields, "a property name of a configured schema file is declared"
    assert declared_fields(cfg, ex, INTAKE) == frozenset(), "no field of an undeclared stream is shown"
    ws = Workspace(load(extracted).workspace)
    namer = Namer(ws, fields, "field")
    assert namer.show_path("id", 1) == "id"
    assert re.fullmatch(rf"field #2 {TAG}", namer.show_path(f"id.{CANARY_ADDRESS}", 2))


def test_mapped_transform_names_are_declared_fields(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path, [names_extractor(tmp_path, source="gmail")],
                            stages={"canonize": {"mappings": [GMAIL]}})
    cfg = load(cfg_path).config
    fields = declared_fields(cfg, cfg.extractors[0], "messages")
    assert {"payload", "headers"} <= fields, "names the mapped transform reads are shown"
    assert stream_namer(cfg, cfg.extractors[0], Workspace(tmp_path)).is_shown("messages")


# --- the faces ---


def test_validate_shows_placeholders_and_how_to_declare(extracted: Path) -> None:
    res = cli("validate", "--config", str(extracted))
    assert res.returncode == 0, res.stdout + res.stderr
    no_canary(res.stdout + res.stderr)
    assert re.search(rf"streams without a mapping \(not canonized\): contacts, stream #2 {TAG}, "
                     rf"stream #3 {TAG}", res.stdout), res.stdout
    assert "2 stream name(s) are not declared" in res.stdout
    assert "lorchestra list streams intake-files --reveal" in res.stdout


def test_list_streams_hides_and_reveal_shows(extracted: Path) -> None:
    res = cli("list", "streams", "intake-files", "--config", str(extracted))
    assert res.returncode == 0, res.stderr
    no_canary(res.stdout + res.stderr)
    assert "contacts" in res.stdout and re.search(rf"stream #2 {TAG}", res.stdout)
    as_json = cli("list", "streams", "intake-files", "--json", "--config", str(extracted))
    no_canary(as_json.stdout + as_json.stderr)
    revealed = cli("list", "streams", "intake-files", "--reveal", "--json", "--config", str(extracted))
    assert revealed.returncode == 0
    assert INTAKE in revealed.stdout and NOTES in revealed.stdout and CANARY_ADDRESS in revealed.stdout
    assert "may carry PHI" in revealed.stderr
    rows = {r["stream"]: r for r in orjson.loads(revealed.stdout)}
    assert rows["contacts"]["declared"] and not rows[INTAKE]["declared"] and rows[INTAKE]["records"] == 2


def test_list_streams_usage_errors(extracted: Path) -> None:
    missing = cli("list", "streams", "--config", str(extracted))
    assert missing.returncode == 2 and "needs an extractor name" in missing.stderr
    unknown = cli("list", "streams", "nope", "--config", str(extracted))
    assert unknown.returncode == 2 and "no extractor named 'nope'" in unknown.stderr
    stray = cli("list", "extractors", "intake-files", "--config", str(extracted))
    assert stray.returncode == 2 and "only `list streams`" in stray.stderr


def test_declaring_a_stream_shows_it_by_name(extracted: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [names_extractor(tmp_path, streams=["contacts", INTAKE])])
    ws = extracted.parent / "ws"
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "ws"), str(ws)))
    res = cli("validate", "--config", str(cfg), "--skip-permissions")
    assert INTAKE in res.stdout and "1 stream name(s) are not declared" in res.stdout, res.stdout
    assert "declared stream(s) not in" not in res.stdout
    cfg.write_text(cfg.read_text().replace("- contacts", "- contacts\n  - tab_renamed"))
    res = cli("validate", "--config", str(cfg), "--skip-permissions")
    assert "declared stream(s) not in the LATEST run: tab_renamed" in res.stdout, res.stdout


def test_the_dashboard_scan_labels_streams_and_the_vault_keeps_names(extracted: Path) -> None:
    loaded = load(extracted)
    ws = Workspace(loaded.workspace)
    [run] = scan(loaded.config, ws).runs["intake-files"]
    labels = list(run.streams)
    assert labels[0] == "contacts" and all(re.fullmatch(rf"stream #\d {TAG}", s) for s in labels[1:])
    assert run.hidden_streams == 2 and list(run.streams.values()) == [1, 2, 1]
    no_canary(repr(run))
    [folder] = runs_of(ws.account_dir("clinical", "intakefiles", "intake"))
    assert set(manifest(folder)["streams"]) == {"contacts", INTAKE, NOTES}
    assert os.stat(folder / "manifest.json").st_mode & 0o077 == 0


RACER = """\
import sys
from pathlib import Path
from engine.names import load_key
from engine.store.workspace import Workspace
print(load_key(Workspace(Path(sys.argv[1]))).hex())
"""


def test_workers_racing_to_create_the_key_agree_on_one(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, env=clean_env()) for _ in range(6)]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and len(next(iter(keys))) == 64, keys
    assert load_key(Workspace(tmp_path)) == bytes.fromhex(keys.pop())


def test_read_only_faces_never_create_the_key(extracted: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(extracted.parent / "ws", ws)
    shutil.rmtree(ws / "keys")
    cfg = write_config(tmp_path, [names_extractor(tmp_path, streams=["contacts"])])
    res = cli("validate", "--config", str(cfg))
    assert res.returncode == 0, res.stdout
    assert re.search(r"not canonized\): contacts, stream #2, stream #3\n", res.stdout), res.stdout
    assert cli("status", "--config", str(cfg)).returncode == 0
    for args in (("list", "streams", cfg_name(cfg)), ("list", "streams", cfg_name(cfg), "--json"), ("drift",)):
        assert cli(*args, "--config", str(cfg)).returncode == 0, args  # list and drift wrote the key
    loaded = load(cfg)
    scan(loaded.config, Workspace(loaded.workspace))
    assert not (ws / "keys").exists(), "validate, status, list, drift and the dashboard's scan only read"


def cfg_name(cfg: Path) -> str:
    """The first extractor's name in a config file."""
    return str(load(cfg).config.extractors[0].name)


def test_revealed_names_never_drive_the_terminal(tmp_path: Path) -> None:
    """A tap chooses its stream and field names: escape sequences in them (window title, clear
    screen, clipboard) are printed as U+FFFD by ``list streams --reveal``, like record values."""
    script = tmp_path / "tap.py"
    stream = "s\x1b]0;owned\x07\x1b[2J"
    script.write_text("import json\n"
                      f"print(json.dumps({{'type': 'SCHEMA', 'stream': {stream!r}, 'key_properties': [],"
                      " 'schema': {'properties': {'f\\x1b]52;c;aGk=\\x07': {}}}}))\n"
                      f"print(json.dumps({{'type': 'RECORD', 'stream': {stream!r}, 'record': {{'a': 1}}}}))\n")
    cfg = write_config(tmp_path, [{"name": "esc", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script)]}])
    assert run_cli("extract", "esc", "--config", str(cfg)).returncode == 0
    res = run_cli("list", "streams", "esc", "--reveal", "--config", str(cfg), env=clean_env(COLUMNS="200"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "\ufffd]0;owned" in res.stdout and "\ufffd]52;c;aGk=" in res.stdout


def test_validate_shows_declared_stream_names_without_their_control_characters(tmp_path: Path) -> None:
    """A stream name declared in ``streams:`` is printed by validate (a stream without a mapping,
    a declared stream not in the LATEST run): its escape sequences as U+FFFD, as ``list streams``
    shows them, never sent to the terminal (they retitled and cleared it)."""
    script = tmp_path / "tap.py"
    stream = "esc\x1b]0;PWNED\x07\x1b[2Jname"
    script.write_text("import json\n"
                      f"print(json.dumps({{'type': 'SCHEMA', 'stream': {stream!r}, 'schema': {{}}}}))\n"
                      f"print(json.dumps({{'type': 'RECORD', 'stream': {stream!r}, 'record': {{'a': 1}}}}))\n")
    cfg = write_config(tmp_path, [{"name": "odd", "domain": "t", "source": "s", "account": "a", "kind": "singer",
                                   "command": [sys.executable, str(script)],
                                   "streams": [stream, "gone\x1b[2J\u202e"]}])
    assert run_cli("extract", "odd", "--config", str(cfg)).returncode == 0
    res = run_cli("validate", "--skip-permissions", "--config", str(cfg), env=clean_env(COLUMNS="250"))
    assert "Traceback" not in res.stderr, res.stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", res.stdout), res.stdout
    shown = "esc\ufffd]0;PWNED\ufffd\ufffd[2Jname"
    assert f"streams without a mapping (not canonized): {shown}" in res.stdout, res.stdout
    assert "declared stream(s) not in the LATEST run: gone\ufffd[2J\ufffd" in res.stdout, res.stdout
    listed = run_cli("list", "streams", "odd", "--config", str(cfg), env=clean_env(COLUMNS="250"))
    assert shown in listed.stdout, "the same as list streams shows it"
