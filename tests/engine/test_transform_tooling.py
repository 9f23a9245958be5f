"""`lorchestra transform run` and `transform new`, and `list transforms` with versions.

Everything goes through the real CLI in a subprocess, with real registries on disk and a
real vault written by a real tap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import yaml

from engine.canon.registry import Registry
from tests.engine.test_drift import extract, setup
from tests.helpers import REPO, clean_env, demo_extractor, run_cli

GMAIL = "email/gmail_to_canonical_v1"
SAMPLE = REPO / "config/transforms/email/samples/gmail_to_canonical_v1__alternative.json"


def cli_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "lorch_tui.cli", *args], input=data, capture_output=True,
                          env=clean_env(), cwd=REPO, timeout=120)


def test_run_one_record_from_a_file_matches_the_golden_output() -> None:
    res = run_cli("transform", "run", GMAIL, str(SAMPLE), "--envelope", "source=gmail,account=golden")
    assert res.returncode == 0, res.stderr
    want = orjson.loads(SAMPLE.with_name(SAMPLE.name.replace(".json", ".expected.json")).read_bytes())
    assert orjson.loads(res.stdout) == want


def test_run_json_lines_from_stdin_with_a_reject() -> None:
    good = SAMPLE.read_bytes().replace(b"\n", b"")
    res = cli_stdin(good + b"\n\n" + b'{"id": 5}\n', "transform", "run", GMAIL, "-")
    assert res.returncode == 1
    out = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert len(out) == 1 and out[0]["kind"] == "email" and out[0]["account"] == "cli"
    err = res.stderr.decode()
    assert "line 3: rejected " in err and "1 transformed, 1 rejected" in err
    arrays = cli_stdin(b'[1, 2]\n"text"\n', "transform", "run", GMAIL, "-")  # gave a document of source_id "/"
    assert arrays.returncode == 1 and arrays.stdout == b""
    assert arrays.stderr.decode().count("rejected NOT_A_RECORD") == 2, arrays.stderr


def test_run_usage_errors() -> None:
    bad_env = run_cli("transform", "run", GMAIL, str(SAMPLE), "--envelope", "kind=x")
    assert bad_env.returncode == 2 and "--envelope" in bad_env.stderr
    assert run_cli("transform", "run", "email/nope_v1", str(SAMPLE)).returncode == 2
    assert cli_stdin(b"not json\n", "transform", "run", GMAIL).returncode == 2
    assert run_cli("transform", "run", GMAIL, str(SAMPLE), "--show").returncode == 2


def test_run_from_the_vault(tmp_path: Path) -> None:
    cfg, _ = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "Jane Canary", "email": "j@x.org"},
                            {"id": 2, "name": "B"}, {"id": 3, "name": 5}])
    tid = "test/people_to_contact_v1"
    res = run_cli("transform", "run", tid, "--from-vault", "ex1", "--config", str(cfg))
    assert res.returncode == 1  # one record is rejected
    assert "3 record(s), 2 transformed, 1 rejected" in res.stdout
    assert "rejected SCHEMA_INVALID: 1" in res.stdout and "--show" in res.stdout
    assert "Jane" not in res.stdout + res.stderr  # the summary never prints content
    limited = run_cli("transform", "run", tid, "--from-vault", "ex1", "--limit", "2", "--show",
                      "--config", str(cfg))
    assert limited.returncode == 0, limited.stderr
    outs = [orjson.loads(line) for line in limited.stdout.splitlines()]
    assert [o["source_id"] for o in outs] == ["1", "2"] and outs[0]["account"] == "a1"
    assert outs[0]["name"]["full"] == "Jane Canary"  # shown on request
    assert "2 record(s), 2 transformed" in limited.stderr
    missing = run_cli("transform", "run", tid, "--from-vault", "nope", "--config", str(cfg))
    assert missing.returncode == 2
    for bad in ("0", "-1"):  # one message for both, from the parser
        refused = run_cli("transform", "run", tid, "--from-vault", "ex1", "--limit", bad, "--config", str(cfg))
        assert refused.returncode == 2 and "--limit: must be 1 or more" in refused.stderr, refused.stderr


def test_deletion_markers_are_skipped_as_canonize_skips_them(tmp_path: Path) -> None:
    """A Graph `@removed` entry or a Dataverse `$deletedEntity` row made `--from-vault` exit 1
    (a SCHEMA_INVALID reject) or count an all-null document; canonize skips them."""
    cfg, _ = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "Jane Canary"}, {"id": 2, "@removed": {"reason": "deleted"}},
                            {"@odata.context": "https://x/api/data/v9.2/$metadata#people/$deletedEntity", "id": 3}])
    tid = "test/people_to_contact_v1"
    res = run_cli("transform", "run", tid, "--from-vault", "ex1", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 record(s), 1 transformed, 0 rejected" in res.stdout and "deletion markers skipped: 2" in res.stdout
    one = cli_stdin(b'{"domain":"QBO","status":"Deleted","Id":"41"}\n{"id": 7, "name": "B"}\n',
                    "transform", "run", tid, "-", "--config", str(cfg))
    assert one.returncode == 0, one.stderr
    assert [orjson.loads(line)["source_id"] for line in one.stdout.splitlines()] == ["7"]
    assert b"line 1: a deletion marker" in one.stderr and b"1 deletion marker(s) skipped" in one.stderr


def test_run_from_the_vault_without_latest(tmp_path: Path) -> None:
    cfg, _ = setup(tmp_path)
    res = run_cli("transform", "run", "test/people_to_contact_v1", "--from-vault", "ex1", "--config", str(cfg))
    assert res.returncode == 2 and "no LATEST run yet" in res.stderr


def test_a_damaged_latest_or_manifest_is_exit_1_and_named(tmp_path: Path) -> None:
    """`status` and `verify` exit 1 (LATEST_INVALID) on a damaged LATEST.json, but `list
    streams` and `transform run --from-vault` exited 2 (usage), `list streams` saying only
    "the vault of ex1 cannot be read": both exit 1, naming the file and what to do."""
    cfg, _ = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "B"}])
    acct = tmp_path / "ws" / "vault" / "d" / "src" / "a1"
    latest = acct / "LATEST.json"
    good = latest.read_bytes()
    pointer = orjson.loads(good)
    latest.write_text("{bad")
    calls = (("list", "streams", "ex1"), ("transform", "run", "test/people_to_contact_v1", "--from-vault", "ex1"))
    for args in calls:
        res = run_cli(*args, "--config", str(cfg))
        assert res.returncode == 1, (args, res.stderr)
        assert f"{latest} does not read as a LATEST pointer (LATEST_INVALID)" in res.stderr, res.stderr
        assert "lorchestra extract ex1" in res.stderr and "Traceback" not in res.stderr
    latest.write_bytes(good)
    manifest = acct / f"dt={pointer['dt']}" / f"run_id={pointer['run_id']}" / "manifest.json"
    manifest.write_text("[1, 2]")
    for args in calls:
        res = run_cli(*args, "--config", str(cfg))
        assert res.returncode == 1, (args, res.stderr)
        assert f"{manifest} cannot be read as a run manifest (MANIFEST_INVALID)" in res.stderr, res.stderr


def test_new_writes_skeletons_and_prints_the_mapping(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    res = run_cli("transform", "new", "clinical/intake_to_contact", "--source", "forms", "--stream",
                  "intake", "--kind", "contact", "--dir", str(reg))
    assert res.returncode == 0, res.stderr
    assert "{source: forms, stream: intake, transform: clinical/intake_to_contact_v1}" in res.stdout
    assert (reg / "clinical" / "samples").is_dir()
    loaded = Registry.load(reg)
    assert loaded.problems == []
    t = loaded.get("clinical/intake_to_contact_v1")
    assert (t.source, t.stream, t.kind, t.schema, t.samples) == ("forms", "intake", "contact", "contact.v1", ())
    schema = orjson.loads((REPO / "config/schemas/contact.v1.json").read_bytes())
    for prop in schema["properties"]:
        assert (f'"{prop}": null' in t.expression) == (prop not in ("kind", "source", "account"))
    # the skeleton compiles and runs (its output fails the schema until it is filled in)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                   "extractors": [demo_extractor("g1")], "stages": {"canonize": {"transforms_dir": str(reg)}}}))
    run = cli_stdin(b'{"id": 1}', "transform", "run", "clinical/intake_to_contact_v1", "--config", str(cfg))
    assert run.returncode == 1 and b"SCHEMA_INVALID" in run.stderr
    spaced = run_cli("transform", "new", "ops/session_log_to_clinical_session", "--source", "sheets", "--stream",
                     "Session Log: 2024", "--kind", "clinical_session", "--dir", str(reg))
    assert spaced.returncode == 0, spaced.stderr
    line = next(x for x in spaced.stdout.splitlines() if "transform: ops/session_log" in x)
    assert yaml.safe_load(line.strip()[2:])["stream"] == "Session Log: 2024"
    assert Registry.load(reg).get("ops/session_log_to_clinical_session_v1").stream == "Session Log: 2024"
    again = run_cli("transform", "new", "clinical/intake_to_contact", "--source", "forms", "--stream",
                    "intake", "--kind", "contact", "--dir", str(reg))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_new_names_the_transforms_dir_as_the_config_reads_it(tmp_path: Path) -> None:
    """`transform new --dir ./mytx` run beside a config in cfg/ said "point transforms_dir at
    mytx", which the config reads as cfg/mytx: it prints the value relative to the config's
    folder, and following it literally validates."""
    (tmp_path / "cfg").mkdir()
    cfg = tmp_path / "cfg" / "p.yaml"
    doc = {"pipeline": {"name": "t", "version": "1"}, "workspace": "../ws", "extractors": [demo_extractor("g1")]}
    cfg.write_text(yaml.safe_dump(doc))
    res = run_cli("transform", "new", "crm/s_to_contact", "--source", "gmail", "--stream", "t", "--kind",
                  "contact", "--dir", "./mytx", "--config", "cfg/p.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if "point stages.canonize.transforms_dir at" in x)
    value = line.split(" at ", 1)[1].split(" (", 1)[0]
    assert value == "../mytx", line
    doc["stages"] = {"canonize": {"transforms_dir": value, "mappings": [
        {"source": "gmail", "stream": "t", "transform": "crm/s_to_contact_v1"}]}}
    cfg.write_text(yaml.safe_dump(doc))
    checked = run_cli("validate", "--skip-permissions", "--config", str(cfg), cwd=REPO)
    assert "transforms_dir" not in checked.stdout and "not in the registry" not in checked.stdout, checked.stdout
    # a folder elsewhere: the absolute path when it shares nothing with the config's folder
    # (the checkout) but `/`, else the path relative to it (a checkout under /tmp, as in CI)
    other, base = tmp_path / "other", REPO / "config"
    far = run_cli("transform", "new", "crm/s_to_contact", "--source", "gmail", "--stream", "t", "--kind",
                  "contact", "--dir", str(other), "--config", str(base / "pipeline.example.yaml"))
    assert far.returncode == 0, far.stderr
    want = str(other) if os.path.commonpath([other, base]) == "/" else os.path.relpath(other, base)
    assert f"transforms_dir at {want} (" in far.stdout, far.stdout


def test_test_without_samples_says_nothing_was_tested(tmp_path: Path) -> None:
    """`transform test` on a registry whose only transform has no samples printed "...: no
    golden samples" and then "all golden samples pass": it says no samples were found and
    nothing was tested (exit 0: nothing failed, as docs/transforms.md says)."""
    reg = tmp_path / "reg"
    assert run_cli("transform", "new", "crm/people_to_contact", "--source", "gmail", "--stream", "people",
                   "--kind", "contact", "--dir", str(reg)).returncode == 0
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                   "extractors": [demo_extractor("g1")],
                                   "stages": {"canonize": {"transforms_dir": str(reg)}}}))
    for args in ((), ("crm/people_to_contact_v1",)):
        res = run_cli("transform", "test", *args, "--config", str(cfg))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "golden samples pass" not in res.stdout and "golden sample(s) pass" not in res.stdout, res.stdout
        assert "no golden samples found: nothing was tested (crm/people_to_contact_v1 without samples)" \
            in res.stdout, res.stdout
    # beside a transform with samples: they pass, and the one without is named as untested
    shutil.copytree(REPO / "config" / "transforms" / "email", reg / "email")
    res = run_cli("transform", "test", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert "golden sample(s) pass; 1 transform(s) without golden samples were not tested" in last, last


def test_new_refuses_bad_names_unknown_kinds_and_the_bundled_registry(tmp_path: Path) -> None:
    args = ["--source", "s", "--stream", "t"]
    assert run_cli("transform", "new", "Bad/Name", *args, "--kind", "contact", "--dir", str(tmp_path)).returncode == 2
    unknown = run_cli("transform", "new", "a/b", *args, "--kind", "nokind", "--dir", str(tmp_path))
    assert unknown.returncode == 2 and "kinds: " in unknown.stderr
    bundled = run_cli("transform", "new", "a/b", *args, "--kind", "contact")
    assert bundled.returncode == 2 and "transforms_dir" in bundled.stderr
    assert not list(tmp_path.rglob("*.jsonata"))
    for into in (REPO / "config" / "transforms", REPO / "config" / "transforms" / "ops" / ".." / "forms"):
        named = run_cli("transform", "new", "zz/review_probe", *args, "--kind", "contact", "--dir", str(into))
        assert named.returncode == 2 and "bundled registry" in named.stderr, named.stderr
    assert not list((REPO / "config" / "transforms").rglob("review_probe*"))


def test_list_transforms_shows_use_and_versions(tmp_path: Path) -> None:
    reg = tmp_path / "transforms"
    shutil.copytree(REPO / "config" / "transforms", reg)
    ops = reg / "ops"
    (ops / "sheets_clients_to_contact_v2.jsonata").write_text((ops / "sheets_clients_to_contact_v1.jsonata").read_text())
    meta = yaml.safe_load((ops / "sheets_clients_to_contact_v1.meta.yaml").read_text())
    (ops / "sheets_clients_to_contact_v2.meta.yaml").write_text(
        yaml.safe_dump({**meta, "id": "ops/sheets_clients_to_contact_v2", "version": 2}))
    maps = [{"source": "sheets", "stream": "Clients", "transform": "ops/sheets_clients_to_contact_v1"},
            {"source": "gmail", "stream": "messages", "transform": GMAIL}]
    cfg = tmp_path / "p.yaml"

    def rows(mappings: list[dict[str, str]]) -> dict[str, dict[str, str]]:
        cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                       "extractors": [demo_extractor("g1")], "stages": {"canonize": {"transforms_dir": str(reg),
                                                                                 "mappings": mappings}}}))
        res = run_cli("list", "transforms", "--json", "--config", str(cfg))
        assert res.returncode == 0, res.stderr
        return {r["id"]: r for r in orjson.loads(res.stdout)}

    before = rows(maps)
    assert before["ops/sheets_clients_to_contact_v1"]["status"] == "in use (newer: _v2)"
    assert before["ops/sheets_clients_to_contact_v1"]["used_by"] == ["sheets/Clients"]
    assert before["ops/sheets_clients_to_contact_v2"]["status"] == "unused"
    assert before[GMAIL]["status"] == "in use" and before["finance/qbo_invoice_to_invoice_v1"]["status"] == "unused"
    after = rows([{**maps[0], "transform": "ops/sheets_clients_to_contact_v2"}, maps[1]])
    assert after["ops/sheets_clients_to_contact_v1"]["status"] == "unused (older version)"
    assert after["ops/sheets_clients_to_contact_v2"]["status"] == "in use"


def test_run_from_the_vault_rejects_inexact_numbers_as_canonize_does(tmp_path: Path) -> None:
    cfg, ws = setup(tmp_path)
    (tmp_path / "records.jsonl").write_text('{"id": 12345678901234567890123, "name": "A"}\n{"id": 2, "name": "B"}\n')
    assert run_cli("extract", "ex1", "--config", str(cfg)).returncode == 0
    res = run_cli("transform", "run", "test/people_to_contact_v1", "--from-vault", "ex1", "--config", str(cfg))
    assert res.returncode == 1 and "rejected NUMBER_INEXACT: 1" in res.stdout
    run = next(ws.glob("vault/d/src/a1/dt=*/run_id=*"))
    fields = orjson.loads((run / "manifest.json").read_bytes())["streams"]["people"]["fields"]
    assert fields["paths"] == ["id", "name"] and fields["walked"] == 2


def test_a_golden_sample_that_is_not_json_is_named_not_an_internal_error(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    assert run_cli("transform", "new", "lab/probe", "--source", "gmail", "--stream", "messages",
                   "--kind", "email", "--dir", str(reg)).returncode == 0
    meta_path = reg / "lab" / "probe_v1.meta.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta["samples"] = [{"input": "samples/in.json", "expected": "samples/out.json"}]
    meta_path.write_text(yaml.safe_dump(meta))
    (reg / "lab" / "samples" / "in.json").write_text('{"id": 1,')  # cut short
    (reg / "lab" / "samples" / "out.json").write_text("{}")
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({
        "pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
        "extractors": [demo_extractor("g1")],
        "stages": {"canonize": {"transforms_dir": str(reg), "mappings": [
            {"source": "gmail", "stream": "messages", "transform": "lab/probe_v1"}]}}}))
    res = run_cli("transform", "test", "lab/probe_v1", "--config", str(cfg), env=clean_env(COLUMNS="300"))
    assert res.returncode == 1 and "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert "FAIL" in res.stdout and "in.json is not valid JSON (line 1" in res.stdout, res.stdout
    res = run_cli("validate", "--config", str(cfg), env=clean_env(COLUMNS="300"))
    assert res.returncode == 2 and "golden sample(s) missing or not valid JSON" in res.stdout, res.stdout


def test_transform_run_is_capped_like_the_canonize_worker(tmp_path: Path) -> None:
    """A transform that allocates without bound fails WORKER_OUT_OF_MEMORY here too, with a
    message, instead of eating gigabytes and saying "0 rejected" (or dying of SIGSEGV)."""
    reg = tmp_path / "reg"
    assert run_cli("transform", "new", "lab/huge", "--source", "gmail", "--stream", "messages",
                   "--kind", "email", "--dir", str(reg)).returncode == 0
    (reg / "lab" / "huge_v1.jsonata").write_text('{"source_id": $string(id), "x": $pad("x", 100000000000)}\n')
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({
        "pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
        "extractors": [demo_extractor("g1")],
        "stages": {"canonize": {"transforms_dir": str(reg), "memory_limit_mb": 2048}}}))
    res = cli_stdin(b'{"id": 1}', "transform", "run", "lab/huge_v1", "--config", str(cfg))
    err = res.stderr.decode()
    assert res.returncode == 1 and "WORKER_OUT_OF_MEMORY" in err and "2048 MiB" in err, err
    assert "Traceback" not in err and res.stdout == b""
    (reg / "lab" / "huge_v1.jsonata").write_text('{"source_id": $string(id), "x": $pad("x", 10)}\n')
    ok = cli_stdin(b'{"id": 1}', "transform", "run", "lab/huge_v1", "--config", str(cfg))
    assert b"WORKER_OUT_OF_MEMORY" not in ok.stderr and b"rejected SCHEMA_INVALID" in ok.stderr, ok.stderr


def test_sigterm_to_transform_run_stops_its_capped_child(tmp_path: Path) -> None:
    """`timeout` and service managers send SIGTERM to the command they started: the capped
    child (reading its input here) must not outlive it."""
    import os
    import signal
    import time

    from tests.helpers import wait_for

    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                   "extractors": [demo_extractor("g1")]}))
    proc = subprocess.Popen([sys.executable, "-m", "lorch_tui.cli", "transform", "run", "email/gmail_to_canonical_v1",
                             "-", "--config", str(cfg)], cwd=REPO, env=clean_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def children() -> list[int]:
        try:
            return [int(x) for x in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        except OSError:
            return []
    try:
        wait_for(lambda: children(), timeout=30, what="the capped child")
        (child,) = children()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            try:
                if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
                    break  # a zombie: it exited
            except OSError:
                break
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_transforms_dir_that_does_not_exist_is_named_not_passed(tmp_path: Path) -> None:
    """A typo in ``transforms_dir`` read as an empty registry: `transform test` said "all golden
    samples pass" and `list transforms` listed none, both with exit 0."""
    cfg = tmp_path / "p.yaml"
    missing = tmp_path / "transforms_typo"
    cfg.write_text(yaml.safe_dump({"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
                                   "extractors": [demo_extractor("g1")],
                                   "stages": {"canonize": {"transforms_dir": str(missing)}}}))
    tested = run_cli("transform", "test", "--config", str(cfg))
    assert tested.returncode == 1, tested.stdout + tested.stderr
    assert f"{missing} is not a folder" in tested.stdout + tested.stderr
    listed = run_cli("list", "transforms", "--config", str(cfg))
    assert listed.returncode == 2 and f"{missing} is not a folder" in listed.stderr
    assert not missing.exists()


