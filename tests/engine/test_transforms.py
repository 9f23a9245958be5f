"""The bundled transform registry: golden samples, schemas, demo coverage, determinism.

Every transform in config/transforms is held to its golden samples (the samples are the
spec), every canonical schema is a valid, fully documented JSON Schema 2020-12, every record
the demo taps emit canonizes with zero rejects, and output is byte-for-byte deterministic.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml

from engine.canon.compiled import CompiledTransform, RecordRejected
from engine.canon.registry import Registry, Transform
from engine.config.load import DEMO_CONFIG
from engine.demo_taps import TAP_NAMES, forms
from engine.demo_taps.spec import TapContext

REGISTRY = Registry.load()
TRANSFORMS = sorted(REGISTRY.transforms.values(), key=lambda t: t.id)
SAMPLES = [(t, s) for t in TRANSFORMS for s in t.samples]
TAP_SOURCE = {"gmail": "gmail", "msgraph": "exchange", "dataverse": "dataverse",
              "sheets": "sheets", "quickbooks": "quickbooks", "forms": "forms",
              "formsheets": "sheets"}
"""Demo tap name -> the config source name demo.yaml gives its extractors."""
SEEDS = (11, 12)
RECORDS = 60
ENVELOPE_KEYS = ("kind", "source", "account")

_compiled: dict[str, CompiledTransform] = {}


def compiled(t: Transform) -> CompiledTransform:
    """One compiled transform per id for the whole module (as a worker would)."""
    if t.id not in _compiled:
        _compiled[t.id] = CompiledTransform(REGISTRY, t)
    return _compiled[t.id]


def by_input() -> dict[tuple[str, str], Transform]:
    return {(t.source, t.stream): t for t in TRANSFORMS}


def canonical_bytes(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


# --------------------------------------------------------------------------- registry and schemas


def test_registry_loads_without_problems() -> None:
    assert REGISTRY.problems == []
    assert {t.id for t in TRANSFORMS} >= {
        "email/gmail_to_canonical_v1", "email/graph_to_canonical_v1",
        "clinical/dataverse_contact_to_contact_v1",
        "clinical/dataverse_session_to_clinical_session_v1",
        "finance/qbo_customer_to_contact_v1", "finance/qbo_invoice_to_invoice_v1",
        "finance/qbo_payment_to_payment_v1", "ops/sheets_clients_to_contact_v1",
        "ops/sheets_session_log_to_clinical_session_v1",
    }


def test_each_input_has_exactly_one_transform() -> None:
    inputs = [(t.source, t.stream) for t in TRANSFORMS]
    assert len(inputs) == len(set(inputs))


SCHEMA_FILES = sorted(REGISTRY.schemas_dir.glob("*.json"))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path: Path) -> None:
    schema = orjson.loads(path.read_bytes())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{path.name}")
    assert jsonschema_rs.meta.is_valid(schema)
    jsonschema_rs.Draft202012Validator(schema)  # compiles ($refs resolve)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_envelope_and_strict_top_level(path: Path) -> None:
    schema = orjson.loads(path.read_bytes())
    kind = path.name.split(".")[0]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == {"kind", "source", "account", "source_id"}
    assert schema["properties"]["kind"]["const"] == kind
    for key in ("source", "account", "source_id"):
        assert schema["properties"][key]["type"] == "string"
    for key, prop in schema["properties"].items():
        if key not in ("kind", "source", "account", "source_id"):
            assert _allows_null(prop), f"{path.name}: {key} must be nullable (SOURCES.md §4.4)"


def _allows_null(prop: dict[str, Any]) -> bool:
    kinds = prop.get("type")
    if kinds == "null" or (isinstance(kinds, list) and "null" in kinds):
        return True
    return any(_allows_null(p) for p in prop.get("anyOf", []))


def _properties(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{where}/{name}", prop
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}/{i}")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_schema_property_is_documented(path: Path) -> None:
    schema = orjson.loads(path.read_bytes())
    missing = [where for where, prop in _properties(schema, "") if not prop.get("description")]
    assert missing == []


def test_every_transform_output_schema_exists() -> None:
    for t in TRANSFORMS:
        assert REGISTRY.schema_path(t.schema).is_file(), t.id
        assert t.schema == f"{t.kind}.v1"


# --------------------------------------------------------------------------- golden samples


@pytest.mark.parametrize("t", TRANSFORMS, ids=lambda t: t.id)
def test_every_transform_has_golden_samples(t: Transform) -> None:
    assert t.samples, f"{t.id} has no samples"
    for s in t.samples:
        assert s.input.is_file() and s.expected.is_file(), s


@pytest.mark.parametrize(("t", "sample"), SAMPLES, ids=lambda x: getattr(x, "id", None) or x.input.stem)
def test_golden_sample(t: Transform, sample: Any) -> None:
    record = orjson.loads(sample.input.read_bytes())
    expected = orjson.loads(sample.expected.read_bytes())
    got = compiled(t).apply(record, {"source": t.source, "account": "golden"})
    assert got == expected
    assert expected["kind"] == t.kind and expected["source"] == t.source
    assert expected["account"] == "golden"


@pytest.mark.parametrize(("t", "sample"), SAMPLES, ids=lambda x: getattr(x, "id", None) or x.input.stem)
def test_bundled_transforms_emit_every_schema_field(t: Transform, sample: Any) -> None:
    """House rule: a value the source lacks is null, never an absent key (flat, index-friendly)."""
    expected = orjson.loads(sample.expected.read_bytes())
    props = REGISTRY.schema(t.schema)["properties"]
    assert set(expected) == set(props)


def test_mail_samples_cover_the_tricky_cases() -> None:
    names = {s.input.stem.split("__")[1] for t, s in SAMPLES if t.kind == "email"}
    assert {"alternative", "mixed_related_attachment", "single_part_latin1_no_padding",
            "missing_message_id_and_date", "address_lists_odd_zone", "forwarded_rfc822",
            "html_only_bad_bytes"} <= names
    inputs = {s.input.stem.split("__")[1]: orjson.loads(s.input.read_bytes())
              for t, s in SAMPLES if t.id == "email/gmail_to_canonical_v1"}
    unpadded = inputs["single_part_latin1_no_padding"]["payload"]["body"]["data"]
    assert len(unpadded) % 4 != 0 and not unpadded.endswith("=")
    header_names = {h["name"] for h in inputs["mixed_related_attachment"]["payload"]["headers"]}
    assert {"message-id", "SUBJECT", "cc", "DATE"} <= header_names


# --------------------------------------------------------------------------- the demo taps


def _expected_count(tap: str, seed: int) -> int:
    """RECORDS, except a form's linked sheet: the rows of its form among RECORDS responses."""
    if tap != "formsheets":
        return RECORDS
    ctx = TapContext(tap, f"acct-{seed}", seed, RECORDS)
    return len(forms.sheet_rows(ctx, forms.Responses(ctx))[1])


