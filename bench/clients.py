"""Benchmark of the project stage: identity resolution and charts on a large index.

    python -m bench.clients [--documents 100000] [--clients 2000] [--dir DIR]

It writes canonical-shaped documents straight into an index (no tap, no transform): the
clients' own contact records (Dataverse), a second contact per client from another source
(phones in another format), sessions that refer to the clients, QuickBooks customers and
their invoices, and e-mail from clients, from strangers and between staff. It then times,
in this process, with the project worker's own code:

a. the first projection (read every document, resolve, write the tables and every chart);
b. a forced rerun with nothing changed (every document read and resolved again; no chart
   file is rewritten);
c. the skip check of an unchanged rerun.

It prints documents/s for each and the counts. Everything runs in a private temporary folder
(0700), removed at the end unless ``--dir`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import machine_line
from engine.config import ClientsConfig
from engine.index.load import AccountLoader
from engine.stages.project import Project
from engine.store.fsutil import ensure_dir, secure_umask
from engine.store.workspace import Workspace

CFG = ClientsConfig(sources=["dataverse"], own_addresses=["*@practice.example"])


def _account(ws: Workspace, source: str, account: str, docs: list[dict[str, object]]) -> None:
    out = ensure_dir(ws.canonical / source) / f"{account}.jsonl"
    h = hashlib.sha256()
    kinds: dict[str, int] = {}
    with open(out, "wb") as fh:
        for doc in docs:
            doc = {"source": source, "account": account, **doc}
            line = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n"
            fh.write(line)
            h.update(line)
            kinds[str(doc["kind"])] = kinds.get(str(doc["kind"]), 0) + 1
    meta = {"inputs": {"run": {"dt": "2024-01-01", "run_id": "20240101T000000Z"}, "transforms": {}},
            "output": {"file": out.name, "sha256": h.hexdigest(), "records": len(docs), "kinds": kinds}}
    (out.parent / f"{account}.meta.json").write_bytes(orjson.dumps(meta))
    AccountLoader(ws, source, account, vectors=False).run()  # the project stage reads no vectors


def _person(i: int) -> dict[str, object]:
    return {"name": {"full": f"Given{i} Family{i % 997}",
                     "components": [{"kind": "given", "value": f"Given{i}"},
                                    {"kind": "surname", "value": f"Family{i % 997}"}]},
            "emails": {"e": {"address": f"client{i}@example.org"}},
            "phones": {"p": {"number": f"(212) {200 + i // 10000:03d}-{i % 10000:04d}"}},
            "birth_date": f"{1940 + i % 70}-{1 + i % 12:02d}-{1 + i % 28:02d}"}


def build(root: Path, documents: int, clients: int) -> Workspace:
    """An index of ``documents`` documents about ``clients`` clients (and strangers)."""
    ws = Workspace(root / "ws").prepare()
    _account(ws, "dataverse", "main", [
        {"kind": "contact", "source_id": f"c{i}", **_person(i)} for i in range(clients)] + [
        {"kind": "clinical_session", "source_id": f"s{k}", "period": {"start": "2024-01-01T10:00:00Z"},
         "subject": {"type": "contact", "id": f"c{k % clients}"}, "status": "finished"}
        for k in range(documents // 5)])
    _account(ws, "sheets", "intake", [
        {"kind": "contact", "source_id": f"r{i}", "name": {"full": f"Given{i} Family{i % 997}"},
         "phones": {"p": {"number": f"212-{200 + i // 10000:03d}-{i % 10000:04d}"}}}
        for i in range(clients)])
    _account(ws, "quickbooks", "books", [
        {"kind": "contact", "source_id": f"q{i}", "emails": {"e": {"address": f"Client{i}@Example.org"}}}
        for i in range(clients)] + [
        {"kind": "invoice", "source_id": f"i{m}", "txn_date": "2024-02-01", "total": "150.00",
         "balance": "0.00", "customer": {"type": "Customer", "id": f"q{m % clients}"}}
        for m in range(documents // 5)])
    rest = documents - len(range(clients)) * 3 - 2 * (documents // 5)
    mail = []
    for n in range(max(rest, 0)):
        who = f"client{n % clients}@example.org" if n % 3 else f"stranger{n}@example.net"
        frm, to = (who, "desk@practice.example") if n % 2 else ("desk@practice.example", who)
        if n % 17 == 0:
            frm, to = "desk@practice.example", "ben@practice.example"
        mail.append({"kind": "email", "source_id": f"m{n}", "subject": f"message {n}",
                     "receivedAt": f"2024-03-{1 + n % 28:02d}T10:00:00Z",
                     "from": [{"email": frm}], "to": [{"email": to}]})
    _account(ws, "gmail", "box", mail)
    return ws


def timed(ws: Workspace, force: bool) -> tuple[float, Project, str]:
    """Wall seconds of one project run (CPU seconds printed), the job and its status."""
    job = Project(ws, CFG, force=force)
    started, cpu = time.perf_counter(), time.process_time()
    status = job.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if job.documents:
        print(f"    {wall:.2f}s wall, {cpu:.2f} CPU-s: {job.documents / max(cpu, 1e-9):,.0f} "
              "documents per CPU-second", flush=True)
    return wall, job, status


def main(argv: list[str] | None = None) -> int:
    """Build, project, print."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--documents", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=2_000)
    ap.add_argument("--dir", type=Path, help="work here and keep it (default: a temporary folder)")
    ns = ap.parse_args(argv)
    secure_umask()
    root = ns.dir or Path(tempfile.mkdtemp(prefix="lorch-bench-clients-"))
    try:
        print(f"bench.clients: {ns.documents:,} documents, {ns.clients:,} clients; {machine_line()}", flush=True)
        started = time.perf_counter()
        ws = build(root, ns.documents, ns.clients)
        print(f"  index built in {time.perf_counter() - started:.1f}s", flush=True)
        first, job, _ = timed(ws, force=True)
        p = job.projection
        assert p is not None
        docs = job.documents
        counts = p.counts()
        print(f"  a. first projection: {first:.2f}s, {docs / first:,.0f} documents/s; "
              f"{counts['clients']:,} clients, {counts['links']:,} links, {counts['unlinked']:,} unlinked, "
              f"{job.stats.written:,} charts written ({job.stats.bytes / 1e6:.1f} MB)", flush=True)
        rerun, job2, _ = timed(ws, force=True)
        print(f"  b. forced rerun, nothing changed: {rerun:.2f}s, {docs / rerun:,.0f} documents/s; "
              f"{job2.stats.written} charts rewritten, {job2.stats.unchanged:,} unchanged", flush=True)
        skip, _, status = timed(ws, force=False)
        print(f"  c. unchanged rerun: {status} in {skip:.3f}s", flush=True)
        print(f"ratio clients first projection: {docs / first:,.0f} documents/s", flush=True)
    finally:
        if ns.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
