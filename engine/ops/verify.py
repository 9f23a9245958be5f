"""Re-checking what the workspace holds against its own checksums (``lorchestra verify``).

For every account folder in the vault: ``LATEST.json`` parses and names a run folder that
exists, whose manifest parses and says ``success``; every part the manifest lists exists
with the size and sha256 it records (with ``deep``, it also decompresses to the recorded
size and record count; for a format 2 run, every line is a valid Singer message and the
message and RECORD counts match). When LATEST is an incremental run, the runs of its chain
back to the last full one (what canonize reads with it) are checked the same way, and a
broken chain is a problem (``CHAIN_BROKEN``). With ``all_runs`` every completed run folder is checked the same
way (failed and cancelled runs are kept for audit, so their parts must verify too), and
hidden ``.run_id=*.partial`` folders left by killed workers are counted as notes. Each
account's canonical data must hash to what its meta says (both read from one generation
through the reader API, :func:`engine.canon.publish.open_current`).

It only reads, takes no lock and never needs one: run folders are immutable once visible
and pointers are replaced atomically. Problems carry a stable code and a path inside the
workspace; nothing read from a file is ever quoted (PHI-free by construction).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine.canon.publish import AccountFiles, open_current, plain_names_agree
from engine.index.store import INDEX_CORRUPT, INDEX_UNREADABLE, StoreError, object_path, open_reader
from engine.ops.readback import CHUNK, file_sha256, gzip_counts, message_counts, object_problem
from engine.store.fsutil import read_json, section
from engine.store.workspace import Workspace
from engine.vault.chain import ChainBroken, ChainRun, incremental_chain
from engine.vault.layout import DT_DIR, LATEST, MANIFEST, PARTIAL_DIR, RUN_DIR, read_manifest
from engine.vault.reader import PART_NAME, manifest_format

MESSAGES = {
    "LATEST_INVALID": "LATEST.json does not parse or does not name a run (dt, run_id)",
    "RUN_MISSING": "LATEST.json names a run folder that does not exist",
    "MANIFEST_MISSING": "the run folder has no manifest.json",
    "MANIFEST_INVALID": "manifest.json does not parse or lists parts it cannot have",
    "LATEST_NOT_SUCCESS": "LATEST.json names a run whose manifest does not say success",
    "PART_MISSING": "a part the manifest lists is missing",
    "CHECKSUM_MISMATCH": "the part's size or sha256 differs from the manifest",
    "PART_CORRUPT": "the part does not decompress to the size and record count the manifest records",
    "FORMAT_UNKNOWN": "the manifest names a vault format this version cannot read",
    "CANONICAL_MISMATCH": "the canonical data does not hash to what its meta file says",
    "CANONICAL_INVALID": "the canonical meta file does not parse",
    "CHAIN_BROKEN": ("LATEST is an incremental run whose chain back to a full run is broken (a run "
                     "missing, unreadable or not successful): canonize fails INCREMENTAL_CHAIN_BROKEN"),
    "LATEST_MISSING": ("the account has successful runs but no LATEST.json (deleted, or lost in a "
                       "restore): canonize fails NO_LATEST; the next successful extract writes it again"),
    "OBJECT_CORRUPT": ("an index object's bytes do not hash to its name (deep): `query --json` refuses it; "
                       "`lorchestra run --stage index --force` writes it again"),
    "INDEX_CORRUPT": ("the index is not a readable SQLite database (deep): move vector-store/ aside and "
                      "rebuild it with `lorchestra run --stage index --force`"),
    "INDEX_UNREADABLE": "the index exists but cannot be opened now (deep): locked, a full or failing disk",
    "INDEX_SCHEMA_MISMATCH": ("the index has another schema version (another lorchestra wrote it; deep): "
                              "`lorchestra clean --stage index`, then `lorchestra run --stage index`"),
    "OBJECT_MISSING": ("an indexed document's object file is missing (deep): `query --json` cannot "
                       "print it; `lorchestra run --stage index --force` writes it again"),
}
OBJECTS_LISTED = 20
"""Missing objects named one by one; the rest are counted (a lost objects folder is all of them)."""


@dataclass(frozen=True)
class Problem:
    """One thing that does not verify: a stable code and where (inside the workspace)."""

    code: str
    path: str
    """The path, relative to the workspace."""

    @property
    def message(self) -> str:
        """What the code means (fixed text, never file content)."""
        return MESSAGES.get(self.code, self.code)


@dataclass
class Report:
    """What verify looked at and what it found."""

    workspace: Path
    all_runs: bool
    deep: bool
    accounts: int = 0
    runs: int = 0
    parts: int = 0
    bytes: int = 0
    canonical: int = 0
    partial_runs: list[str] = field(default_factory=list)
    stale_names: list[str] = field(default_factory=list)
    """Accounts whose plain canonical names still hold another generation's files (a canonize
    stopped while re-linking them): the engine reads the current generation, which is whole,
    so this is a note, not a failure; readers of the plain paths see a mismatched pair until
    the next canonize re-links them (``status`` says canonical outdated)."""
    problems: list[Problem] = field(default_factory=list)
    objects: int = 0
    """Index objects checked (deep only)."""
    objects_missing: int = 0
    objects_corrupt: int = 0
    """Objects whose bytes do not hash to their name (the first 20 are named as problems)."""

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary (paths relative to the workspace)."""
        return {
            "workspace": str(self.workspace), "mode": "all" if self.all_runs else "latest",
            "deep": self.deep, "accounts": self.accounts, "runs": self.runs, "parts": self.parts,
            "bytes": self.bytes, "canonical": self.canonical, "partial_runs": self.partial_runs,
            "stale_names": self.stale_names,
            "objects": self.objects, "objects_missing": self.objects_missing,
            "objects_corrupt": self.objects_corrupt,
            "problems": [{"code": p.code, "path": p.path, "message": p.message} for p in self.problems],
        }