def test_list_streams_shows_the_records_fields_when_the_schema_declares_none(tmp_path: Path) -> None:
    """The fields column came from SCHEMA properties only: a tap whose SCHEMA is
    ``{"type": "object"}`` showed none, though the manifest records the records' paths."""
    cfg, _ = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "Jane Canary", "email": "j@x.org", "visit": {"room": "B"}}])
    res = run_cli("list", "streams", "ex1", "--reveal", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    (row,) = orjson.loads(res.stdout)
    assert row["fields"] == ["email", "id", "name", "visit", "visit.room"]
    hidden = run_cli("list", "streams", "ex1", "--json", "--config", str(cfg))
    assert len(orjson.loads(hidden.stdout)[0]["fields"]) == 5 and "Jane Canary" not in hidden.stdout


def _lab_config(tmp_path: Path, expression: str, sample: bytes | None = None) -> Path:
    """A registry with one transform `lab/probe_v1` (and, with ``sample``, a golden sample
    whose expected output is what the number would give rounded) and a config using it."""
    reg = tmp_path / "reg"
    assert run_cli("transform", "new", "lab/probe", "--source", "gmail", "--stream", "messages",
                   "--kind", "email", "--dir", str(reg)).returncode == 0
    (reg / "lab" / "probe_v1.jsonata").write_text(expression)
    if sample is not None:
        meta_path = reg / "lab" / "probe_v1.meta.yaml"
        meta = yaml.safe_load(meta_path.read_text())
        meta["samples"] = [{"input": "samples/big.json", "expected": "samples/big.expected.json"}]
        meta_path.write_text(yaml.safe_dump(meta))
        (reg / "lab" / "samples" / "big.json").write_bytes(sample)
        (reg / "lab" / "samples" / "big.expected.json").write_text('{"source_id": "9007199254740992"}')
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({
        "pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp_path / "ws"),
        "extractors": [demo_extractor("g1")],
        "stages": {"canonize": {"transforms_dir": str(reg), "schemas_dir": str(REPO / "config/schemas")}}}))
    return cfg


