"""Crash consistency of the measures output: SIGKILL the real project worker before each of
its file-system steps while it publishes ``canonical/measures/scored.*``, and check that a
reader sees the whole old set or the whole new one, never new data beside old meta.

The workspace is the bundled demo (``LORCH_DEMO_RECORDS`` records per tap) built once by a
real ``lorchestra run``. The project input alternates between two measure registries that
score differently: A (the bundled ``config/measures``) and B (the same without the
follow-up form's binding, so its responses are not scored): the measurements, their meta
(the registry's sha256), the rejects and the duplicates all differ. The worker is the real
``python -m engine.worker`` given a real project ``TaskSpec``; the kill points come from the
test-only ``tests/crashshim/sitecustomize.py``.

After each kill, before any repair, the four files read through the generation store
(``engine.store.fsgen``, one generation) are A's or B's, and the data hashes to the meta's
``output.sha256`` (what the index loader checks). Then the next uninterrupted run must
succeed, leave no hidden leftovers, and leave the plain names linked to the new set. Kills
start at the first step and stop once a kill lands after the measures were published (the
later steps are the index load and the charts, covered by test_crash_project). About a
minute on the shared machine (a demo run, then two worker runs per kill: about 23 kills).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest

from engine.canon.publish import AccountFiles
from engine.measures.score import MEASURES_ACCOUNT, MEASURES_SOURCE
from engine.measures.scoredfiles import duplicates_name
from engine.run.plan import PROJECT_TASK_ID, project_extractor
from engine.stages.spec import TaskSpec
from tests.engine.test_crash_project import Project
from tests.engine.test_crash_steps import KILLED
from tests.helpers import REPO

pytestmark = pytest.mark.crash

Snapshot = dict[str, bytes | None]


class Measures(Project):
    """The demo workspace with two measure registries (A: bundled, B: one binding fewer)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.use("A")  # the overrides file stays the same: only the registry changes
        b = tmp / "measures-b"
        shutil.copytree(REPO / "config" / "measures", b)
        (b / "bindings" / "demo-follow-up.yaml").unlink()
        self.registries = {"A": REPO / "config" / "measures", "B": b}
        self.registry = "A"
        self.files = AccountFiles(self.ws / "canonical" / MEASURES_SOURCE, MEASURES_ACCOUNT)
        self.names = [self.files.name("data"), self.files.name("meta"), self.files.name("rejects"),
                      duplicates_name()]

    def spec(self, *, force: bool = False) -> bytes:
        assert self.cfg.clients is not None
        clients = self.cfg.clients.model_copy(update={"overrides": self.overrides,
                                                      "measures": self.registries[self.registry]})
        return TaskSpec(task_id=PROJECT_TASK_ID, stage="project", attempt=1, workspace=self.ws,
                        extractor=project_extractor(), index=self.cfg.stages.index,
                        clients=clients, force=force).model_dump_json().encode()

    def seen(self) -> tuple[int, Snapshot]:
        """(generation, files) a reader sees through the store; fails on data and meta of two sets."""
        with self.files.store.open(*self.names) as (gen, handles):
            snap = {n: (fh.read() if fh is not None else None) for n, fh in handles.items()}
        data, meta = snap[self.files.name("data")], snap[self.files.name("meta")]
        assert data is not None and meta is not None, f"generation {gen.number} lacks data or meta"
        assert orjson.loads(meta)["output"]["sha256"] == hashlib.sha256(data).hexdigest(), \
            f"generation {gen.number}: data and meta of two versions"
        return gen.number, snap

    def plain(self) -> Snapshot:
        """The files under their plain names (DESIGN.md's paths)."""
        return {n: ((self.files.folder / n).read_bytes() if (self.files.folder / n).exists() else None)
                for n in self.names}


@pytest.fixture(scope="module")
def measures(tmp_path_factory: pytest.TempPathFactory) -> Measures:
    return Measures(tmp_path_factory.mktemp("crashmeasures"))


def test_measures_killed_at_every_publish_step(measures: Measures) -> None:
    m = measures
    refs: dict[str, Snapshot] = {}
    for which in ("A", "B"):  # uninterrupted references
        m.registry = which
        assert m.worker(force=True)[0] == 0
        refs[which] = m.seen()[1]
        assert m.plain() == refs[which]
    assert all(refs["A"][n] != refs["B"][n] for n in m.names), "A and B must differ in every file"
    m.registry = "A"
    _, count = m.worker()  # B -> A, counting the steps
    assert count > 0
    assert m.seen()[1] == refs["A"]
    current, outcomes = "A", []
    for n in range(1, count + 1):
        old, new = current, "B" if current == "A" else "A"
        m.registry = new
        gen_before = m.seen()[0]
        rc, _ = m.worker(n)
        assert rc == KILLED, f"step {n} of {count}: the worker was not killed (rc {rc})"
        gen_after, snap = m.seen()  # before any repair
        assert snap in (refs[old], refs[new]), f"step {n} of {count}: a set that is neither old nor new"
        seen = "new" if snap == refs[new] else "old"
        assert (gen_after == gen_before) == (seen == "old"), f"step {n}: pointer and content disagree"
        outcomes.append(seen)
        published = seen == "new" and m.files.store.mirrors_current()
        assert m.worker()[0] == 0, f"step {n} of {count}: the project run after the kill failed"
        assert m.seen()[1] == refs[new] and m.plain() == refs[new], f"step {n}: not the new set after a rerun"
        assert m.files.leftovers() == [] and m.files.store.mirrors_current(), f"step {n}: leftovers"
        current = new
        if published:  # the kill landed after the measures were published: later steps do not touch them
            break
    assert outcomes[0] == "old" and "new" in outcomes, f"both sides of the commit point were hit: {outcomes}"
    print(f"\nmeasures publish: {len(outcomes)} kills of {count} steps, outcomes {outcomes}")
