"""The streaming resolver (engine/clients/stream.py) and the two-process chart writer
(engine/clients/shards.py) against the in-memory resolver and the one-process writer.

Real SQLite scratch files, real forked processes, real chart folders. The streaming path
must decide exactly what the in-memory resolver decides (every link with its rule,
direction and via; every unlinked reason and detail; conflict counts; merges; overrides;
references followed, missing and unlinked), leave nothing behind, and its second chart
writer must die with the task.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine.clients import charts, kept, shards, stream, tables
from engine.clients.model import DocRef, Projection
from engine.clients.overrides import Overrides
from engine.clients.resolve import Resolver
from engine.measures import step as measures_step
from tests.engine.test_clients_core import CFG, cid, contact, mail, people, ref_doc
from tests.helpers import REPO, wait_for


def documents() -> list[tuple[DocRef, dict[str, Any]]]:
    """Every rule and reason: conflicts, merges, references (chained, missing, to an unlinked
    record), mail in and out and internal, key agreement and disagreement, an unknown kind."""
    return people() + [
        contact("dataverse", "mensio", "C2", "Cy Park", emails=["cypark@gmail.com"]),
        contact("quickbooks", "co", "7", "Cy Park", phones=["212 555 0103"]),
        contact("quickbooks", "co", "8", "Acme EAP", emails=["billing@acme.example"]),
        contact("sheets", "intake", "r1", "Ann Lee", phones=["212-555-0101"], emails=["cy.park@gmail.com"]),
        contact("sheets", "intake", "r2", "Dee Moss", dob="1985-08-08"),
        ref_doc("clinical_session", "dataverse", "mensio", "s1", "subject", "A"),
        ref_doc("invoice", "quickbooks", "co", "i1", "customer", "7"),
        ref_doc("invoice", "quickbooks", "co", "i2", "customer", "8"),
        ref_doc("payment", "quickbooks", "co", "p1", "customer", "99"),
        ref_doc("payment", "quickbooks", "co", "p2", "customer", "i1"),
        mail("m1", "Cy.Park+x@googlemail.com", ["ben@practice.example"]),
        mail("m2", "ben@practice.example", ["lee.family@example.org", "cy.park@gmail.com"]),
        mail("m3", "ben@practice.example", ["desk@practice.example"]),
        mail("m4", "stranger@example.net", ["ben@practice.example"]),
        mail("fam", "lee.family@example.org", ["ben@practice.example"]),
        contact("quickbooks", "co", "9", "Tim Park (son)", emails=["cy.park@gmail.com"]),  # named otherwise
        contact("quickbooks", "co", "10", "Park, Cy", emails=["cypark@gmail.com"]),
        (DocRef("gmail", "box", "email", "signed"),  # Cy's address, signed with Ann's very name
         {"kind": "email", "from": [{"name": "Ann Lee", "email": "cy.park@gmail.com"}],
          "to": [{"name": "Dr B", "email": "ben@practice.example"}]}),
        (DocRef("forms", "a", "measurement", "1"), {"kind": "measurement"}),
        (DocRef("forms", "a", "form_response", "f1"),
         {"kind": "form_response", "respondent": {"email": "cy.park@gmail.com"}}),
    ]


OVERRIDES = Overrides(merge=[[cid("C"), cid("C2")]], apart=[[cid("A"), cid("B")]],
                      link=[{"document": "gmail:box:email:fam", "client": cid("A")},  # type: ignore[list-item]
                            {"document": "gmail:box:email:m4", "client": None},  # type: ignore[list-item]
                            {"document": "gmail:box:email:nope", "client": cid("A")}])  # type: ignore[list-item]


def in_memory(docs: list[tuple[DocRef, dict[str, Any]]], ov: Overrides, timed: bool = False) -> Projection:
    """The in-memory projection (``timed``: with the times and titles the streamed one gets,
    which a link's pin holds)."""
    r = Resolver(CFG, ov)
    for ref, doc in docs:
        r.add(ref, _time(ref.entity_id) if timed else None, f"title of {ref.entity_id}" if timed else None, doc)
    return r.resolve()


def streamed(tmp: Path, docs: list[tuple[DocRef, dict[str, Any]]], ov: Overrides
             ) -> tuple[Projection, list[tuple[Any, ...]], list[tuple[Any, ...]], dict[tuple[str, str, str], str | None]]:
    path = stream.scratch_path(tmp)
    forms: dict[tuple[str, str, str], str | None] = {}
    stream.part_path(path).write_bytes(b"left by a killed helper")
    with stream.Scratch(path, Resolver(CFG, ov)) as scratch:
        assert not stream.part_path(path).exists(), "a killed helper's scratch file is removed"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for source, account in sorted({(r.source, r.account) for r, _ in docs}):
            scratch.account(source, account)
        for ref, doc in reversed(docs):  # any input order: the scratch table orders them
            scratch.add(ref, doc)
        p = scratch.resolve()
        links = scratch.conn.execute("SELECT * FROM links").fetchall()
        forms.update({(r.source, r.account, r.entity_id): kept.kept_client(scratch.conn, r.source, r.account,
                                                                            r.entity_id)
                      for r, _ in docs if r.kind == "form_response"})
        unlinked = scratch.conn.execute("SELECT * FROM unlinked").fetchall()
    assert not path.exists() and not list(tmp.glob(".project-scratch*")), "the scratch file is removed"
    return p, links, unlinked, forms


@pytest.mark.parametrize("ov", [Overrides(), OVERRIDES], ids=["plain", "overrides"])
def test_streaming_resolver_decides_exactly_what_the_in_memory_one_does(tmp_path: Path, ov: Overrides) -> None:
    docs = documents()
    want = in_memory(docs, ov)
    got, links, unlinked, got_forms = streamed(tmp_path, docs, ov)
    assert sorted(links) == sorted((lk.client_id, *lk.doc, lk.rule, lk.direction, lk.via) for lk in want.links)
    assert sorted(unlinked) == sorted((*u.doc, u.reason, u.detail) for u in want.unlinked)
    assert {r for r in unlinked if r[4] in ("ref_missing", "ref_unlinked", "conflict", "internal", "no_rule")}
    assert got.conflicts == want.conflicts and got.unused_overrides == want.unused_overrides
    assert {k: (c.card, c.keys, c.merged, c.home, c.names) for k, c in got.clients.items()} == \
        {k: (c.card, c.keys, c.merged, c.home, c.names) for k, c in want.clients.items()}
    disagree = {u.doc.entity_id for u in want.unlinked if u.reason == "disagree"}
    assert ov is not OVERRIDES or disagree >= {"9", "signed"}, "(Cy's records merged: his address is his alone)"
    assert got.counts() == want.counts() and got.counts()["documents"] == len(docs)
    assert got.streamed is not None
    per_client: dict[str, int] = {}
    for lk in want.links:
        per_client[lk.client_id] = per_client.get(lk.client_id, 0) + 1
    assert got.streamed.per_client == per_client
    want_forms = measures_step._clients_of(want)
    assert got_forms == {k: want_forms.get(k) for k in got_forms} and set(want_forms) <= set(got_forms)
    assert any(got_forms.values()) or ov is not OVERRIDES, "the merged Cy is the respondent's one client"


def test_streamed_tables_and_charts_equal_the_in_memory_ones(tmp_path: Path) -> None:
    """The whole write path: the client tables from the attached scratch database and the
    charts from per-client queries equal what the in-memory projection writes."""
    docs = documents()
    want = in_memory(docs, OVERRIDES, timed=True)
    charts.assign_folders(want.clients)
    index = tmp_path / "index.sqlite"
    con = sqlite3.connect(index, isolation_level=None)
    tables.write_projection(con, want, "fp", "now")
    want_rows = {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables.TABLES}  # noqa: S608
    charts.write_charts(tmp_path / "one", want, "2026-01-01T00:00:00Z")

    path = stream.scratch_path(tmp_path)
    with stream.Scratch(path, Resolver(CFG, OVERRIDES)) as scratch:
        for source, account in sorted({(r.source, r.account) for r, _ in docs}):
            scratch.account(source, account)
        for ref, doc in docs:
            scratch.add(ref, doc, _time(ref.entity_id), f"title of {ref.entity_id}")
        got = scratch.resolve()
        scratch.close()
        charts.assign_folders(got.clients)
        con.execute("ATTACH DATABASE ? AS scratch", (str(path),))
        con.execute("BEGIN")
        tables.write_projection(con, got, "fp", "now", scratch="scratch")
        con.execute("COMMIT")
        assert {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables.TABLES} == want_rows  # noqa: S608
        shards.write_charts(tmp_path / "two", got, "2026-01-01T00:00:00Z",
                            items_of=lambda c: stream.chart_items(con, "scratch", c),
                            child_items=lambda: lambda c: stream.chart_items(con, "scratch", c))
        # as the project task does: the items in chart order from SQLite, rendered as they come
        shards.write_charts(tmp_path / "three", got, "2026-01-01T00:00:00Z", ordered=True,
                            items_of=lambda c: stream.chart_items_in_order(con, "scratch", c),
                            child_items=lambda: lambda c: stream.chart_items_in_order(con, "scratch", c))
        con.execute("DETACH DATABASE scratch")
    assert tree(tmp_path / "two") == tree(tmp_path / "one") and tree(tmp_path / "one")
    assert tree(tmp_path / "three") == tree(tmp_path / "one")


def _time(entity_id: str) -> str | None:
    """Times that differ (and ties, none and empty), so the chart order is tested."""
    return (None, "", "2024-05-06T07:08:09Z", "2023-01-01T00:00:00Z", "2025-12-31T23:59:59Z")[
        sum(map(ord, entity_id)) % 5]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def many_clients(n: int) -> Projection:
    docs = [contact("dataverse", "mensio", f"c{i}", f"Given{i} Family{i}", given=f"Given{i}",
                    family=f"Family{i}", emails=[f"c{i}@example.org"]) for i in range(n)]
    docs += [mail(f"m{i}", f"c{i % n}@example.org", ["ben@practice.example"]) for i in range(3 * n)]
    p = in_memory(docs, Overrides())
    charts.assign_folders(p.clients)
    return p


def test_two_chart_writers_give_the_folders_of_one(tmp_path: Path) -> None:
    p = many_clients(shards.SHARD_MIN + 11)
    s1 = charts.write_charts(tmp_path / "one", p, "2026-01-01T00:00:00Z")
    by_client: dict[str, list[Any]] = {c: [] for c in p.clients}
    for lk in p.links:
        by_client[lk.client_id].append((lk, p.docs[lk.doc]))
    mark = tmp_path / "child.pid"

    def child_items() -> shards.Items:
        mark.write_text(str(os.getpid()))
        return by_client.__getitem__

    s2 = shards.write_charts(tmp_path / "two", p, "2026-01-01T00:00:00Z",
                             items_of=by_client.__getitem__, child_items=child_items)
    assert tree(tmp_path / "two") == tree(tmp_path / "one")
    assert (s2.written, s2.unchanged, s2.bytes) == (s1.written, s1.unchanged, s1.bytes) == (
        len(p.clients), 0, s1.bytes)
    assert int(mark.read_text()) != os.getpid(), "half of the folders were written by a forked child"
    again = shards.write_charts(tmp_path / "two", p, "2026-02-02T00:00:00Z",
                                items_of=by_client.__getitem__, child_items=child_items)
    assert (again.written, again.unchanged) == (0, len(p.clients))
    assert not [x for x in (tmp_path / "two").iterdir() if x.name.startswith(".")]


def test_a_failing_second_writer_fails_the_charts(tmp_path: Path) -> None:
    p = many_clients(shards.SHARD_MIN)

    def child_items() -> shards.Items:
        raise OSError("disk full")

    with pytest.raises(shards.ChartWriterFailed):
        shards.write_charts(tmp_path / "c", p, "2026-01-01T00:00:00Z",
                            items_of=lambda c: [], child_items=child_items)


def test_the_second_writer_dies_with_the_task(tmp_path: Path) -> None:
    """SIGKILL the task while its second writer works: the writer must not outlive it."""
    pidfile = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import os, time
        from engine.clients import forked
        def work():
            open({str(pidfile)!r}, "w").write(str(os.getpid()))
            time.sleep(60)
            return b"done"
        child = forked.Child(work)
        child.result()
    """)
    task = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the writer"))
        os.kill(task.pid, signal.SIGKILL)
        task.wait(10)
        wait_for(lambda: not _alive(child), timeout=10, what="the writer to die with the task")
    finally:
        if task.poll() is None:
            task.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_project_task_on_two_cores_gives_what_one_process_gives(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A real index (bench.clients' synthetic documents, four accounts, canonical files and
    objects), projected by the real task: accounts read by two processes and the charts
    written by two, or everything in one; the tables and every chart file are the same."""
    from bench.clients import CFG, build
    from bench.project_check import dump
    from engine.clients import reading
    from engine.stages.project import Project
    from engine.store.workspace import Workspace

    one, two = tmp_path / "one", tmp_path / "two"
    build(one, 3000, 90)
    (one / "ws" / "canonical" / "gmail" / "box.meta.json").write_bytes(b"{}")  # mail from objects
    shutil.copytree(one, two)
    monkeypatch.setattr(reading, "READ_SHARD_MIN", 10**12)
    monkeypatch.setattr(shards, "SHARD_MIN", 10**12)
    job1 = Project(Workspace(one / "ws"), CFG, force=True)
    job1.run()
    monkeypatch.setattr(reading, "READ_SHARD_MIN", 0)
    monkeypatch.setattr(shards, "SHARD_MIN", 1)
    forks: list[int] = []
    real = reading.forked.Child

    def counted(work: Any) -> Any:
        forks.append(1)
        return real(work)

    monkeypatch.setattr(reading.forked, "Child", counted)
    job2 = Project(Workspace(two / "ws"), CFG, force=True)
    job2.run()
    assert len(forks) == 2, "the accounts and the charts were both shared with a child"
    assert job1.documents == job2.documents == 3000
    dump(one / "ws", tmp_path / "one.txt")
    dump(two / "ws", tmp_path / "two.txt")
    a, b = (tmp_path / "one.txt").read_text(), (tmp_path / "two.txt").read_text()
    assert "## client_links" in a and _unstamped(a) == _unstamped(b)
    charts1, charts2 = tree(one / "ws" / "clients"), tree(two / "ws" / "clients")
    assert len(charts1) >= 4 * 90 and {k: _masked(v) for k, v in charts1.items()} == {
        k: _masked(v) for k, v in charts2.items()}
    assert not [p.name for p in (two / "ws" / "vector-store").iterdir() if "scratch" in p.name]


def _masked(data: bytes) -> bytes:
    return re.sub(rb"^projected_at: .*$", b"projected_at: -", data, flags=re.M)


def _unstamped(text: str) -> list[str]:
    """The dump without the client.md hashes (their projected_at is the run's time)."""
    return [line for line in text.splitlines() if not line.endswith("/client.md")]
