"""The decision pass's memory is given back as soon as the pass ends, without the collector.

The project task tunes the cyclic collector down (``tune_gc``: it builds one large graph),
so an object caught in a reference cycle lives until a rare full collection. Session 20's
name index held a bound method of the decision pass, a cycle: every decision it memoised
(the links of each referenced document, the holders of every key, the name index) stayed
alive through the measures, the tables and the charts, and the chart writer forked with it,
40 MiB of the task's peak at 1,000,000 demo documents (234 MiB against the goal of 200).
Here the project stage runs in this process on a small practice (real taps, transforms,
index) with the collector off, and the pass must be gone by reference counting alone.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from engine.clients import shards
from engine.clients.resolve import Resolver
from engine.config.load import load_file
from engine.stages.project import Project
from engine.store.workspace import Workspace
from tests.engine.people_pipeline import contact, customer, invoice, mail, practice, run

FAMILY = "parkfamily@home.example"


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("frees")
    cfg = practice(tmp, contacts=[
        contact("c-lily", "Lily", "Park", email=FAMILY, dob="2012-03-04"),
        contact("c-noah", "Noah", "Park", dob="2014-06-06"),
    ], mails=[
        mail("m-both", f"Lily & Noah Park <{FAMILY}>", "ruth@calmwaters.example"),
        mail("m-lily", f"Lily Park <{FAMILY}>", "ruth@calmwaters.example"),
    ], customers=[customer("13", "Lily Park", FAMILY)],
       invoices=[invoice("113", "13", "Lily Park"), invoice("114", "13", "Lily Park")])
    run(cfg)
    return cfg


def test_no_decision_outlives_its_pass(cfg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[weakref.ref[Any]] = []
    alive_at_charts: list[bool] = []
    decider, write_charts = Resolver.decider, shards.write_charts

    def watched_decider(self: Resolver, *args: Any, **kwargs: Any) -> Any:
        conflicts, state = decider(self, *args, **kwargs)
        passes.append(weakref.ref(state))
        passes.append(weakref.ref(state._index))  # noqa: SLF001 - the object that held the cycle
        return conflicts, state

    def watched_charts(*args: Any, **kwargs: Any) -> Any:
        alive_at_charts.extend(ref() is not None for ref in passes)
        return write_charts(*args, **kwargs)

    monkeypatch.setattr(Resolver, "decider", watched_decider)
    monkeypatch.setattr(shards, "write_charts", watched_charts)
    cfg = load_file(cfg_path)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        job = Project(Workspace(Path(cfg.workspace)), cfg.clients, force=True, vectors=False)
        assert job.run() == "success"
        assert job.links > 0, "the practice's documents were linked"
    finally:
        if was_enabled:
            gc.enable()
    assert len(passes) == 2, "one decision pass ran"
    assert alive_at_charts == [False, False], "the decision pass and its name index outlived the pass"


def test_a_referenced_document_is_kept_once(cfg_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decisions memoised for referenced documents (an invoice's customer, a session's
    client) are keyed and linked by the resolver's own object for that document, not by a
    copy decoded again for each document that refers to it (12 MiB at 1,000,000 demo
    documents)."""
    seen: dict[str, Any] = {}
    decider, forget = Resolver.decider, Resolver.forget

    def watched_decider(self: Resolver, *args: Any, **kwargs: Any) -> Any:
        conflicts, state = decider(self, *args, **kwargs)
        seen["state"] = state
        return conflicts, state

    def watched_forget(self: Resolver) -> None:
        seen["targets"] = {id(t): t for t in self.targets}
        forget(self)

    monkeypatch.setattr(Resolver, "decider", watched_decider)
    monkeypatch.setattr(Resolver, "forget", watched_forget)
    cfg = load_file(cfg_path)
    assert Project(Workspace(Path(cfg.workspace)), cfg.clients, force=True, vectors=False).run() == "success"
    decided = seen["state"].decided
    assert decided, "some document was referred to (the invoice's customer)"
    for ref, result in decided.items():
        assert id(ref) in seen["targets"], f"{ref.kind} decided under a copy of its reference"
        for link in result if isinstance(result, list) else ():
            assert link.doc is ref, f"{ref.kind} linked through a copy of its reference"
