"""Search by meaning, measured: quality (recall@10) and speed of the vector-projector.

    python -m bench.search [--records 150] [--scale 100000] [--load-records 20000] [--repeat 3]

1. **Quality.** Builds the demo workspace with the real pipeline (``lorchestra run``, every
   demo tap, ``--records`` records each, vectors on), then runs a labelled query set:
   *paraphrases* that share no keyword with their answers, and *keyword* queries. A query's
   relevant documents are those its rule (a phrase of the demo's templates, over title and
   body) selects; for a paraphrase, documents that share one of the query's words are left
   out, so only meaning can find them. ``recall@10 = |relevant in top 10| / min(10, |relevant|)``
   (the demo repeats its templates, so most queries have more than 10 answers), averaged
   per group, for bm25 (``--text --words-only``), vector (``--similar``) and hybrid (``--text``).
2. **Embedding speed**: the embedded text of every demo document, embedded with one tokenizer
   thread; documents per CPU-second (= per core) and per wall second.
3. **Query latency** at ``--scale`` documents: the demo documents' rows, search text and
   vectors copied (new ids) into a scratch index of that size; p50/p95 of a warm
   :class:`~engine.index.ranked.Searcher` per mode, and the first (cold) query.
4. **Index throughput with and without embeddings**: ``--load-records`` demo Gmail documents
   (extract + canonize by the real CLI), first loads by the index worker's code alternating
   vectors off / on, ``--repeat`` times each; the drop of the medians. The loads run in this
   process with the model already loaded, but each starts with an empty word cache; what a
   fresh index worker pays once (numpy import, model load) is measured apart and printed.

Goals (issue 16): hybrid beats bm25 on paraphrases and matches it on keyword queries;
embedding >= 20,000 documents/s/core; query p95 <= 50 ms at 100,000 documents; index stage
throughput drop <= 15%.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one tokenizer thread: figures per core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import goal, machine_line  # noqa: E402
from engine.index.fields import derive  # noqa: E402
from engine.index.query import Query, Store  # noqa: E402
from engine.index.ranked import Searcher  # noqa: E402
from engine.index.store import open_writer  # noqa: E402
from engine.store.fsutil import ensure_dir, secure_umask  # noqa: E402
from engine.store.workspace import Workspace  # noqa: E402
from engine.vectors import store as vector_store  # noqa: E402
from engine.vectors.model import embed_documents, shared  # noqa: E402
from engine.vectors.text import embed_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STOP = {"a", "an", "the", "of", "to", "for", "my", "on", "in", "is", "it", "and", "or", "we",
        "our", "us", "by", "from", "with", "what", "not", "will", "can", "me", "i", "about", "at"}


@dataclass(frozen=True)
class Labelled:
    """One query and the rule that says which documents answer it."""

    group: str
    """``paraphrase`` or ``keyword``."""
    query: str
    pattern: str
    """A regular expression (case-insensitive) over a document's title and body."""


QUERIES = (
    Labelled("paraphrase", "approval from my health plan before counselling starts", r"pre-authori[sz]ation"),
    Labelled("paraphrase", "video visit url will not load on my mobile",
             r"telehealth link (didn't open|not working)"),
    Labelled("paraphrase", "postpone our meeting to another day",
             r"rescheduling|move my appointment|cambiar la cita"),
    Labelled("paraphrase", "medication renewal", r"prescription refill"),
    Labelled("paraphrase", "blood work outcome", r"lab results"),
    Labelled("paraphrase", "coverage provider switched, different policy number",
             r"my insurance changed"),
    Labelled("paraphrase", "note of gratitude", r"^thank you"),
    Labelled("paraphrase", "patient sent over by another clinician", r"^referral:"),
    Labelled("paraphrase", "forms to complete before the first visit", r"intake paperwork"),
    Labelled("paraphrase", "charges dispute and reimbursement inquiry", r"billing question"),
    Labelled("keyword", "telehealth link", r"telehealth link"),
    Labelled("keyword", "superbill", r"superbill"),
    Labelled("keyword", "pre-authorization", r"pre-authorization"),
    Labelled("keyword", "prescription refill", r"prescription refill"),
    Labelled("keyword", "supervision", r"supervision"),
    Labelled("keyword", "intake paperwork", r"intake paperwork"),
    Labelled("keyword", "canary-diagnosis-zx81", r"canary-diagnosis-zx81"),
    Labelled("keyword", "member ID", r"member id"),
)
MODES = ("bm25", "vector", "hybrid")