def test_a_transform_that_does_not_compile_is_a_fail_line_not_an_internal_error(tmp_path: Path) -> None:
    cfg = _lab_config(tmp_path, '{"source_id": $string(id)\n')  # the closing brace forgotten
    res = run_cli("transform", "test", "--config", str(cfg), env=clean_env(COLUMNS="300"))
    assert res.returncode == 1 and "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert "FAIL lab/probe_v1: does not compile" in res.stdout and "probe_v1.jsonata" in res.stdout, res.stdout
    assert "ok   email/gmail_to_canonical_v1" not in res.stdout  # only the config's registry


def test_the_transform_tools_reject_numbers_a_double_cannot_hold_as_canonize_does(tmp_path: Path) -> None:
    big = b'{"id": 9007199254740993}'
    cfg = _lab_config(tmp_path, '{"source_id": $string(id)}\n', sample=big)
    res = run_cli("transform", "test", "--config", str(cfg), env=clean_env(COLUMNS="300"))
    assert res.returncode == 1 and "rejected: NUMBER_INEXACT" in res.stdout, res.stdout  # never approved rounded
    for data in (big, b'{"id": 123456789012345678901234567890}', b'{\n "id": 1e400\n}'):
        res2 = cli_stdin(data, "transform", "run", "lab/probe_v1", "--config", str(cfg))
        assert res2.returncode == 1 and b"rejected NUMBER_INEXACT" in res2.stderr, res2.stderr
        assert res2.stdout == b"" and b"Traceback" not in res2.stderr
    lines = cli_stdin(b'{"id": 7}\n' + big + b"\n", "transform", "run", "lab/probe_v1", "--config", str(cfg))
    assert lines.returncode == 1 and orjson.loads(lines.stdout)["source_id"] == "7"
    assert b"line 2: rejected NUMBER_INEXACT" in lines.stderr