class Verifier:
    """Walks one workspace and fills a :class:`Report`."""

    def __init__(self, ws: Workspace, *, all_runs: bool = False, deep: bool = False) -> None:
        self.ws = ws
        self.report = Report(ws.root, all_runs, deep)

    def rel(self, path: Path) -> str:
        """``path`` relative to the workspace."""
        try:
            return str(path.relative_to(self.ws.root))
        except ValueError:
            return str(path)

    def problem(self, code: str, path: Path) -> None:
        """Record a problem."""
        self.report.problems.append(Problem(code, self.rel(path)))

    def run(self) -> Report:
        """Verify every account and canonical file; return the report."""
        for account_dir in account_dirs(self.ws):
            self.report.accounts += 1
            self.account(account_dir)
        self.canonical()
        if self.report.deep:
            self.objects()
        return self.report

    def objects(self) -> None:
        """Deep: every document the index holds has its object file, whose bytes hash to its
        name (a bad sector, a restore gone wrong, a hand edit: `query --json` refused it while
        verify said "all verified")."""
        objects = self.ws.vector_store / "objects"
        db = self.ws.vector_store / "index.sqlite"
        try:
            conn = open_reader(self.ws)
        except StoreError as exc:  # no index is no problem; a damaged one said "all verified"
            if exc.code in (INDEX_CORRUPT, INDEX_UNREADABLE, "INDEX_SCHEMA_MISMATCH"):
                self.problem(exc.code, db)
            return
        try:
            self._objects(conn, objects)
        except sqlite3.DatabaseError:  # malformed past its header: read as far as it went
            self.problem(INDEX_CORRUPT, db)
        finally:
            conn.close()

    def _objects(self, conn: sqlite3.Connection, objects: Path) -> None:
        for (sha,) in conn.execute("SELECT DISTINCT sha256 FROM documents"):
            self.report.objects += 1
            path = object_path(objects, sha)
            code = object_problem(path, sha)
            if code is None:
                continue
            counted = "objects_missing" if code == "OBJECT_MISSING" else "objects_corrupt"
            setattr(self.report, counted, getattr(self.report, counted) + 1)
            if getattr(self.report, counted) <= OBJECTS_LISTED:  # the rest are counted
                self.problem(code, path)

    def account(self, account_dir: Path) -> None:
        """Check LATEST and its run (or every run with ``all_runs``)."""
        latest_run = self.latest(account_dir)
        if self.report.all_runs:
            for run_dir in run_dirs(account_dir):
                self.run_folder(run_dir, must_succeed=run_dir == latest_run)
            for dt_dir in _subdirs(account_dir, DT_DIR):
                for p in sorted(dt_dir.iterdir()):
                    if PARTIAL_DIR.fullmatch(p.name):
                        self.report.partial_runs.append(self.rel(p))
        elif latest_run is not None:
            self.run_folder(latest_run, must_succeed=True)
        if latest_run is not None:
            self.chain(account_dir, latest_run, check_runs=not self.report.all_runs)

    def chain(self, account_dir: Path, latest_run: Path, *, check_runs: bool) -> None:
        """For an incremental LATEST, the runs canonize reads with it: each must exist and
        succeed, and (unless every run is checked anyway) verify like LATEST's own."""
        try:
            manifest = read_json(latest_run / MANIFEST)
        except (OSError, ValueError):
            return  # reported by run_folder
        if not isinstance(manifest, dict):
            return
        try:
            runs = incremental_chain(account_dir, ChainRun(latest_run, manifest))
        except ChainBroken:
            self.problem("CHAIN_BROKEN", latest_run / MANIFEST)
            return
        if check_runs:
            for earlier in runs[1:]:
                self.run_folder(earlier.path, must_succeed=True)

    def latest(self, account_dir: Path) -> Path | None:
        """The run folder LATEST names (None when there is no LATEST or it names nothing)."""
        path = account_dir / LATEST
        if not path.exists():
            if any(_succeeded(r) for r in run_dirs(account_dir)):  # deleted, or lost in a restore
                self.problem("LATEST_MISSING", path)
            return None
        try:
            data = read_json(path)
            dt, run_id = str(data["dt"]), str(data["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            self.problem("LATEST_INVALID", path)
            return None
        if not DT_DIR.fullmatch(f"dt={dt}") or not RUN_DIR.fullmatch(f"run_id={run_id}"):
            self.problem("LATEST_INVALID", path)  # never build a path from an odd value
            return None
        run_dir = account_dir / f"dt={dt}" / f"run_id={run_id}"
        if not run_dir.is_dir():
            self.problem("RUN_MISSING", run_dir)
            return None
        return run_dir

    def run_folder(self, run_dir: Path, *, must_succeed: bool) -> None:
        """Check one completed run folder: manifest, status, every part."""
        self.report.runs += 1
        manifest_path = run_dir / MANIFEST
        if not manifest_path.exists():
            self.problem("MANIFEST_MISSING", manifest_path)
            return
        try:
            manifest = read_json(manifest_path)
            parts = manifest["parts"]
            assert isinstance(parts, list)
        except (OSError, ValueError, KeyError, TypeError, AssertionError):
            self.problem("MANIFEST_INVALID", manifest_path)
            return
        try:
            fmt = manifest_format(manifest)
        except ValueError:
            self.problem("FORMAT_UNKNOWN", manifest_path)
            return
        if must_succeed and manifest.get("status") != "success":
            self.problem("LATEST_NOT_SUCCESS", manifest_path)
        for part in parts:
            name = part.get("file") if isinstance(part, dict) else None
            if not isinstance(name, str) or not PART_NAME.fullmatch(name):
                self.problem("MANIFEST_INVALID", manifest_path)
                continue
            self.part(run_dir / name, part, fmt)

    def part(self, path: Path, part: dict[str, Any], fmt: int = 1) -> None:
        """Check one part's size and sha256 (and, deep, its content's size and count)."""
        self.report.parts += 1
        if not path.is_file():
            self.problem("PART_MISSING", path)
            return
        size = path.stat().st_size
        self.report.bytes += size
        if size != part.get("bytes") or file_sha256(path) != part.get("sha256"):
            self.problem("CHECKSUM_MISMATCH", path)
            return
        if not self.report.deep:
            return
        if fmt == 1:
            ok = gzip_counts(path) == (part.get("uncompressed_bytes"), part.get("records"))
        else:
            ok = message_counts(path) == (part.get("uncompressed_bytes"), part.get("messages"), part.get("records"))
        if not ok:
            self.problem("PART_CORRUPT", path)

    def canonical(self) -> None:
        """Every account's canonical data hashes to what its meta says."""
        root = self.ws.canonical
        if not root.is_dir():
            return
        for source_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            for account in _canonical_accounts(source_dir):
                self.report.canonical += 1
                files = AccountFiles(source_dir, account)
                code = _canonical_problem(files)
                if code is not None:
                    self.problem(code, files.data)
                elif not plain_names_agree(files, deep=True):
                    self.report.stale_names.append(self.rel(files.data))


def _canonical_accounts(source_dir: Path) -> list[str]:
    """Accounts with canonical output: a plain meta file or a generation store."""
    names = {p.name[: -len(".meta.json")] for p in source_dir.glob("*.meta.json")
             if not p.name.startswith(".")}
    names |= {p.name[1: -len(".gen")] for p in source_dir.glob(".*.gen") if (p / "CURRENT").exists()}
    return sorted(names)


def _canonical_problem(files: AccountFiles) -> str | None:
    """Whether the current generation's data hashes to what its meta says (one generation)."""
    try:
        with open_current(files) as view:
            if view is not None and view.rejects_present and not view.meta_present and view.data is None:
                return None  # only rejects published (a first canonize that failed): no output yet
            if view is None or view.meta is None:
                return "CANONICAL_INVALID"
            want = section(view.meta, "output").get("sha256")
            if want is None:
                return "CANONICAL_INVALID"
            if view.data is None:
                return "CANONICAL_MISMATCH"
            h = hashlib.sha256()
            while chunk := view.data.read(CHUNK):
                h.update(chunk)
    except OSError:
        return "CANONICAL_MISMATCH"
    if h.hexdigest() != want:
        return "CANONICAL_MISMATCH"
    return None if _plain_names_are_files(files) else "CANONICAL_MISMATCH"


def _plain_names_are_files(files: AccountFiles) -> bool:
    """The fixed paths readers outside the engine open (``{account}.jsonl``, ...) are regular
    files when present: a FIFO, device or symlink planted there would block or mislead them.
    (That they link the current generation is checked apart: a kill between the pointer swap
    and the re-link leaves ``{account}.jsonl`` new beside an old ``.meta.json``, a pair whose
    sha256 disagree for any reader of the plain names until the next canonize re-links them.)
    """
    for path in (files.data, files.meta, files.rejects):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        except OSError:
            return False
        if not stat.S_ISREG(mode):
            return False
    return True


def account_dirs(ws: Workspace) -> Iterator[Path]:
    """Every ``vault/{domain}/{source}/{account}`` folder (symlinks and hidden names skipped)."""
    for domain in _subdirs(ws.vault):
        for source in _subdirs(domain):
            yield from _subdirs(source)


def _succeeded(run_dir: Path) -> bool:
    """Whether a run folder's manifest says success (unreadable: no)."""
    try:
        return read_manifest(run_dir).get("status") == "success"
    except (OSError, ValueError):
        return False


def run_dirs(account_dir: Path) -> list[Path]:
    """Every completed (visible) run folder of an account, oldest first."""
    return [r for dt in _subdirs(account_dir, DT_DIR) for r in _subdirs(dt, RUN_DIR)]


def _subdirs(folder: Path, pattern: re.Pattern[str] | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
                  and (pattern is None or pattern.fullmatch(p.name)))


def verify(ws: Workspace, *, all_runs: bool = False, deep: bool = False) -> Report:
    """Verify the workspace; see the module docstring."""
    return Verifier(ws, all_runs=all_runs, deep=deep).run()


def dumps(report: Report) -> bytes:
    """The report as indented JSON."""
    return orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2)