def words(text: str) -> set[str]:
    """Lower-case words of a text, without stop words (for the no-shared-keyword rule)."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP and len(w) > 1}


def build_workspace(root: Path, records: int) -> Workspace:
    """The demo pipeline, every tap, ``records`` each, through the real CLI (vectors on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORCH_")}
    env["LORCH_DEMO_RECORDS"] = str(records)
    res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "run", "--demo", "--workspace", str(root / "ws")],
                         cwd=REPO, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"building the demo workspace failed (exit {res.returncode}):\n{res.stdout[-2000:]}")
    return Workspace(root / "ws")


def corpus(store: Store) -> dict[int, tuple[str, str]]:
    """doc_id -> (title and body text for the rules, every searchable word)."""
    out: dict[int, tuple[str, str]] = {}
    for doc in store.find(Query(limit=None)):
        d = derive(store.document(doc))
        out[doc.doc_id] = (f"{d.title or ''}\n{d.body}", f"{d.title or ''} {d.body} {d.names} {d.notes}")
    return out


def quality(store: Store) -> dict[tuple[str, str], float]:
    """Mean recall@10 per (group, mode); prints one line per query."""
    docs = corpus(store)
    searcher = Searcher(store)
    scores: dict[tuple[str, str], list[float]] = {}
    print(f"\nquality: {len(docs):,} demo documents, {len(QUERIES)} labelled queries")
    print(f"{'group':<11}{'query':<56}{'relevant':>9}" + "".join(f"{m:>8}" for m in MODES))
    for lab in QUERIES:
        rule = re.compile(lab.pattern, re.I | re.M)
        qwords = words(lab.query)
        relevant = {i for i, (text, every) in docs.items() if rule.search(text)
                    and (lab.group == "keyword" or not qwords & words(every))}
        if not relevant:
            print(f"{lab.group:<11}{lab.query[:54]:<56}{0:>9}   (no relevant document at this size)")
            continue
        row = []
        for mode in MODES:
            hits = searcher.search(lab.query, Query(limit=10), mode)  # type: ignore[arg-type]
            got = len({h.document.doc_id for h in hits} & relevant) / min(10, len(relevant))
            scores.setdefault((lab.group, mode), []).append(got)
            row.append(got)
        print(f"{lab.group:<11}{lab.query[:54]:<56}{len(relevant):>9}" + "".join(f"{r:>8.2f}" for r in row))
    means = {k: statistics.mean(v) for k, v in scores.items()}
    print(f"\n{'recall@10':<14}" + "".join(f"{m:>9}" for m in MODES))
    for group in ("paraphrase", "keyword"):
        print(f"{group:<14}" + "".join(f"{means.get((group, m), 0.0):>9.2f}" for m in MODES))
    return means


def embed_speed(store: Store, minimum: int = 20_000) -> tuple[float, float]:
    """(documents per CPU-second, per wall second) embedding the demo documents' texts."""
    texts = []
    for doc in store.find(Query(limit=None)):
        d = derive(store.document(doc))
        texts.append(embed_text(doc.kind, d.title, d.names, d.body))
    while len(texts) < minimum:
        texts = texts + texts
    embedder = shared()
    embedder.load()
    embed_documents(embedder, texts[:1000])
    cpu, wall = time.process_time(), time.perf_counter()
    embed_documents(embedder, texts)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    chars = sum(len(t.head) + len(t.tail) for t in texts) / len(texts)
    print(f"\nembedding: {len(texts):,} texts of {chars:.0f} characters on average: "
          f"{wall:.2f}s wall, {cpu:.2f}s CPU = {len(texts) / cpu:,.0f} documents/s/core "
          f"({len(texts) / wall:,.0f}/s wall)")
    return len(texts) / cpu, len(texts) / wall


