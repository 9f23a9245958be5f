"""Canonize refuses to merge two streams' documents, and names damaged parts by their path.

Downstream a document is (source, account, kind, source_id): the stream is not part of it.
Two streams mapped to transforms of one kind whose records share a source_id (a generic
tap's per-table ids: ``people`` id 1, ``orgs`` id 1) would become one document in the index,
one person's records linked to another's chart. Canonize fails such an account with
``SOURCE_ID_COLLISION``, keeps the previous output and writes the details (ids included)
only into the workspace's diagnostics. Repeats within one stream are updates and pass.

A script tap replays ``run-N.singer`` on its N-th start; the CLI runs the workers as real
subprocesses.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.engine.test_canonize_lossless import TAP
from tests.helpers import (
    REPO,
    account_dir,
    canonical_paths,
    demo_extractor,
    demo_mappings,
    log_events,
    manifest,
    run_cli,
    runs_of,
    write_config,
)

CONTACT = ('{"source_id": PREFIX$string(id), "name": {"full": name, "components": []},'
           ' "emails": email ? {"e": {"address": email}} : null}')
VISIT = '{"source_id": $string(vid), "subject": {"type": null, "id": PREFIX$string(who), "display": null}}'

# canary content: none of it may leave the PHI places (vault, canonical, diagnostics)
IVY = {"id": "zq-4471", "name": "Ivy Quillfeather", "email": "ivy.quillfeather@canary.example"}
JACK = {"id": "zq-5582", "name": "Jack Marrowind", "email": "jack.marrowind@canary.example"}
ORG_CLASH = {"id": "zq-4471", "name": "Marrowind Holdings", "email": "office@marrowind.example"}
CANARIES = [b"zq-4471", b"zq-5582", b"Quillfeather", b"Marrowind", b"canary.example", b"marrowind.example"]


def msg(stream: str, record: dict[str, Any] | None = None, key: str = "id") -> bytes:
    if record is None:
        return orjson.dumps({"type": "SCHEMA", "stream": stream, "schema": {"type": "object"},
                             "key_properties": [key]})
    return orjson.dumps({"type": "RECORD", "stream": stream, "record": record})


def people(*recs: dict[str, Any]) -> list[bytes]:
    return [msg("people"), *(msg("people", r) for r in recs)]


def orgs(*recs: dict[str, Any]) -> list[bytes]:
    return [msg("orgs"), *(msg("orgs", r) for r in recs)]


def visits(*recs: dict[str, Any]) -> list[bytes]:
    return [msg("visits", key="vid"), *(msg("visits", r) for r in recs)]


STATE = b'{"type":"STATE","value":{"bookmark":1}}'


def write_transforms(tmp: Path, prefix: bool) -> None:
    """people and orgs -> contact, visits -> clinical_session; with ``prefix`` the contact
    ids (and the visits' references to people) carry the stream."""
    tdir = tmp / "transforms" / "crm"
    tdir.mkdir(parents=True, exist_ok=True)
    for name, stream, kind, text in (("people_v1", "people", "contact", CONTACT),
                                     ("orgs_v1", "orgs", "contact", CONTACT),
                                     ("visits_v1", "visits", "clinical_session", VISIT)):
        tag = "people" if stream == "visits" else stream
        (tdir / f"{name}.jsonata").write_text(text.replace("PREFIX", f'"{tag}/" & ' if prefix else ""))
        (tdir / f"{name}.meta.yaml").write_text(yaml.safe_dump({
            "id": f"crm/{name}", "version": 1, "input": {"source": "crm", "stream": stream},
            "output": {"kind": kind, "schema": f"{kind}.v1"}, "description": "test", "samples": []}))


def setup(tmp: Path, runs: list[list[bytes]], *, incremental: bool = False) -> Path:
    folder = tmp / "tap"
    folder.mkdir()
    (folder / "tap.py").write_text(TAP)
    for n, messages in enumerate(runs, start=1):
        (folder / f"run-{n}.singer").write_bytes(b"".join(m + b"\n" for m in [*messages, STATE]))
    write_transforms(tmp, prefix=False)
    cfg = {"workspace": str(tmp / "ws"),
           "extractors": [{"name": "crm-a", "domain": "ops", "source": "crm", "account": "a",
                           "kind": "singer", "command": [sys.executable, str(folder / "tap.py"), str(folder)],
                           "incremental": incremental}],
           "stages": {"canonize": {"mappings": [
               {"source": "crm", "stream": s, "transform": f"crm/{s}_v1"} for s in ("people", "orgs", "visits")],
               "transforms_dir": str(tmp / "transforms"), "schemas_dir": str(REPO / "config" / "schemas")}}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


EX = {"domain": "ops", "source": "crm", "account": "a"}


def run(cfg: Path, *args: str, code: int = 0) -> str:
    res = run_cli("run", "--config", str(cfg), *args)
    assert res.returncode == code, res.stdout + res.stderr
    return res.stdout + res.stderr


def canonize_finished(ws: Path) -> dict[str, Any]:
    return [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "canonize"][-1]


def snapshot(ws: Path) -> dict[str, bytes | None]:
    """The bytes of the account's canonical files (None when absent)."""
    return {k: p.read_bytes() if p.exists() else None for k, p in canonical_paths(ws, EX).items()}


def test_two_streams_sharing_a_kind_and_a_source_id_fail_and_keep_the_last_output(tmp_path: Path) -> None:
    """The review's reproduction: people id X is Ivy, orgs id X is someone else."""
    ivy_visit = {"vid": "v1", "who": IVY["id"]}
    cfg = setup(tmp_path, [
        people(IVY, JACK) + orgs({**ORG_CLASH, "id": "zq-9000"}) + visits(ivy_visit),
        people(IVY, JACK) + orgs(ORG_CLASH) + visits(ivy_visit)])
    ws = tmp_path / "ws"
    run(cfg, "--stage", "extract", "--stage", "canonize")
    assert canonize_finished(ws)["status"] == "success"
    before = snapshot(ws)
    assert before["data"] is not None and before["data"].count(b'"kind":"contact"') == 3

    out = run(cfg, "--stage", "extract", "--stage", "canonize", "--json", code=1)
    out += run(cfg, "--stage", "canonize", "--force", code=1)  # the plain face too
    final = canonize_finished(ws)
    assert final["status"] == "failed" and final["error_code"] == "SOURCE_ID_COLLISION"
    report = tmp_path / "ws" / "diagnostics" / "canonize" / "crm-a.source-id-collisions.txt"
    assert final["detail_path"] == str(report)
    assert f"diagnostics: {report}" in out
    assert snapshot(ws) == before, "nothing is published: data, meta and rejects stay as they were"
    meta = orjson.loads(before["meta"] or b"{}")
    assert meta["runs"] == [manifest(runs_of(account_dir(ws, EX))[0])["run_id"]]
    assert not list((ws / "canonical" / "crm" / ".a.gen").glob(".g*.partial")), "no staged generation left"

    text = report.read_text()
    assert (report.stat().st_mode & 0o777) == 0o600
    assert "kind contact" in text and "streams orgs, people: 1" in text
    assert f'source_id "{IVY["id"]}" in orgs, people' in text, "the file may name the id"
    assert "clinical_session" not in text.split("Repair")[0], "the visit with the same id is another kind"
    assert "prefix" in text
    assert "Quillfeather" not in text and "Marrowind" not in text, "ids only, never other content"

    # nothing of the records (ids included) reaches events, logs, the history or the faces
    outside = out.encode() + b"".join(p.read_bytes() for p in (ws / "logs").glob("*"))
    outside += b"".join(p.read_bytes() for p in (ws / "state").glob("lorch.sqlite*"))
    for canary in CANARIES:
        assert canary not in outside, canary

    # the repair the report names: the stream in the id (and in the references to it)
    write_transforms(tmp_path, prefix=True)
    run(cfg, "--stage", "canonize")
    assert canonize_finished(ws)["status"] == "success"
    docs = [orjson.loads(line) for line in canonical_paths(ws, EX)["data"].read_bytes().splitlines()]
    ids = sorted(d["source_id"] for d in docs if d["kind"] == "contact")
    assert ids == [f"orgs/{IVY['id']}", f"people/{IVY['id']}", f"people/{JACK['id']}"]
    [visit] = [d for d in docs if d["kind"] == "clinical_session"]
    assert visit["subject"]["id"] == f"people/{IVY['id']}"
    assert not report.exists(), "the last report is removed once the account canonizes"


def test_repeats_within_one_stream_and_shared_ids_across_kinds_pass(tmp_path: Path) -> None:
    moved = {**IVY, "email": "ivy.new@canary.example"}
    cfg = setup(tmp_path, [people(IVY, JACK, moved) + orgs({**ORG_CLASH, "id": "zq-9000"})
                           + visits({"vid": IVY["id"], "who": IVY["id"]})])
    ws = tmp_path / "ws"
    run(cfg, "--stage", "extract", "--stage", "canonize")
    final = canonize_finished(ws)
    assert final["status"] == "success" and final.get("error_code") is None and final["records"] == 5
    docs = [orjson.loads(line) for line in canonical_paths(ws, EX)["data"].read_bytes().splitlines()]
    assert [d["source_id"] for d in docs if d["kind"] == "contact"].count(IVY["id"]) == 2, \
        "an update within one stream stays (the index keeps the newest)"
    meta = orjson.loads(canonical_paths(ws, EX)["meta"].read_bytes())
    assert meta["inputs"]["source_id_check"] == 1

    # an output published before the check existed (no marker) is checked again, not skipped
    run(cfg, "--stage", "canonize")
    assert canonize_finished(ws)["status"] == "skipped"
    del meta["inputs"]["source_id_check"]
    canonical_paths(ws, EX)["meta"].write_bytes(orjson.dumps(meta))  # the generation's file (a link)
    run(cfg, "--stage", "canonize")
    assert canonize_finished(ws)["status"] == "success"


def test_no_tracking_without_a_shared_kind(tmp_path: Path) -> None:
    """Only orgs and visits mapped: kinds differ, nothing is tracked, the fingerprint is as before."""
    cfg = setup(tmp_path, [people(IVY) + orgs(ORG_CLASH) + visits({"vid": IVY["id"], "who": IVY["id"]})])
    data = yaml.safe_load(cfg.read_text())
    data["stages"]["canonize"]["mappings"] = [m for m in data["stages"]["canonize"]["mappings"]
                                              if m["stream"] != "people"]
    cfg.write_text(yaml.safe_dump(data))
    ws = tmp_path / "ws"
    run(cfg, "--stage", "extract", "--stage", "canonize")
    assert canonize_finished(ws)["status"] == "success"
    assert "source_id_check" not in orjson.loads(canonical_paths(ws, EX)["meta"].read_bytes())["inputs"]


def test_a_collision_across_the_runs_of_an_incremental_chain_fails(tmp_path: Path) -> None:
    cfg = setup(tmp_path, [people(IVY) + orgs({**ORG_CLASH, "id": "zq-9000"}), orgs(ORG_CLASH)],
                incremental=True)
    ws = tmp_path / "ws"
    run(cfg, "--stage", "extract", "--stage", "canonize")
    before = snapshot(ws)
    run(cfg, "--stage", "extract", "--stage", "canonize", code=1)
    assert manifest(runs_of(account_dir(ws, EX))[-1])["incremental"]["state_passed"], "a chain of two runs"
    assert canonize_finished(ws)["error_code"] == "SOURCE_ID_COLLISION"
    assert snapshot(ws) == before


# ------------------------------------------------------------------ damaged parts: detail_path


def _flip(part: Path, run_dir: Path) -> str:
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    part.write_bytes(bytes(raw))
    return "CHECKSUM_MISMATCH"


def _remove(part: Path, run_dir: Path) -> str:
    part.unlink()
    return "PART_MISSING"


def _truncate(part: Path, run_dir: Path) -> str:
    """Half the gzip stream, with the manifest updated to match: only decoding fails."""
    m = manifest(run_dir)
    cut = part.read_bytes()[: m["parts"][0]["bytes"] // 2]
    part.write_bytes(cut)
    m["parts"][0]["sha256"], m["parts"][0]["bytes"] = hashlib.sha256(cut).hexdigest(), len(cut)
    (run_dir / "manifest.json").write_bytes(json.dumps(m).encode())
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(cut)
    return "PART_CORRUPT"


@pytest.mark.parametrize("damage", [_flip, _remove, _truncate], ids=["checksum", "missing", "corrupt"])
def test_a_damaged_part_is_named_by_its_path_in_the_vault(tmp_path: Path, damage: Any) -> None:
    ex = demo_extractor("dv", "dataverse", records=20)
    cfg = write_config(tmp_path, [ex], stages={"canonize": {"mappings": demo_mappings()}})
    run(cfg, "--stage", "extract", "--stage", "canonize")
    ws = tmp_path / "ws"
    [run_dir] = runs_of(account_dir(ws, ex))
    part = run_dir / manifest(run_dir)["parts"][0]["file"]
    code = damage(part, run_dir)
    out = run(cfg, "--stage", "canonize", "--force", code=1)
    final = [e for e in log_events(ws) if e["type"] == "task_finished" and e["stage"] == "canonize"][-1]
    assert final["error_code"] == code
    assert final["detail_path"] == str(part), "the part's real path, not its bare name"
    assert Path(final["detail_path"]).is_absolute()
    assert f"diagnostics: {part}" in out