def test_list_streams_says_when_the_run_shown_is_not_latest(tmp_path: Path) -> None:
    """With no LATEST yet (the account's only run failed), the listing is the newest run's,
    and it says so instead of passing a failed run off as the account's streams."""
    cfg, _ = setup(tmp_path)
    (tmp_path / "records.jsonl").write_bytes(orjson.dumps({"id": 1, "name": "A"}) + b"\n")
    conf = yaml.safe_load(cfg.read_text())
    command = " ".join(conf["extractors"][0]["command"])
    conf["extractors"][0]["command"] = ["sh", "-c", f"{command}; exit 3"]
    conf["extractors"][0]["retries"] = 0
    cfg.write_text(yaml.safe_dump(conf))
    assert run_cli("extract", "ex1", "--config", str(cfg)).returncode == 1
    env = clean_env(COLUMNS="250")
    res = run_cli("list", "streams", "ex1", "--config", str(cfg), env=env)
    assert res.returncode == 0 and "(no LATEST: the newest run, failed)" in " ".join(res.stdout.split()), res.stdout
    conf["extractors"][0]["command"] = ["sh", "-c", command]
    cfg.write_text(yaml.safe_dump(conf))
    extract(tmp_path, cfg, [{"id": 2, "name": "B"}])
    ok = run_cli("list", "streams", "ex1", "--config", str(cfg), env=env)
    assert ok.returncode == 0 and "streams in dt=" in ok.stdout and "no LATEST" not in ok.stdout, ok.stdout