def scale_index(src: Workspace, root: Path, size: int) -> Workspace:
    """A scratch index of ``size`` documents: the demo rows, text and vectors copied, new keys."""
    ws = Workspace(root / "scale").prepare()
    model = Searcher(Store.open(src)).model
    conn = open_writer(ws)
    vector_store.ensure_table(conn)
    s = sqlite3.connect(src.vector_store / "index.sqlite")
    rows = s.execute("SELECT d.kind, d.source, d.account, d.entity_id, d.time, d.title, f.body, f.names, "
                     "f.notes, v.vector FROM documents d JOIN fts f ON f.rowid = d.doc_id "
                     "JOIN vectors v ON v.sha256 = d.sha256 WHERE v.model = ?", (model,)).fetchall()
    s.close()
    conn.execute("BEGIN")
    for n in range(size):
        kind, source, account, entity, when, title, body, names, notes, vec = rows[n % len(rows)]
        sha = f"{n:064x}"
        conn.execute("INSERT INTO documents (doc_id, kind, source, account, entity_id, sha256, time, title) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (n + 1, kind, source, f"{account}-{n // len(rows)}",
                                                         entity, sha, when, title))
        conn.execute("INSERT INTO fts (rowid, title, body, names, notes) VALUES (?, ?, ?, ?, ?)",
                     (n + 1, title, body, names, notes))
        conn.execute("INSERT INTO vectors (sha256, model, vector) VALUES (?, ?, ?)", (sha, model, vec))
    conn.execute("COMMIT")
    conn.close()
    return ws


def latency(ws: Workspace, size: int, rounds: int = 3) -> dict[str, float]:
    """p95 milliseconds per mode on a warm searcher; prints p50, p95 and the cold first query."""
    out: dict[str, float] = {}
    with Store.open(ws) as store:
        searcher = Searcher(store)
        started = time.perf_counter()
        searcher.search(QUERIES[0].query, Query(limit=10), "vector")
        cold = (time.perf_counter() - started) * 1000
        print(f"\nquery latency at {size:,} documents (warm searcher, {rounds} x {len(QUERIES)} queries, "
              "limit 10); the first query (model load + reading every vector) took "
              f"{cold:,.0f} ms")
        for mode in MODES:
            times, cpu = [], []
            for _ in range(rounds):
                for lab in QUERIES:
                    t, c = time.perf_counter(), time.thread_time()
                    searcher.search(lab.query, Query(limit=10), mode)  # type: ignore[arg-type]
                    times.append((time.perf_counter() - t) * 1000)
                    cpu.append((time.thread_time() - c) * 1000)
            times.sort()
            cpu.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            out[mode] = p95
            print(f"  {mode:<7} wall p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms;   "
                  f"CPU p50 {statistics.median(cpu):7.1f} ms   p95 {cpu[int(len(cpu) * 0.95) - 1]:7.1f} ms")
        t = time.perf_counter()
        searcher.search(QUERIES[1].query, Query(limit=10, kind="email", since="2022-06-01"), "hybrid")
        print(f"  hybrid with --kind and --since filters: {(time.perf_counter() - t) * 1000:.1f} ms")
    return out


WORKER_LOAD = """
import time
import engine.stages.index
c, t = time.process_time(), time.perf_counter()
import numpy
n = time.process_time() - c
from engine.vectors.model import shared
shared().load()
print(n, time.process_time() - c - n, time.perf_counter() - t)
"""


