"""docs/configuration.md's key table is generated from the config models: prove it is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from engine.config import PipelineConfig, document_models
from engine.config.doc import BEGIN, DOC, END, generate
from tests.helpers import REPO, clean_env, run_cli


def test_the_committed_key_table_matches_the_models() -> None:
    text = DOC.read_text()
    block = text[text.index(BEGIN): text.index(END) + len(END)]
    assert block == generate(), "run `python -m engine.config.doc --write` after changing engine/config/models.py"


def test_every_key_is_documented() -> None:
    document_models()  # the docstrings become descriptions only when docs are made (issue 18)

    def walk(model: type, prefix: str = "") -> list[str]:
        out = []
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            assert info.description, f"{prefix}{name} has no docstring"
            out.append(name)
        return out

    assert walk(PipelineConfig)
    table = generate()
    for name in PipelineConfig.model_fields:
        assert f"`{name}" in table


def test_field_docstrings_are_read_as_pydantic_reads_them() -> None:
    """engine.config.fielddocs (read on demand) finds exactly what `use_attribute_docstrings` would."""
    import inspect

    from pydantic._internal._docs_extraction import extract_docstrings_from_cls

    import engine.config.models as config_module
    from engine.config.fielddocs import class_docstrings

    ours = class_docstrings("engine.config.models")
    models = [m for m in vars(config_module).values()
              if inspect.isclass(m) and issubclass(m, config_module.StrictModel)]
    assert len(models) > 10
    for model in models:
        assert ours.get(model.__name__, {}) == extract_docstrings_from_cls(model, use_inspect=True), model


AFTER_VALIDATION = """\
import sys, orjson
from engine.config.load import load
from engine.config import PipelineConfig, document_models
assert load(sys.argv[1], None).config.extractors[0].name == "a"  # builds the schemas, no descriptions yet
document_models()
print(orjson.dumps(PipelineConfig.model_json_schema()).decode())
assert load(sys.argv[1], None).config.extractors[0].name == "a"  # still validates after the rebuild
"""


def test_a_schema_made_after_validation_still_carries_every_description(tmp_path: Path) -> None:
    """Validating builds the models' schemas without descriptions; documenting rebuilds them, so
    the schema equals the one `lorchestra config schema` prints from a fresh process."""
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"workspace: {tmp_path / 'ws'}\nextractors:\n  - {{name: a, domain: email, source: gmail, "
                   "account: a, kind: demo, demo: {tap: gmail, records: 1}}\n")
    late = subprocess.run([sys.executable, "-c", AFTER_VALIDATION, str(cfg)], capture_output=True, text=True,
                          cwd=REPO, env=clean_env(), timeout=60)
    assert late.returncode == 0, late.stderr
    fresh = run_cli("config", "schema")
    assert fresh.returncode == 0, fresh.stderr
    want = orjson.loads(fresh.stdout)
    got = orjson.loads(late.stdout)
    assert got["$defs"]["Extractor"]["properties"]["account"]["description"]
    assert got == {k: v for k, v in want.items() if k not in ("$schema", "$comment")}


@pytest.mark.parametrize("module_name", ["engine.events", "engine.measures.registry"])
def test_field_docstrings_stay_readable_on_demand(module_name: str) -> None:
    """Events and measure models no longer copy docstrings at import (issue 18);
    engine.config.fielddocs reads them as pydantic would, and the models still validate after it
    rebuilt them."""
    import importlib
    import inspect

    from pydantic import BaseModel
    from pydantic._internal._docs_extraction import extract_docstrings_from_cls

    from engine.config.fielddocs import class_docstrings, document

    module = importlib.import_module(module_name)
    ours = class_docstrings(module_name)
    models = [m for m in vars(module).values()
              if inspect.isclass(m) and issubclass(m, BaseModel) and m.__module__ == module_name]
    assert len(models) > 5
    for model in models:
        assert ours.get(model.__name__, {}) == extract_docstrings_from_cls(model, use_inspect=True), model
    assert sum(len(docs) for docs in ours.values()) > 20
    document(models)
    for model in models:
        for name, doc in ours.get(model.__name__, {}).items():
            assert model.model_fields[name].description == doc


def test_models_still_validate_after_their_docs_were_read() -> None:
    import engine.events as events
    import engine.measures.registry as registry
    from engine.config.fielddocs import document
    from engine.measures.registry import load

    document([events.RunStarted, registry.Measure, registry.Item, registry.Binding, registry.Band])
    assert events.parse_event(events.dump_event(events.RunStarted(
        run_id="r", trigger="cli", pipeline="p", stages=["extract"], tasks=1))).run_id == "r"
    reg = load()
    assert reg.measures and not reg.problems