def run_tap(tap: str, seed: int, tmp: Path) -> list[dict[str, Any]]:
    config = tmp / f"{tap}-{seed}.json"
    config.write_text(json.dumps({"account": f"acct-{seed}", "records": RECORDS, "seed": seed}))
    out = subprocess.run([sys.executable, "-m", "engine.demo_taps", tap, "--config", str(config)],
                         capture_output=True, check=True, timeout=120).stdout
    return [m for m in map(orjson.loads, out.splitlines()) if m.get("type") == "RECORD"]


@pytest.fixture(scope="module")
def demo_records(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("taps")
    return {(tap, seed): run_tap(tap, seed, tmp) for tap in TAP_NAMES for seed in SEEDS}


@pytest.mark.parametrize("tap", TAP_NAMES)
def test_every_demo_record_canonizes_with_zero_rejects(
        tap: str, demo_records: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    source = TAP_SOURCE[tap]
    transforms = by_input()
    rejects: list[tuple[str, str, str]] = []
    kinds: set[str] = set()
    for seed in SEEDS:
        messages = demo_records[(tap, seed)]
        assert len(messages) == _expected_count(tap, seed)
        for m in messages:
            t = transforms.get((source, m["stream"]))
            assert t is not None, f"no transform for {source}/{m['stream']}"
            try:
                out = compiled(t).apply(m["record"], {"source": source, "account": f"acct-{seed}"})
            except RecordRejected as exc:
                rejects.append((m["stream"], exc.code, exc.reason[:200]))
                continue
            kinds.add(out["kind"])
            assert set(out) == set(REGISTRY.schema(t.schema)["properties"])
    assert rejects == []
    assert kinds


def test_demo_config_maps_every_demo_stream(
        demo_records: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    mappings = {(m["source"], m["stream"]): m["transform"]
                for m in config["stages"]["canonize"]["mappings"]}
    sources = {e["source"] for e in config["extractors"]}
    assert sources == set(TAP_SOURCE.values())
    for (tap, _seed), messages in demo_records.items():
        for stream in {m["stream"] for m in messages}:
            tid = mappings.get((TAP_SOURCE[tap], stream))
            assert tid is not None, f"demo.yaml has no mapping for {TAP_SOURCE[tap]}/{stream}"
            t = REGISTRY.get(tid)
            assert (t.source, t.stream) == (TAP_SOURCE[tap], stream)
    assert len(mappings) == len(config["stages"]["canonize"]["mappings"])


def test_clinical_notes_never_reach_the_canonical_record(
        demo_records: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    transforms = by_input()
    checked = 0
    for (tap, seed), messages in demo_records.items():
        for m in messages:
            record = m["record"]
            notes = [record.get(k) for k in ("cr123_notes", "Notes", "Diagnosis", "description")]
            notes = [n for n in notes if isinstance(n, str) and len(n) > 12]
            if tap not in ("dataverse", "sheets") or not notes:
                continue
            t = transforms[(TAP_SOURCE[tap], m["stream"])]
            out = compiled(t).apply(record, {"source": t.source, "account": str(seed)})
            text = orjson.dumps(out).decode()
            assert not any(n in text for n in notes), t.id
            assert out["has_notes"] is True
            checked += 1
    assert checked > 20


def test_cross_account_duplicates_share_a_dedupe_key(tmp_path: Path) -> None:
    """The demo's seed-wide messages appear in Gmail and Exchange with one Message-ID."""
    keys: dict[str, set[str]] = {}
    for tap, account in (("gmail", "a1"), ("gmail", "a2"), ("msgraph", "x1")):
        config = tmp_path / f"{account}.json"
        config.write_text(json.dumps({"account": account, "records": 40, "seed": 5}))
        out = subprocess.run([sys.executable, "-m", "engine.demo_taps", tap, "--config", str(config)],
                             capture_output=True, check=True, timeout=120).stdout
        t = by_input()[(TAP_SOURCE[tap], "messages")]
        keys[account] = {
            compiled(t).apply(m["record"], {"source": t.source, "account": account})["dedupe_key"]
            for m in map(orjson.loads, out.splitlines()) if m["type"] == "RECORD"}
    shared = keys["a1"] & keys["a2"] & keys["x1"]
    assert len(shared) >= 3


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("tap", TAP_NAMES)
def test_nulls_and_missing_fields_never_fail_a_transform(
        tap: str, demo_records: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    """Sources omit fields and send nulls (SOURCES.md §4.4): only the record key may matter."""
    transforms = by_input()
    seen: set[str] = set()
    for m in demo_records[(tap, SEEDS[0])]:
        if m["stream"] in seen:
            continue
        seen.add(m["stream"])
        t = transforms[(TAP_SOURCE[tap], m["stream"])]
        for key in m["record"]:
            for variant in ("null", "missing"):
                record = copy.deepcopy(m["record"])
                if variant == "null":
                    record[key] = None
                else:
                    del record[key]
                try:
                    compiled(t).apply(record, {"source": t.source, "account": "x"})
                except RecordRejected as exc:
                    assert exc.code == "SCHEMA_INVALID", (t.id, key, variant, exc.reason)


@pytest.mark.parametrize(("tid", "break_it", "code"), [
    ("email/gmail_to_canonical_v1", lambda r: r.pop("id"), "SCHEMA_INVALID"),
    ("email/graph_to_canonical_v1", lambda r: r.update(id=42), "SCHEMA_INVALID"),
    ("finance/qbo_invoice_to_invoice_v1", lambda r: r.update(Id=None), "SCHEMA_INVALID"),
    ("clinical/dataverse_contact_to_contact_v1", lambda r: r.update(emailaddress1=5),
     "SCHEMA_INVALID"),  # $emailAddress(5) is null: an e-mail entry without an address
    ("clinical/dataverse_contact_to_contact_v1", lambda r: r.update(contactid=[1, 2]),
     "TRANSFORM_FAILED"),
])
def test_a_broken_record_is_rejected(tid: str, break_it: Any, code: str) -> None:
    t = REGISTRY.get(tid)
    record = orjson.loads(t.samples[0].input.read_bytes())
    break_it(record)
    with pytest.raises(RecordRejected) as info:
        compiled(t).apply(record, {"source": t.source, "account": "x"})
    assert info.value.code == code
    assert info.value.code in ("SCHEMA_INVALID", "TRANSFORM_FAILED")


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(("t", "sample"), SAMPLES, ids=lambda x: getattr(x, "id", None) or x.input.stem)
def test_same_input_gives_byte_identical_output(t: Transform, sample: Any) -> None:
    record = orjson.loads(sample.input.read_bytes())
    envelope = {"source": t.source, "account": "golden"}
    first = canonical_bytes(compiled(t).apply(copy.deepcopy(record), envelope))
    again = canonical_bytes(compiled(t).apply(copy.deepcopy(record), envelope))
    fresh = canonical_bytes(CompiledTransform(REGISTRY, t).apply(copy.deepcopy(record), envelope))
    assert first == again == fresh


def test_demo_run_is_deterministic(demo_records: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    transforms = by_input()

    def digest_all() -> list[bytes]:
        """Every demo record canonized by freshly compiled transforms (a new worker)."""
        fresh: dict[str, CompiledTransform] = {}
        out = []
        for (tap, _seed), messages in sorted(demo_records.items()):
            for m in messages:
                t = transforms[(TAP_SOURCE[tap], m["stream"])]
                if t.id not in fresh:
                    fresh[t.id] = CompiledTransform(REGISTRY, t)
                ct = fresh[t.id]
                out.append(canonical_bytes(ct.apply(m["record"], {"source": t.source, "account": "d"})))
        return out

    assert digest_all() == digest_all()


def test_transforms_do_not_read_the_clock_or_random() -> None:
    for t in TRANSFORMS:
        text = t.expression
        for banned in ("$now(", "$millis(", "$random("):
            assert banned not in text, f"{t.id} uses {banned}"