def worker_fixed_cost() -> None:
    """What an index worker pays once when it embeds (the loads below run the model in-process,
    already loaded): importing numpy and reading the model, in a fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", WORKER_LOAD], cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        print("  (the model's load cost could not be measured)")
        return
    numpy_s, model_s, wall = (float(x) for x in res.stdout.split())
    print(f"  once per index worker with vectors on: numpy import {numpy_s:.2f} CPU-s, model load "
          f"{model_s:.2f} CPU-s ({wall:.2f}s wall, in the background thread while the loader reads)")


def index_drop(root: Path, records: int, repeat: int) -> float:
    """Median first-load documents/s with vectors off and on; returns the drop in percent."""
    from bench.index import ACCOUNT, SOURCE, build_demo
    from engine.index.load import AccountLoader

    print(f"\nindex stage with and without embeddings: building {records:,} demo Gmail documents ...", flush=True)
    ws = build_demo(ensure_dir(root / "load"), records)
    trash = ensure_dir(root / "load" / "trash")
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    worker_fixed_cost()
    for i in range(repeat):
        for vectors in (False, True):
            if ws.vector_store.exists():
                os.rename(ws.vector_store, trash / f"store-{i}-{vectors}")
            shared().forget_words()  # each load starts with an empty word cache, like a new worker
            t, c = time.perf_counter(), time.process_time()
            result = AccountLoader(ws, SOURCE, ACCOUNT, vectors=vectors).run()
            seconds, cpu = time.perf_counter() - t, time.process_time() - c
            rates[vectors].append(result.documents / seconds)
            cpus[vectors].append(cpu)
            phases = ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items())
            print(f"  run {i + 1} vectors {'on ' if vectors else 'off'}: {result.documents:,} documents in "
                  f"{seconds:.2f}s = {result.documents / seconds:,.0f}/s, {cpu:.2f} CPU-s ({phases})",
                  flush=True)
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    drop = (off - on) / off * 100
    c_off, c_on = statistics.median(cpus[False]), statistics.median(cpus[True])
    print(f"  median: vectors off {off:,.0f}/s, on {on:,.0f}/s: drop {drop:.1f}% of wall throughput; "
          f"CPU {c_off:.2f}s -> {c_on:.2f}s (+{(c_on - c_off) / c_off * 100:.1f}% CPU, all threads)")
    return drop


def main(argv: list[str] | None = None) -> int:
    """Run the four measurements and print the goal lines."""
    ap = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=150, help="records per demo tap for quality (default 150)")
    ap.add_argument("--scale", type=int, default=100_000, help="documents for the latency test (default 100000)")
    ap.add_argument("--load-records", type=int, default=20_000,
                    help="Gmail documents for the index throughput test (default 20000; 0 skips it)")
    ap.add_argument("--repeat", type=int, default=3, help="loads per setting in the throughput test")
    ap.add_argument("--dir", type=Path, help="work here and keep the files (default: a temporary folder)")
    ap.add_argument("--load-only", action="store_true", help="only the index throughput test")
    ap.add_argument("--load-dir", type=Path,
                    help="run the throughput test in this folder (e.g. on tmpfs, to take disk noise out)")
    ns = ap.parse_args(argv)
    if ns.load_only:
        secure_umask()
        print(machine_line(), flush=True)
        root = ensure_dir(ns.dir) if ns.dir else Path(tempfile.mkdtemp(prefix="lorch-bench-search-",
                                                                         dir=ns.load_dir))
        try:
            drop = index_drop(root, ns.load_records, ns.repeat)
        finally:
            if ns.dir is None:
                shutil.rmtree(root, ignore_errors=True)
        goal("search index throughput drop with embeddings", drop, 15.0, higher_is_better=False, unit="%")
        return 0
    secure_umask()
    print(machine_line(), flush=True)
    root = ensure_dir(ns.dir) if ns.dir else Path(tempfile.mkdtemp(prefix="lorch-bench-search-"))
    try:
        print(f"building the demo workspace ({ns.records} records per tap) in {root} ...", flush=True)
        ws = build_workspace(root, ns.records)
        with Store.open(ws) as store:
            means = quality(store)
            per_core, _ = embed_speed(store)
        p95 = latency(scale_index(ws, root, ns.scale), ns.scale)
        drop = index_drop(root, ns.load_records, ns.repeat) if ns.load_records else None
    finally:
        if ns.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    para = {m: means.get(("paraphrase", m), 0.0) for m in MODES}
    key = {m: means.get(("keyword", m), 0.0) for m in MODES}
    goal("search paraphrase recall@10 hybrid minus bm25", (para["hybrid"] - para["bm25"]) * 100, 0.01, unit="%")
    goal("search keyword recall@10 hybrid minus bm25", (key["hybrid"] - key["bm25"]) * 100, 0.0, unit="%")
    goal("search embedding speed vs 20k documents/s/core", per_core / 20_000, 1.0)
    goal(f"search hybrid query p95 vs 50 ms at {ns.scale:,} documents", p95["hybrid"] / 50, 1.0,
         higher_is_better=False)
    if drop is not None:
        goal("search index throughput drop with embeddings", drop, 15.0, higher_is_better=False, unit="%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
