"""Source drift: field paths in the manifest, static transform reads, `lorchestra drift`,
the validate warning, the PHI rule for names, and the LATEST table's mark.

The integration tests run a real Singer tap (a script that replays a JSON-lines file) through
the real CLI twice, changing the records' shape in between.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from engine.drift.reads import transform_reads
from engine.vault.paths import FULL_RECORDS, STRIDE, PathCollector, split_path
from tests.helpers import manifest, run_cli, runs_of

# --- collecting paths -------------------------------------------------------------------


def test_paths_cover_every_level_arrays_are_transparent_and_odd_keys_are_quoted() -> None:
    c = PathCollector()
    c.observe(orjson.dumps({"id": 1, "payload": {"headers": [{"name": "a", "value": "b"}],
                                                 "parts": [{"parts": [{"mimeType": "x"}]}]},
                            "@odata.etag": "W/1", "tags": ["x", "y"], "empty": {}}))
    assert c.paths()["paths"] == sorted([
        "id", "payload", "payload.headers", "payload.headers.name", "payload.headers.value",
        "payload.parts", "payload.parts.parts", "payload.parts.parts.mimeType", "`@odata.etag`",
        "tags", "empty"])
    assert split_path("`@odata.etag`") == ["@odata.etag"]
    assert split_path("a.`b.c`.d") == ["a", "b.c", "d"]


def test_values_never_enter_the_paths() -> None:
    c = PathCollector()
    c.observe_value({"name": "Jane Canary", "notes": ["Jane Canary"], "x": {"y": "Jane Canary"}})
    assert "Jane Canary" not in orjson.dumps(c.paths()).decode()


def test_cap_keeps_memory_bounded_and_says_so() -> None:
    c = PathCollector(cap=50)
    c.observe_value({f"id{i}": {"v": 1} for i in range(100)})  # an object keyed by ids
    r = c.paths()
    assert len(r["paths"]) == 50 and r["capped"] is True and r["overflow"] > 0


def test_sampling_after_the_first_records_is_counted() -> None:
    c = PathCollector()
    for i in range(FULL_RECORDS + 10 * STRIDE):
        c.observe_value({"id": i})
    r = c.paths()
    assert r["records"] == FULL_RECORDS + 10 * STRIDE
    assert r["walked"] == FULL_RECORDS + 10


# --- reading transforms statically ----------------------------------------------------


@pytest.mark.parametrize(("expr", "want", "dynamic"), [
    ('{"a": id, "b": payload.headers}', {"id", "payload.headers"}, False),
    ('payload.parts[mimeType = "text/plain"].body.data', {"payload.parts.mimeType", "payload.parts.body.data"}, False),
    ('($b := $mimeBody(payload); $b.text & $b.attachments[x = 1].y)', {"payload"}, False),
    ('($f := function($v) { $v.name & local }; $f(thing))', {"local", "thing"}, False),
    ('/* name.in.comment */ "string.name" & $.top & $$.root.leaf', {"top", "root.leaf"}, False),
    ('$match(text, /a.b/i) ? `@odata.etag` : other', {"text", "`@odata.etag`", "other"}, False),
    ('items.{"k": key, "v": $lowercase(value)}', {"items", "items.key", "items.value"}, False),
    ('$lookup($, "x" & suffix)', {"suffix"}, True),
    ('record.*', {"record"}, True),
    ('a and b or c in d', {"a", "b", "c", "d"}, False),
    ('$count(x) > 0 ? 1 : 2', {"x"}, False),
    ('($p := payload.x; $p.y & $p.z[a = 1].b)', {"payload.x", "payload.x.y", "payload.x.z.a", "payload.x.z.b"}, False),
    ('($p := payload; $p := other; $p.y)', {"payload", "other"}, False),
    ('($p := payload; $f := function($p) { $p.inner }; $f(x))', {"payload", "x"}, False),
    ('($p := $lowercase(x); $p.y)', {"x"}, False),
])
def test_transform_reads(expr: str, want: set[str], dynamic: bool) -> None:
    r = transform_reads(expr)
    assert r.paths == want and r.dynamic is dynamic and r.problem is None


def test_bundled_gmail_transform_reads() -> None:
    text = Path("config/transforms/email/gmail_to_canonical_v1.jsonata").read_text()
    r = transform_reads(text)
    assert {"id", "payload", "payload.headers", "labelIds", "internalDate", "snippet"} <= r.paths
    # names under variables and inside constructed objects are not reads of the record
    assert not ({"text", "attachments", "partId", "disposition", "utc"} & r.paths)


OPTIONAL_IN_SAMPLES = {"clinical/dataverse_contact_to_contact_v1": {"address1_line3", "emailaddress3"},
                       "finance/qbo_customer_to_contact_v1": {"BillAddr.Line3", "BillAddr.Line4",
                                                              "BillAddr.Line5"},
                       "finance/qbo_payment_to_payment_v1": {"PrivateNote"}}


def test_bundled_transforms_read_only_paths_their_inputs_have() -> None:
    """No false reads on real transforms: every path found is one the golden inputs carry,
    except the optional fields those samples leave out."""
    from engine.canon.registry import Registry

    for t in Registry.load().transforms.values():
        seen = PathCollector()
        for sample in t.samples:
            seen.observe(sample.input.read_bytes())
        reads = transform_reads(t.expression)
        assert reads.paths, t.id
        assert reads.paths - seen.found == OPTIONAL_IN_SAMPLES.get(t.id, set()), t.id


def test_field_names_follow_the_project_rule(tmp_path: Path) -> None:
    """drift shows a field path when every key in it is declared for the stream
    (engine.names), comparing backticked keys unquoted; else a keyed placeholder."""
    from engine.names import Namer
    from engine.store.workspace import Workspace
    from lorch_tui.driftcmd import Shown

    ws = Workspace(tmp_path)
    declared = frozenset({"payload", "headers", "@odata.etag"})
    shown = Shown(Namer(ws, frozenset({"messages"})), {"messages": Namer(ws, declared, "field")})
    assert shown.field("messages", "payload.headers", 1) == "payload.headers"
    assert shown.field("messages", "`@odata.etag`", 2) == "`@odata.etag`"
    hidden = shown.field("messages", "payload.intake_Jane_Canary_1980", 3)
    assert hidden.startswith("field #3 (") and "Jane" not in hidden
    assert hidden == shown.field("messages", "payload.intake_Jane_Canary_1980", 3)  # stable
    assert shown.streams.show("intake_Jane.csv", 2).startswith("stream #2 (")
    revealed = Shown(Namer(ws, reveal=True), {"messages": Namer(ws, frozenset(), "field", reveal=True)})
    assert revealed.field("messages", "payload.intake_Jane_Canary_1980", 3) == "payload.intake_Jane_Canary_1980"


# --- end to end through a real tap ------------------------------------------------------

REPLAY_TAP = '''\
import json, sys
stream, path = sys.argv[1], sys.argv[2]
print(json.dumps({"type": "SCHEMA", "stream": stream, "schema": {"type": "object"}, "key_properties": []}))
for line in open(path):
    if line.strip():
        print(json.dumps({"type": "RECORD", "stream": stream, "record": json.loads(line)}))
'''

TRANSFORM = '''(
  {"source_id": $string(id), "name": name ? {"full": name, "components": []} : null,
   "emails": email ? {"e1": {"address": email}} : null}
)'''


STATE_TAP = REPLAY_TAP + '''print(json.dumps({"type": "STATE", "value": {"bookmark": len(sys.argv)}}))
'''
"""The replay tap that ends with a STATE: an ``incremental: true`` extractor passes it on."""


def setup(tmp: Path, stream: str = "people", incremental: bool = False) -> tuple[Path, Path]:
    """A config with one singer extractor replaying tmp/records.jsonl, and a registry."""
    (tmp / "replay.py").write_text(STATE_TAP if incremental else REPLAY_TAP)
    reg = tmp / "transforms" / "test"
    reg.mkdir(parents=True)
    (reg / "people_to_contact_v1.jsonata").write_text(TRANSFORM)
    (reg / "people_to_contact_v1.meta.yaml").write_text(yaml.safe_dump({
        "id": "test/people_to_contact_v1", "version": 1, "input": {"source": "src", "stream": "people"},
        "output": {"kind": "contact", "schema": "contact.v1"}, "description": "test", "samples": []}))
    cfg = {"pipeline": {"name": "t", "version": "1"}, "workspace": str(tmp / "ws"),
           "extractors": [{"name": "ex1", "domain": "d", "source": "src", "account": "a1", "kind": "singer",
                           "command": [sys.executable, str(tmp / "replay.py"), stream, str(tmp / "records.jsonl")],
                           "incremental": incremental}],
           "stages": {"canonize": {"transforms_dir": str(tmp / "transforms"),
                                   "mappings": [{"source": "src", "stream": "people",
                                                 "transform": "test/people_to_contact_v1"}]}}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, tmp / "ws"


def extract(tmp: Path, cfg: Path, records: list[dict[str, Any]]) -> None:
    (tmp / "records.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    res = run_cli("extract", "ex1", "--config", str(cfg))
    assert res.returncode == 0, res.stderr


def drift_json(cfg: Path, *extra: str) -> list[dict[str, Any]]:
    res = run_cli("drift", "--config", str(cfg), "--json", *extra)
    assert res.returncode == 0, res.stderr
    data: list[dict[str, Any]] = orjson.loads(res.stdout)
    return data


PHI_FIELD = "Jane_Canary_1980_01_02"


def test_drift_between_runs_and_against_the_transform(tmp_path: Path) -> None:
    cfg, ws = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "A", "email": "a@x.org", "old_col": 1},
                            {"id": 2, "name": "B", "email": "b@x.org", "old_col": 2}])
    run = runs_of(ws / "vault" / "d" / "src" / "a1")[-1]
    fields = manifest(run)["streams"]["people"]["fields"]
    assert fields["paths"] == ["email", "id", "name", "old_col"] and fields["records"] == 2
    first = drift_json(cfg)[0]
    assert first["mark"] == "✓" and first["previous_run"] is None

    # email renamed, a PHI-named column added, old_col dropped
    extract(tmp_path, cfg, [{"id": 3, "name": "C", "mail": "c@x.org", PHI_FIELD: "x"}])
    res = run_cli("drift", "--config", str(cfg), "--json")
    assert PHI_FIELD not in res.stdout  # undeclared names never leave without --reveal
    acct = orjson.loads(res.stdout)[0]
    s = acct["streams"][0]
    assert acct["mark"] == "!" and s["stream"] == "people" and s["transform"] == "test/people_to_contact_v1"
    assert s["vanished_reads"] == ["email"] and s["missing_reads"] == ["email"]
    assert len(s["appeared"]) == 2 and all(a.startswith("field #") for a in s["appeared"])
    assert len(s["vanished"]) == 2 and "email" in s["vanished"]
    revealed = drift_json(cfg, "--reveal")[0]["streams"][0]
    assert revealed["appeared"] == sorted(["mail", PHI_FIELD])
    assert revealed["vanished"] == ["email", "old_col"]

    text = run_cli("drift", "ex1", "--config", str(cfg))
    assert text.returncode == 0 and PHI_FIELD not in text.stdout and "email" in text.stdout
    assert "vanished" in text.stdout

    val = run_cli("validate", "--config", str(cfg), "--skip-permissions")
    assert val.returncode == 0, val.stdout + val.stderr
    assert "drift:" in val.stdout and "reads 1 field(s) that vanished" in val.stdout and "email" in val.stdout
    assert PHI_FIELD not in val.stdout


def test_stream_names_from_the_data_are_placeholders(tmp_path: Path) -> None:
    cfg, _ = setup(tmp_path, stream="intake_Jane_Canary_1980.csv")
    extract(tmp_path, cfg, [{"id": 1}])
    res = run_cli("drift", "--config", str(cfg), "--json")
    assert res.returncode == 0 and "Jane" not in res.stdout
    names = [s["stream"] for s in orjson.loads(res.stdout)[0]["streams"]]
    assert "people" in names and any(n.startswith("stream #") for n in names)
    assert "intake_Jane_Canary_1980.csv" in run_cli("drift", "--config", str(cfg), "--reveal").stdout


def test_a_mapped_stream_that_disappears_loses_every_field(tmp_path: Path) -> None:
    cfg, _ = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "A", "email": "a@x.org"}])
    text = yaml.safe_load(cfg.read_text())
    text["extractors"][0]["command"][2] = "people_v2"  # the source renamed its table
    cfg.write_text(yaml.safe_dump(text, sort_keys=False))
    extract(tmp_path, cfg, [{"id": 2, "name": "B", "email": "b@x.org"}])
    acct = drift_json(cfg)[0]
    people = next(s for s in acct["streams"] if s["stream"] == "people")
    assert acct["mark"] == "!" and people["fields"] == 0
    assert people["vanished_reads"] == ["email", "id", "name"]
    renamed = next(s for s in acct["streams"] if s["stream"] != "people")
    assert renamed["stream"].startswith("stream #") and len(renamed["appeared"]) == 3


def test_runs_without_field_paths_give_no_verdict(tmp_path: Path) -> None:
    cfg, ws = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "A"}])
    run = runs_of(ws / "vault" / "d" / "src" / "a1")[-1]
    m = manifest(run)
    del m["streams"]["people"]["fields"]  # a manifest written before this feature
    (run / "manifest.json").write_bytes(orjson.dumps(m))
    acct = drift_json(cfg)[0]
    assert acct["mark"] == "-" and acct["streams"][0]["known"] is False
    assert run_cli("validate", "--config", str(cfg), "--skip-permissions").returncode == 0


def test_unknown_extractor_is_a_usage_error(tmp_path: Path) -> None:
    cfg, _ = setup(tmp_path)
    res = run_cli("drift", "nope", "--config", str(cfg))
    assert res.returncode == 2 and "no extractor named 'nope'" in res.stderr


def test_latest_table_shows_the_mark(tmp_path: Path) -> None:
    from engine.config.load import load
    from engine.ops.inspect import account_views
    from engine.store.workspace import Workspace
    from lorch_tui.widgets.latest import COLUMNS, row_cells

    cfg, ws = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, "name": "A", "email": "a@x.org"}])
    extract(tmp_path, cfg, [{"id": 1, "name": "A"}])
    loaded = load(str(cfg), None)
    views = account_views(loaded.config, Workspace(ws))
    assert views[0].drift == "!"
    cells = dict(zip(COLUMNS, row_cells(views[0], "", 26.0), strict=True))
    assert str(cells["drift"]) == "!"


def test_drift_on_a_missing_workspace_creates_nothing(tmp_path: Path) -> None:
    cfg, ws = setup(tmp_path)
    res = run_cli("drift", "--config", str(cfg))
    assert res.returncode == 0 and "no LATEST run yet" in res.stdout
    assert not ws.exists()


def test_the_placeholder_key_is_private_and_stable(tmp_path: Path) -> None:
    cfg, ws = setup(tmp_path)
    extract(tmp_path, cfg, [{"id": 1, PHI_FIELD: 1}])
    extract(tmp_path, cfg, [{"id": 1}])
    first = drift_json(cfg)[0]["streams"][0]["vanished"]
    key = ws / "keys" / "names.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert first == drift_json(cfg)[0]["streams"][0]["vanished"] and first[0].startswith("field #")


# --- incremental chains (issue 19: a rename across an incremental run went unreported) --


def set_incremental(cfg: Path, on: bool) -> None:
    text = yaml.safe_load(cfg.read_text())
    text["extractors"][0]["incremental"] = on
    cfg.write_text(yaml.safe_dump(text, sort_keys=False))


def latest_manifest(ws: Path) -> dict[str, Any]:
    return manifest(runs_of(ws / "vault" / "d" / "src" / "a1")[-1])


FULL = [{"id": i, "name": f"N{i}", "email": f"{i}@x.org"} for i in range(1, 6)]


def test_a_rename_across_an_incremental_run_is_a_vanished_read(tmp_path: Path) -> None:
    """The reviewer's sequence: a full run with `email`, an incremental run of two changed
    records already renamed (and a deletion marker), then a full run with `mail` only. The
    full run is compared with the chain the previous run was built from, not with the
    delta: the rename is `!` with the warning, in `drift` and in `validate`."""
    cfg, ws = setup(tmp_path, incremental=True)
    extract(tmp_path, cfg, FULL)
    assert latest_manifest(ws)["incremental"]["state_passed"] is False  # the first run is full
    extract(tmp_path, cfg, [{"id": 2, "name": "N2", "mail": "2@x.org"}, {"id": 3, "name": "N3", "mail": "3@x.org"},
                            {"id": 4, "_sdc_deleted_at": "2001-01-01T00:00:00Z"}])
    assert latest_manifest(ws)["incremental"]["state_passed"] is True
    fields = latest_manifest(ws)["streams"]["people"]["fields"]
    assert fields["markers"] == 1 and fields["always"] == ["id", "mail", "name"]
    delta = drift_json(cfg)[0]
    s = delta["streams"][0]
    assert delta["incremental"] is True and len(delta["chain"]) == 2
    # every changed record lost `email`: the transform nulls it for them
    assert delta["mark"] == "!" and s["vanished_reads"] == ["email"] and s["vanished"] == ["email"]
    assert len(s["appeared"]) == 2  # mail and _sdc_deleted_at, both undeclared: placeholders
    assert all(a.startswith("field #") for a in s["appeared"])

    set_incremental(cfg, False)
    extract(tmp_path, cfg, [{**{k: v for k, v in r.items() if k != "email"}, "mail": r["email"]} for r in FULL])
    acct = drift_json(cfg)[0]
    s = acct["streams"][0]
    assert acct["incremental"] is False and acct["previous_chain"] == delta["chain"]
    assert acct["mark"] == "!" and s["vanished_reads"] == ["email"] and "email" in s["vanished"]
    assert s["appeared"] == []  # `mail` was already in the chain the previous run built on
    text = run_cli("drift", "ex1", "--config", str(cfg))
    assert text.returncode == 0, text.stderr
    assert "ex1 !" in text.stdout and "WARNING read by the transform but vanished (1): email" in text.stdout
    assert "mail" not in text.stdout.replace("email", "")  # an undeclared name stays a placeholder
    val = run_cli("validate", "--config", str(cfg), "--skip-permissions")
    assert val.returncode == 0, val.stdout + val.stderr
    assert "reads 1 field(s) that vanished" in val.stdout and "email" in val.stdout


def test_only_incremental_runs_still_report_a_field_every_changed_record_lost(tmp_path: Path) -> None:
    """An account that is always incremental: the delta that renamed the field is `!` (and
    validate warns); the next delta still lists the read as lost (`?`), as a full run lists a
    read field in no record once the rename is old news."""
    cfg, ws = setup(tmp_path, incremental=True)
    extract(tmp_path, cfg, FULL)
    extract(tmp_path, cfg, [{"id": 1, "name": "N1", "email": "1@x.org"}])  # an ordinary delta
    assert drift_json(cfg)[0]["mark"] == "✓"
    extract(tmp_path, cfg, [{"id": 2, "name": "N2", "mail": "2@x.org"}])
    acct = drift_json(cfg)[0]
    assert acct["incremental"] is True and len(acct["chain"]) == 3
    assert acct["mark"] == "!" and acct["streams"][0]["vanished_reads"] == ["email"]
    val = run_cli("validate", "--config", str(cfg), "--skip-permissions")
    assert "reads 1 field(s) that vanished" in val.stdout and "email" in val.stdout
    extract(tmp_path, cfg, [{"id": 3, "name": "N3", "mail": "3@x.org"}])
    acct = drift_json(cfg)[0]
    s = acct["streams"][0]
    assert latest_manifest(ws)["incremental"]["state_passed"] is True
    assert acct["mark"] == "?" and s["vanished"] == [] and s["missing_reads"] == ["email"] and s["lost"] == ["email"]
    text = run_cli("drift", "ex1", "--config", str(cfg)).stdout
    assert "read by the transform, lost by every changed record (1): email" in text


def test_a_delta_without_an_optional_field_or_with_markers_only_loses_nothing(tmp_path: Path) -> None:
    """Records absent from a delta are not fields gone: a field only some records of the full
    run had, missing from the few changed records, is no drift; nor is a delta of deletion
    markers. A read field that no record of the chain has is still `?`."""
    cfg, _ = setup(tmp_path, incremental=True)
    extract(tmp_path, cfg, [{"id": 1, "name": "A", "email": "a@x.org"}, {"id": 2, "name": "B"}])
    extract(tmp_path, cfg, [{"id": 2, "name": "B2"}])
    acct = drift_json(cfg)[0]
    assert acct["incremental"] is True and acct["mark"] == "✓", acct
    extract(tmp_path, cfg, [{"id": 1, "@removed": {"reason": "deleted"}}])
    acct = drift_json(cfg)[0]
    s = acct["streams"][0]
    assert s["vanished"] == [] and s["lost"] == [] and len(s["appeared"]) == 2  # @removed, @removed.reason
    assert acct["mark"] == "Δ"

    (tmp_path / "never").mkdir()
    other, _ = setup(tmp_path / "never", incremental=True)
    extract(tmp_path / "never", other, [{"id": 1, "name": "A"}])
    extract(tmp_path / "never", other, [{"id": 1, "name": "A2"}])
    acct = drift_json(other)[0]
    assert acct["incremental"] is True and acct["mark"] == "?"  # no record of the chain has email
    assert acct["streams"][0]["missing_reads"] == ["email"] and acct["streams"][0]["vanished_reads"] == []


def test_an_optional_field_of_last_night_s_small_delta_is_not_lost(tmp_path: Path) -> None:
    """A reviewer's noise: last night's delta was one mail with a Cc, tonight's two without:
    `cc` read as a field every record had and then lost (`!`, validate warned). Only a field
    every record of the chain's full run had can be lost."""
    cfg, _ = setup(tmp_path, incremental=True)
    extract(tmp_path, cfg, [{**r, "cc": "c@x.org"} if r["id"] == 1 else r for r in FULL])  # cc: optional
    extract(tmp_path, cfg, [{"id": 1, "name": "N1", "email": "1@x.org", "cc": "c@x.org"}])
    extract(tmp_path, cfg, [{"id": 2, "name": "N2", "email": "2@x.org"}, {"id": 3, "name": "N3", "email": "3@x.org"}])
    acct = drift_json(cfg)[0]
    assert acct["streams"][0]["lost"] == [] and acct["streams"][0]["vanished"] == [], acct
    assert acct["mark"] != "!"


