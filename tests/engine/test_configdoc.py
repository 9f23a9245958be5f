"""docs/configuration.md's key table is generated from the config models: prove it is current."""

from __future__ import annotations

from engine.config import PipelineConfig
from engine.configdoc import BEGIN, DOC, END, generate


def test_the_committed_key_table_matches_the_models() -> None:
    text = DOC.read_text()
    block = text[text.index(BEGIN): text.index(END) + len(END)]
    assert block == generate(), "run `python -m engine.configdoc --write` after changing engine/config.py"


def test_every_key_is_documented() -> None:
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
