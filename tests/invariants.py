"""What "consistent" means on disk, checked from the outside: the crash harness and the
fault tests call these after every kill or injected failure.

Every check returns a list of problems (empty when it holds), each naming the path, so a
failure says exactly which promise broke where. The definitions:

* **vault**: ``LATEST.json`` (if any) parses and names a ``run_id=`` folder whose manifest
  says ``success`` and whose parts match their sha256, sizes, uncompressed sizes and record
  counts; every visible ``run_id=`` folder has a manifest with a final status whose listed
  parts verify; anything else in a ``dt=`` folder is a hidden ``.run_id=*.partial`` folder.
* **canonical**: the account's *current version* is what a reader sees through the reader
  API (``engine.canon.publish.open_current``, one generation): its data must hash to the meta's
  ``output.sha256`` and hold ``output.records`` lines. "Old or new" is then checked by the
  caller against the version before the kill and against the LATEST run.
* **index**: SQLite's integrity check passes; every account row's document count matches
  its documents; every document's object exists and hashes to its name.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.canon.publish import AccountFiles, open_current

FINAL_STATUSES = {"success", "failed", "cancelled", "timeout"}
RUN_DIR = re.compile(r"^run_id=\d{8}T\d{6}Z$")
PARTIAL_DIR = re.compile(r"^\.run_id=\d{8}T\d{6}Z\.partial$")
ACCOUNT_LITTER = re.compile(r"^\.LATEST\.json\.tmp-\d+$")  # a writer killed inside atomic_write


def _parts_problems(run: Path, manifest: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    total = 0
    for part in manifest.get("parts", []):
        path = run / part["file"]
        try:
            data = path.read_bytes()
        except OSError:
            problems.append(f"{path}: listed in the manifest but missing")
            continue
        if len(data) != part["bytes"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
            problems.append(f"{path}: size or sha256 differs from the manifest")
            continue
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError):
            problems.append(f"{path}: does not decompress")
            continue
        lines = raw.splitlines()
        if manifest.get("format", 1) >= 2:  # every Singer message is a line; RECORDs are records
            records = sum(1 for line in lines if orjson.loads(line).get("type") == "RECORD")
            counts_ok = len(lines) == part["messages"] and records == part["records"]
        else:
            records = len(lines)
            counts_ok = records == part["records"]
        if len(raw) != part["uncompressed_bytes"] or not counts_ok:
            problems.append(f"{path}: uncompressed size or record count differs from the manifest")
        total += records
    if manifest.get("status") == "success" and total != manifest.get("records"):
        problems.append(f"{run}: parts hold {total} records, the manifest says {manifest.get('records')}")
    return problems


def vault_problems(acct: Path) -> list[str]:
    """Problems of one account folder of the vault (see the module docstring)."""
    problems: list[str] = []
    if not acct.exists():
        return problems
    for entry in acct.iterdir():
        if entry.name == "LATEST.json" or ACCOUNT_LITTER.match(entry.name):
            continue
        if not (entry.name.startswith("dt=") and entry.is_dir()):
            problems.append(f"{entry}: unexpected entry in the account folder")
            continue
        for run in entry.iterdir():
            if PARTIAL_DIR.match(run.name):
                continue
            if not RUN_DIR.match(run.name):
                problems.append(f"{run}: neither a run_id= folder nor a hidden partial one")
                continue
            try:
                manifest = orjson.loads((run / "manifest.json").read_bytes())
            except (OSError, orjson.JSONDecodeError):
                problems.append(f"{run}: visible under its final name without a readable manifest")
                continue
            if manifest.get("status") not in FINAL_STATUSES:
                problems.append(f"{run}: manifest status {manifest.get('status')!r} is not final")
            problems += _parts_problems(run, manifest)
    latest = acct / "LATEST.json"
    if latest.exists():
        try:
            ptr = orjson.loads(latest.read_bytes())
            run = acct / f"dt={ptr['dt']}" / f"run_id={ptr['run_id']}"
            manifest = orjson.loads((run / "manifest.json").read_bytes())
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
            return [*problems, f"{latest}: does not parse or names no complete run"]
        if manifest.get("status") != "success":
            problems.append(f"{latest}: names {run.name} whose status is {manifest.get('status')!r}")
        if ptr.get("records") != manifest.get("records"):
            problems.append(f"{latest}: records {ptr.get('records')} differ from the manifest")
    return problems


def latest_run(acct: Path) -> tuple[str, list[str]] | None:
    """(run_id, part sha256s) of the run LATEST names, or None."""
    try:
        ptr = orjson.loads((acct / "LATEST.json").read_bytes())
        run = acct / f"dt={ptr['dt']}" / f"run_id={ptr['run_id']}"
        manifest = orjson.loads((run / "manifest.json").read_bytes())
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return str(ptr["run_id"]), [p["sha256"] for p in manifest["parts"]]


def latest_content(acct: Path) -> tuple[str, list[str]] | None:
    """(run_id, sha256 of each part's *uncompressed* lines) of the run LATEST names, or None.

    What a run holds, whatever compressed it: the same messages compressed twice need not be
    the same gzip bytes (ISA-L promises no particular encoding), so "the same output as an
    uninterrupted run" is checked on the lines. Part boundaries count: a part is a list entry.
    """
    found = latest_run(acct)
    if found is None:
        return None
    ptr = orjson.loads((acct / "LATEST.json").read_bytes())
    run = acct / f"dt={ptr['dt']}" / f"run_id={ptr['run_id']}"
    manifest = orjson.loads((run / "manifest.json").read_bytes())
    return found[0], [hashlib.sha256(gzip.decompress((run / p["file"]).read_bytes())).hexdigest()
                      for p in manifest["parts"]]


@dataclass(frozen=True)
class CanonVersion:
    """One consistent version of an account's canonical output."""

    data_sha256: str
    records: int
    run_id: str | None
    run_parts: tuple[str, ...]
    lines: tuple[str, ...]
    """sha256 of every line (with its newline), as the index hashes them."""


def canonical_version(ws: Path, source: str, account: str) -> tuple[CanonVersion | None, list[str]]:
    """The current canonical version of an account as a reader sees it, and its problems.

    Read through the one reader API (``engine.canon.publish.open_current``): the files of
    the generation the pointer names, opened together.
    """
    files = AccountFiles(ws / "canonical" / source, account)
    with open_current(files) as view:
        if view is None:
            return None, []
        if not view.meta_present:
            if view.data is not None:
                return None, [f"{files.data}: canonical data without a meta file"]
            return None, []
        if view.meta is None or view.data is None:
            return None, [f"{files.meta}: meta or data unreadable (generation {view.generation})"]
        meta, data = view.meta, view.data.read()
    problems = []
    sha = hashlib.sha256(data).hexdigest()
    if sha != meta["output"]["sha256"]:
        problems.append(f"{files.data}: sha256 {sha[:12]} is not the meta's {meta['output']['sha256'][:12]} "
                        "(a mix of two versions)")
    lines = data.splitlines(keepends=True)
    if len(lines) != meta["output"]["records"]:
        problems.append(f"{files.data}: {len(lines)} lines, the meta says {meta['output']['records']}")
    run = meta.get("inputs", {}).get("run", {})
    version = CanonVersion(sha, len(lines), run.get("run_id"), tuple(run.get("parts", [])),
                           tuple(hashlib.sha256(line).hexdigest() for line in lines))
    return version, problems


def plain_canonical_problems(ws: Path, source: str, account: str) -> list[str]:
    """After a clean run: the plain names are links to the current generation, no leftovers."""
    files = AccountFiles(ws / "canonical" / source, account)
    problems = [f"{p}: publish leftover" for p in files.leftovers()]
    if not files.store.mirrors_current():
        problems.append(f"{files.data}: plain names are not the current generation's files")
    return problems


def index_problems(ws: Path, only: tuple[str, str] | None = None,
                   ) -> tuple[dict[tuple[str, str], tuple[str, int]], list[str]]:
    """({(source, account): (canonical_sha256, documents)}, problems) of the document index.

    ``only`` limits the object check to one (source, account): while other accounts' index
    workers run, an object of theirs may be collected right after this snapshot was taken.
    """
    db = ws / "vector-store" / "index.sqlite"
    if not db.exists():
        return {}, []
    problems: list[str] = []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("BEGIN")  # one snapshot for every query below
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append(f"{db}: integrity_check failed")
        accounts = {(s, a): (sha, n) for s, a, sha, n in
                    con.execute("SELECT source, account, canonical_sha256, documents FROM accounts")}
        counts = dict(((s, a), n) for s, a, n in con.execute(
            "SELECT source, account, count(*) FROM documents GROUP BY source, account"))
        where, args = ("WHERE source = ? AND account = ?", only) if only else ("", ())
        shas = [r[0] for r in con.execute(f"SELECT sha256 FROM documents {where}", args)]
        con.execute("COMMIT")
    finally:
        con.close()
    for key, (_, n) in accounts.items():
        if counts.get(key, 0) != n:
            problems.append(f"{db}: account {key} has {counts.get(key, 0)} documents, its row says {n}")
    for key in counts.keys() - accounts.keys():
        problems.append(f"{db}: documents of {key} without an accounts row")
    objects = ws / "vector-store" / "objects"
    for sha in shas:
        path = objects / sha[:2] / sha[2:4] / f"{sha}.json"
        try:
            if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                problems.append(f"{path}: content does not hash to its name")
        except OSError:
            problems.append(f"{path}: a document's object is missing")
    return accounts, problems


def index_docs(ws: Path, source: str, account: str) -> set[str]:
    """sha256 of every indexed document of one account."""
    db = ws / "vector-store" / "index.sqlite"
    if not db.exists():
        return set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return {r[0] for r in con.execute("SELECT sha256 FROM documents WHERE source = ? AND account = ?",
                                          (source, account))}
    finally:
        con.close()


def lock_is_free(ws: Path) -> bool:
    """Whether a new writer could take the workspace lock right now (folder and file)."""
    fds: list[int] = []
    try:
        fds.append(os.open(ws, os.O_RDONLY | os.O_DIRECTORY))
        lock = ws / "state" / "lock"
        if lock.exists():
            fds.append(os.open(lock, os.O_RDONLY))
        for fd in fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        return True
    finally:
        for fd in fds:
            os.close(fd)  # closing drops our flock at once


def log_problems(ws: Path) -> list[str]:
    """Every line of every JSON log must parse (a torn line would mean a mixed write)."""
    problems = []
    for f in sorted((ws / "logs").glob("pipeline-*.log")):
        for n, line in enumerate(f.read_bytes().split(b"\n"), start=1):
            if not line:
                continue
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                problems.append(f"{f}:{n}: not a JSON line")
    return problems


# --- project: chart folders and client tables -------------------------------------------
#
# * **chart folders**: every visible (non-hidden) entry of ``{workspace}/clients`` is a chart
#   folder (``Name (short id)``) whose files are exactly the old folder's or exactly the new
#   one's (no half-written file under a final name, no mix of the two); a folder of both
#   states is never missing; hidden names (``.staging-``, ``.aside-``, ``.trash-``) are a
#   killed writer's leftovers that no reader lists. ``projected_at`` in ``client.md`` is the
#   time a chart last changed, so a state is compared with that one line masked.
# * **client tables**: what the engine's reader (``engine.clients.read.ClientTables``) returns
#   is the whole old projection or the whole new one.

_PROJECTED_AT = re.compile(rb'^projected_at: .*$', re.MULTILINE)
Charts = dict[str, dict[str, bytes]]


def chart_folders(root: Path, *, masked: bool = True) -> Charts:
    """{folder name: {file name: bytes}} of every visible entry of ``{workspace}/clients``.

    A visible entry that is not a folder maps to ``{"": b"<not a folder>"}`` so it never
    equals a state. With ``masked``, client.md's ``projected_at`` line is blanked."""
    out: Charts = {}
    if not root.is_dir():
        return out
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir(follow_symlinks=False):
            out[entry.name] = {"": b"<not a folder>"}
            continue
        files: dict[str, bytes] = {}
        for f in os.scandir(entry.path):
            data = Path(f.path).read_bytes() if f.is_file(follow_symlinks=False) else b"<not a file>"
            files[f.name] = _PROJECTED_AT.sub(b"projected_at: -", data) if masked and f.name == "client.md" else data
        out[entry.name] = files
    return out


def chart_problems(root: Path, old: Charts, new: Charts) -> list[str]:
    """Each chart folder a reader sees is the complete old or the complete new one (masked)."""
    from engine.clients.charts import is_chart_folder

    seen = chart_folders(root)
    problems = [f"{root / name}: visible, but not a chart folder name" for name in seen
                if not is_chart_folder(name)]
    for name in sorted(seen.keys() | old.keys() | new.keys()):
        got = seen.get(name)
        if got is None:
            if name in old and name in new:
                problems.append(f"{root / name}: missing, though both the old and the new state have it")
        elif got != old.get(name) and got != new.get(name):
            which = "a mix of the old and the new files" if name in old or name in new else "in neither state"
            problems.append(f"{root / name}: {which} ({sorted(got)})")
    return problems


def client_tables(ws: Path) -> dict[str, Any] | None:
    """Everything the engine's client reader returns (None before any projection)."""
    from engine.clients.read import ClientTables

    db = ws / "vector-store" / "index.sqlite"
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        con.execute("BEGIN")  # one snapshot
        t = ClientTables(con)
        if not t.ready():
            return None
        clients = t.clients()
        out = {"clients": clients, "conflicts": t.conflicts(), "unlinked": t.unlinked(),
               "keys": {c["client_id"]: t.keys(c["client_id"]) for c in clients},
               "documents": {c["client_id"]: t.documents(c["client_id"]) for c in clients}}
        con.execute("COMMIT")
        return out
    finally:
        con.close()