def test_a_sheet_row_without_its_tap_ids_is_rejected_not_given_a_shared_id() -> None:
    """The shipped sheet transforms built `source_id` with `&`, which turns a missing key into
    "": a tap naming the row ids otherwise gave every row "//", one document for all (rows
    lost to DUPLICATE_ENTITY). Without all three ids the row is now rejected."""
    for tid in ("ops/sheets_clients_to_contact_v1", "ops/sheets_session_log_to_clinical_session_v1",
                "forms/sheets_form_response_to_form_response_v1"):
        for row in (b'{"Name": "Ann Doe", "Email Address": "ann@example.org", "row": 3}',
                    b'{"__sdc_spreadsheet_id": "s", "__sdc_sheet_id": 0, "__sdc_row": null, "Name": "Ann Doe"}',
                    b'{"__sdc_spreadsheet_id": "s", "__sdc_sheet_id": 0, "__sdc_row": "", "Name": "Ann Doe"}'):
            res = cli_stdin(row + b"\n", "transform", "run", tid, "-", "--envelope", "source=sheets,account=a")
            assert res.returncode == 1, (tid, row, res.stdout, res.stderr)
            assert b"rejected SCHEMA_INVALID: /source_id: null" in res.stderr, (tid, row, res.stderr)


def test_run_binds_the_mapping_s_time_zone_as_canonize_does(tmp_path: Path) -> None:
    """`transform run` ignored the mapping's `timezone:`: a linked sheet's 14:39 New York
    showed as 14:39Z, where canonize wrote 18:39Z."""
    from tests.helpers import write_config

    tid = "forms/sheets_form_response_to_form_response_v1"
    cfg = write_config(tmp_path, [demo_extractor("fs", "sheets", records=1)], stages={"canonize": {"mappings": [
        {"source": "sheets", "stream": "Form_Responses_1", "transform": tid, "timezone": "America/New_York"}]}})
    row = (b'{"__sdc_spreadsheet_id": "s", "__sdc_sheet_id": 1, "__sdc_row": 2, '
           b'"Timestamp": "6/1/2025 14:39:50", "Email Address": "a@example.org"}\n')
    res = cli_stdin(row, "transform", "run", tid, "-", "--envelope", "source=sheets,account=a", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert orjson.loads(res.stdout)["submitted_at"] == "2025-06-01T18:39:50Z"
    plain = cli_stdin(row, "transform", "run", tid, "-", "--envelope", "source=sheets,account=a")
    assert orjson.loads(plain.stdout)["submitted_at"] == "2025-06-01T14:39:50Z"  # the demo maps no zone


def test_transform_test_with_a_registry_problem_never_says_all_pass(tmp_path: Path) -> None:
    """With a broken draft in the registry, `transform test` printed "all golden samples pass"
    and exited 1."""
    cfg = _lab_config(tmp_path, '{"source_id": $string(id)}\n', sample=b'{"id": 9007199254740992}')
    (tmp_path / "reg" / "lab" / "samples" / "big.expected.json").write_text(
        '{"source_id": "9007199254740992", "kind": "email", "source": "gmail", "account": "golden"}')
    (tmp_path / "reg" / "lab" / "draft_v1.jsonata").write_text("{}\n")  # no meta: a registry problem
    res = run_cli("transform", "test", "--config", str(cfg), env=clean_env(COLUMNS="300"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "registry problem" in res.stdout and "all golden samples pass" not in res.stdout, res.stdout
    assert "the golden samples pass; 1 registry problem(s) above" in res.stdout


def test_new_writes_private_files_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 000 `transform new` wrote 0666 files and 0777 folders: every command now
    runs with umask 077 (README), as the run machinery always did."""
    import shlex

    reg = tmp_path / "reg"
    cmd = (f"umask 000; {shlex.quote(sys.executable)} -m lorch_tui.cli transform new clinical/x_to_contact "
           f"--source forms --stream intake --kind contact --dir {shlex.quote(str(reg))}")
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 0, res.stderr
    made = list(reg.rglob("*"))
    assert made and all((p.stat().st_mode & 0o077) == 0 for p in made), [oct(p.stat().st_mode) for p in made]