def test_a_quiet_night_s_empty_delta_hides_no_rename(tmp_path: Path) -> None:
    """An incremental run that brought nothing (the usual quiet night) recorded no field paths
    for any stream: drift then said `-` (no paths) for the account, and the next delta that
    renamed a read field was `Δ` with every field 'appeared' instead of `!`."""
    cfg, ws = setup(tmp_path, incremental=True)
    extract(tmp_path, cfg, FULL)
    extract(tmp_path, cfg, [])  # nothing changed at the source
    assert latest_manifest(ws)["incremental"]["state_passed"] is True
    quiet = drift_json(cfg)[0]
    assert quiet["mark"] == "✓", quiet
    extract(tmp_path, cfg, [{"id": 2, "name": "N2", "mail": "2@x.org"}, {"id": 3, "name": "N3", "mail": "3@x.org"}])
    acct = drift_json(cfg)[0]
    s = acct["streams"][0]
    assert acct["mark"] == "!" and s["vanished_reads"] == ["email"], acct
    assert len(s["appeared"]) == 1  # only `mail` (a placeholder), not every field of the chain
    val = run_cli("validate", "--config", str(cfg), "--skip-permissions")
    assert "reads 1 field(s) that vanished" in val.stdout, val.stdout


def _canonize_warnings(cfg: Path) -> dict[str, int]:
    res = run_cli("run", "--stage", "canonize", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    events = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert all(PHI_FIELD not in x and "email" not in x for x in res.stdout.splitlines()
               if '"task_warning"' in x)  # a count, never the field's name
    return {e["code"]: e["count"] for e in events if e["type"] == "task_warning"}


def test_a_run_says_when_a_field_its_transform_reads_vanished(tmp_path: Path) -> None:
    """A rename at the source took `email` out of every record: `drift` and `validate` said
    `!`, but the run itself (all a cron user reads) was silent while the canonical contacts
    lost their address (and their client). Canonize now warns, by count, every run while it
    lasts."""
    cfg, ws = setup(tmp_path)
    extract(tmp_path, cfg, FULL)
    assert "SOURCE_FIELD_VANISHED" not in _canonize_warnings(cfg)
    extract(tmp_path, cfg, [{**{k: v for k, v in r.items() if k != "email"}, "mail": r["email"]} for r in FULL])
    assert _canonize_warnings(cfg).get("SOURCE_FIELD_VANISHED") == 1
    text = run_cli("run", "--stage", "canonize", "--config", str(cfg))  # skipped: said again
    assert "SOURCE_FIELD_VANISHED" in text.stdout + text.stderr, text.stdout
    assert "lorchestra drift" in text.stdout + text.stderr
