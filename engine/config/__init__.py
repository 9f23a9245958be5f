"""The config file: its models, finding and loading it, its error messages, its generated reference.

* :mod:`engine.config.models` — the pydantic models of DESIGN.md section 4 (re-exported here,
  so ``from engine.config import PipelineConfig`` names them).
* :mod:`engine.config.fieldtypes` — the field types the models share: safe names, paths,
  command lists (``SafeName`` and ``ConfigPath`` re-exported here).
* :mod:`engine.config.numbers` — the number types of the models (``Int``, ``Float``): a
  boolean is never a number.
* :mod:`engine.config.load` — finding the file, reading the YAML with line numbers, ``~`` and
  ``${VAR}``, validating (``load``, ``LoadedConfig``).
* :mod:`engine.config.cross` — checks that span several keys (``cross_check``).
* :mod:`engine.config.errors` — pydantic errors as ``FILE:LINE key: message`` lines.
* :mod:`engine.config.fielddocs` — field docstrings read only when documentation is made.
* :mod:`engine.config.doc` — ``python -m engine.config.doc [--write]``: the key reference of
  docs/configuration.md.
"""

from __future__ import annotations

from engine.config.cross import RESERVED_SOURCES, cross_check
from engine.config.fieldtypes import ConfigPath, SafeName
from engine.config.models import (
    DEMO_TAPS,
    STAGES,
    CanonizeStage,
    ClientsConfig,
    DemoFaults,
    DemoSpec,
    Extractor,
    ExtractStage,
    IndexStage,
    Loader,
    Loc,
    Mapping,
    MeltanoSpec,
    PipelineConfig,
    PipelineInfo,
    ProjectStage,
    Stages,
    StrictModel,
    WhereValue,
    document_models,
)

__all__ = [
    "DEMO_TAPS", "STAGES", "CanonizeStage", "ClientsConfig", "ConfigPath", "DemoFaults", "DemoSpec",
    "ExtractStage", "Extractor", "IndexStage", "Loader", "Loc", "Mapping", "MeltanoSpec", "PipelineConfig", "ProjectStage",
    "PipelineInfo", "SafeName", "Stages", "StrictModel", "WhereValue", "cross_check", "document_models",
    "RESERVED_SOURCES",
]
