"""No "internal error" reachable from input: every command against every broken input.

A clean run builds one small workspace (two demo accounts, every stage). Each case copies
it, breaks one thing the way a user or a failing disk would (missing, unreadable, wrong
type, truncated, corrupted, symlinked, read-only, full), then runs every command against it
as a real subprocess. Every command must end with a documented exit code (0, 1, 2, 3, 4),
never print ``internal error`` or a traceback, and when it fails say so in a message
(``lorchestra: error: ...``) or, for a run, with task error codes from the documented table
(``engine.events.ErrorCode``, checked against ``docs/architecture.md``). Some cases also
pin the exact code (a workspace that is a file: 2; read-only: 4; LATEST naming a failed
run: ``verify`` 1 with ``LATEST_NOT_SUCCESS`` and canonize refuses it).

Unreadable files cannot be made for root (it reads anything), so those cases are skipped
when the tests run as root; the read-only and full cases use a small tmpfs and are skipped
where ``mount`` is not allowed (test_disk_full.py has the fault-injection fallback).

Each case runs about ten commands (the readers three at a time): 10-30 s per case on a
loaded 2-core machine, 31 cases, the price of walking every command over every broken input.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.events import ErrorCode
from tests.helpers import REPO, clean_env, demo_extractor, demo_mappings, run_cli, write_config

DOCS = (REPO / "docs" / "architecture.md").read_text()
EXIT_CODES = {0, 1, 2, 3, 4}
READERS: list[tuple[str, ...]] = [
    ("status",), ("verify", "--all", "--deep"), ("query", "--counts"),
    ("query", "--text", "hello", "--json"), ("validate",), ("clean", "--all", "--dry-run"),
]
STAGES: list[tuple[str, ...]] = [  # in this order: each later stage reads what is broken first
    ("run", "--stage", "canonize", "--json"), ("run", "--stage", "index", "--json"),
]
FULL_RUN: tuple[str, ...] = ("run", "--json")
WRITERS = [*STAGES, FULL_RUN]
IS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bad-inputs-base")
    cfg = write_config(tmp, [demo_extractor("acct0", "gmail", records=15, seed=3),
                             demo_extractor("acct1", "dataverse", records=15, seed=4)],
                       stages={"canonize": {"mappings": demo_mappings()}})
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    # one failed run of acct0, for the "LATEST names a failed run" case
    (tmp / "f").mkdir()
    failing = write_config(tmp / "f", [demo_extractor("acct0", "gmail", records=15, seed=3,
                                                      faults={"fail_after": 3})])
    failing.write_text(failing.read_text().replace(str(tmp / "f" / "ws"), str(tmp / "ws")))
    assert run_cli("extract", "acct0", "--config", str(failing)).returncode == 1
    return tmp


class Case:
    """A copy of the base workspace, to break."""

    def __init__(self, base: Path, tmp: Path) -> None:
        self.tmp = tmp
        self.ws = tmp / "ws"
        shutil.copytree(base / "ws", self.ws, symlinks=True)
        cfg = (base / "pipeline.yaml").read_text().replace(str(base / "ws"), str(self.ws))
        self.cfg = tmp / "pipeline.yaml"
        self.cfg.write_text(cfg)

    def acct(self, name: str = "acct0") -> Path:
        return next(p for p in (self.ws / "vault").glob(f"*/*/{name}"))

    def latest_run(self, name: str = "acct0") -> Path:
        ptr = orjson.loads((self.acct(name) / "LATEST.json").read_bytes())
        return self.acct(name) / f"dt={ptr['dt']}" / f"run_id={ptr['run_id']}"

    def canonical(self, name: str = "acct0") -> Path:
        return self.ws / "canonical" / "gmail" / f"{name}.jsonl"

    def run(self, *args: str, ws: Path | None = None) -> subprocess.CompletedProcess[str]:
        extra = ("--workspace", str(ws)) if ws is not None else ()
        # errors="replace": `query --json` prints stored documents as they are, damaged ones too
        return subprocess.run([sys.executable, "-m", "lorch_tui.cli", *args, "--config", str(self.cfg), *extra],
                              capture_output=True, text=True, errors="replace", env=clean_env(),
                              cwd=REPO, timeout=180)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, len(data) // 2)])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff not what this file should hold \x00" * 4)


def _to_dir(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.mkdir(mode=0o700)


def _to_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_bytes(b"not a folder\n")
    path.chmod(0o600)


def _odd_manifest(path: Path) -> None:
    """Valid JSON, hand-edited: counts that are not numbers, a stream entry that is a string."""
    m = orjson.loads(path.read_bytes())
    m.update(records="12x", bytes=[1], parts=5, compression_ratio="high", error_code=7)
    name, info = next(iter(m["streams"].items()))
    m["streams"] = {name: {**info, "records": "12x", "schemas": "none"}, "other": "not an object"}
    path.write_bytes(orjson.dumps(m))


def _meta_output_null(path: Path) -> None:
    """A hand-edited canonical meta: ``"output": null`` (status crashed on it)."""
    meta = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**meta, "output": None}))


def _to_fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)


def _first(pattern: str) -> Callable[[Case], Path]:
    return lambda c: sorted(c.ws.glob(pattern))[0]


MUTATIONS: dict[str, Callable[[Case], Any]] = {
    "latest-truncated": lambda c: _truncate(c.acct() / "LATEST.json"),
    "latest-is-a-folder": lambda c: _to_dir(c.acct() / "LATEST.json"),
    "latest-names-nothing": lambda c: (c.acct() / "LATEST.json").write_bytes(
        b'{"dt": "2020-01-01", "run_id": "20200101T000000Z", "records": 1}'),
    "latest-names-../": lambda c: (c.acct() / "LATEST.json").write_bytes(
        b'{"dt": "../../x", "run_id": "../y", "records": 1}'),
    "latest-not-an-object": lambda c: (c.acct() / "LATEST.json").write_bytes(b"[1, 2]"),
    "latest-is-a-fifo": lambda c: _to_fifo(c.acct() / "LATEST.json"),  # status blocked on it for ever
    "manifest-not-an-object": lambda c: (c.latest_run() / "manifest.json").write_bytes(b"[]"),
    "manifest-missing": lambda c: (c.latest_run() / "manifest.json").unlink(),
    "manifest-odd-types": lambda c: _odd_manifest(c.latest_run() / "manifest.json"),
    "manifest-truncated": lambda c: _truncate(c.latest_run() / "manifest.json"),
    "manifest-is-a-folder": lambda c: _to_dir(c.latest_run() / "manifest.json"),
    "part-truncated": lambda c: _truncate(c.latest_run() / "part-000.jsonl.gz"),
    "part-garbage": lambda c: _garbage(c.latest_run() / "part-000.jsonl.gz"),
    "part-missing": lambda c: (c.latest_run() / "part-000.jsonl.gz").unlink(),
    "run-folder-is-a-file": lambda c: _to_file(c.latest_run()),
    "canonical-data-truncated": lambda c: _truncate(c.canonical()),
    "canonical-meta-garbage": lambda c: _garbage(c.canonical().with_name("acct0.meta.json")),
    "canonical-meta-output-null": lambda c: _meta_output_null(c.canonical().with_name("acct0.meta.json")),
    "canonical-pointer-garbage": lambda c: _garbage(c.ws / "canonical" / "gmail" / ".acct0.gen" / "CURRENT"),
    "canonical-generation-gone": lambda c: [shutil.rmtree(p) for p in
                                            (c.ws / "canonical" / "gmail" / ".acct0.gen").glob("g*")],
    "canonical-folder-is-a-file": lambda c: _to_file(c.ws / "canonical" / "gmail"),
    "index-garbage": lambda c: (_garbage(c.ws / "vector-store" / "index.sqlite"),
                                [p.unlink() for p in (c.ws / "vector-store").glob("index.sqlite-*")]),
    "index-is-a-folder": lambda c: _to_dir(c.ws / "vector-store" / "index.sqlite"),
    "object-corrupted": lambda c: _garbage(_first("vector-store/objects/*/*/*.json")(c)),
    "object-missing": lambda c: _first("vector-store/objects/*/*/*.json")(c).unlink(),
    "history-garbage": lambda c: _garbage(c.ws / "state" / "lorch.sqlite"),
    "state-is-a-file": lambda c: _to_file(c.ws / "state"),
    "lock-is-a-folder": lambda c: _to_dir(c.ws / "state" / "lock"),
    "lock-is-a-fifo": lambda c: _to_fifo(c.ws / "state" / "lock"),  # status blocked reading the holder
    "keys-name-key-is-a-fifo": lambda c: _to_fifo(c.ws / "keys" / "names.key"),  # drift, validate blocked
    "logs-is-a-file": lambda c: _to_file(c.ws / "logs"),
    "log-is-a-folder": lambda c: _to_dir(_first("logs/pipeline-*.log")(c)),
    "vault-is-a-file": lambda c: _to_file(c.ws / "vault"),
    "symlink-inside": lambda c: os.symlink("/tmp", c.ws / "vault" / "elsewhere"),
    "config-missing": lambda c: c.cfg.unlink(),
    "config-truncated": lambda c: c.cfg.write_text(c.cfg.read_text()[:37]),
    "config-is-a-folder": lambda c: (c.cfg.unlink(), c.cfg.mkdir()),
    "config-garbage": lambda c: c.cfg.write_bytes(b"\xff\xfe\x00garbage: [\n"),
}


def _check(case: str, args: tuple[str, ...], res: subprocess.CompletedProcess[str]) -> None:
    where = f"{case}: lorchestra {' '.join(args)} -> {res.returncode}\n{res.stderr[-1500:]}"
    out = res.stdout + res.stderr
    assert res.returncode in EXIT_CODES, where
    assert "internal error" not in out and "Traceback" not in out, where
    if res.returncode in (2, 3, 4) or (res.returncode == 1 and args[0] != "run" and args[0] != "verify"):
        said = "error:" in res.stderr or (args[0] == "validate" and "problem" in res.stdout) or (
            args[0] == "status" and any(f"`{code}`" in DOCS and code in out
                                        for code in ("INDEX_CORRUPT", "STATE_DB_CORRUPT", "STATE_DB_UNREADABLE",
                                                     "LATEST_INVALID", "RUN_MISSING")))
        assert said, f"{where}\nno message says what went wrong"
    if args[0] == "run" and res.returncode == 1 and "error:" not in res.stderr:
        codes = [e.get("error_code") for e in _events(res.stdout) if e.get("type") == "task_finished"]
        failed = [c for c in codes if c]
        assert failed, f"{where}\na failed run names no error code"
        for code in failed:
            assert code in ErrorCode.__members__ and f"`{code}`" in DOCS, f"{where}\nundocumented {code}"


def _events(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return out


def _commands(case: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(readers, writers) worth running for a case: a broken config fails at load, so every
    command is cheap there; a broken canonical file or index is read by the later stages,
    which a full run (with its extracts) adds nothing to."""
    if case.startswith("config-"):
        return [*READERS, ("list", "extractors"), ("status", "--json")], [*STAGES, FULL_RUN, ("extract", "acct0")]
    if case.startswith(("canonical-", "index-", "object-")):
        return READERS, STAGES
    if case.startswith(("latest-", "keys-")):  # drift reads each LATEST and the name key too
        return [*READERS, ("drift",), ("list", "streams", "acct0")], [*STAGES, FULL_RUN]
    if case.startswith("manifest-"):
        return [*READERS, ("list", "streams", "acct0"), ("list", "streams", "acct0", "--json")], [*STAGES, FULL_RUN]
    return READERS, [*STAGES, FULL_RUN]


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_every_command_survives(case: str, base: Path, tmp_path: Path) -> None:
    c = Case(base, tmp_path)
    MUTATIONS[case](c)
    readers, writers = _commands(case)
    with ThreadPoolExecutor(3) as pool:  # readers take no lock and change nothing
        for args, res in zip(readers, pool.map(lambda a: c.run(*a), readers), strict=True):
            _check(case, args, res)
    for args in writers:
        _check(case, args, c.run(*args))


def test_workspace_that_is_a_file_or_under_one(base: Path, tmp_path: Path) -> None:
    c = Case(base, tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for ws in (afile, afile / "below"):
        for args in READERS + WRITERS + [("extract", "acct0"), ("drift",), ("list", "streams", "acct0")]:
            res = c.run(*args, ws=ws)
            _check(f"workspace {ws}", args, res)
            if args[:2] != ("list", "extractors"):  # `list streams` and `drift` said "no run yet"
                assert res.returncode == 2 and "not a folder" in res.stderr, (args, res.stderr)
        res = run_cli("--no-ui", "--config", str(c.cfg), "--workspace", str(ws), prog="lorch_tui.tui_main")
        assert res.returncode == 2 and "not a folder" in res.stderr and "internal error" not in res.stderr


def test_missing_workspace_is_not_created_by_readers(base: Path, tmp_path: Path) -> None:
    c = Case(base, tmp_path)
    ws = tmp_path / "nowhere" / "ws"
    for args in READERS:
        _check("missing workspace", args, c.run(*args, ws=ws))
    assert not ws.exists() and not ws.parent.exists()


@pytest.mark.skipif(IS_ROOT, reason="root reads and writes any file: unreadable paths cannot be made")
def test_unreadable_workspace(base: Path, tmp_path: Path) -> None:
    c = Case(base, tmp_path)
    c.latest_run().chmod(0)
    for args in READERS + WRITERS:
        _check("unreadable run folder", args, c.run(*args))
    c.latest_run().chmod(0o700)
    c.ws.chmod(0)
    try:
        for args in READERS + WRITERS:
            _check("unreadable workspace", args, c.run(*args))
    finally:
        c.ws.chmod(0o700)


def test_cannot_create_workspace(base: Path, tmp_path: Path) -> None:
    """The parent is read-only (a read-only tmpfs for root) or not ours: exit 4, clear message."""
    c = Case(base, tmp_path)
    parent = tmp_path / "ro"
    parent.mkdir()
    mounted = False
    if IS_ROOT:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(parent)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        mounted = True
    else:
        parent.chmod(0o500)
    try:
        for args in (("run",), ("extract", "acct0"), ("clean", "--all", "--yes")):
            res = c.run(*args, ws=parent / "ws")
            _check("cannot create", args, res)
            if args[0] != "clean":
                assert res.returncode == 4 and "cannot be created" in res.stderr, (args, res.stderr)
        res = run_cli("--no-ui", "--config", str(c.cfg), "--workspace", str(parent / "ws"),
                      prog="lorch_tui.tui_main")
        assert res.returncode == 4 and "internal error" not in res.stderr, res.stderr
    finally:
        if mounted:
            subprocess.run(["umount", str(parent)], check=False)
        else:
            parent.chmod(0o700)


def test_latest_naming_a_failed_run_is_reported_and_refused(base: Path, tmp_path: Path) -> None:
    c = Case(base, tmp_path)
    failed = next(r for r in c.acct().glob("dt=*/run_id=*")
                  if orjson.loads((r / "manifest.json").read_bytes())["status"] == "failed")
    (c.acct() / "LATEST.json").write_bytes(orjson.dumps(
        {"dt": failed.parent.name[3:], "run_id": failed.name[7:], "records": 3}))
    for args in (("verify",), ("verify", "--all")):
        res = c.run(*args)
        assert res.returncode == 1 and "LATEST_NOT_SUCCESS" in res.stdout + res.stderr, (args, res.stdout)
    res = c.run("run", "--stage", "canonize", "--json")
    assert res.returncode == 1
    codes = {e["extractor"]: e.get("error_code") for e in _events(res.stdout) if e.get("type") == "task_finished"}
    assert codes["acct0"] == "LATEST_NOT_SUCCESS" and codes["acct1"] is None, codes


def test_the_dashboards_run_list_reads_an_odd_manifest(base: Path, tmp_path: Path) -> None:
    """The account detail (Enter on an account) read every count with int(): a hand-edited
    manifest crashed the dashboard with an internal error."""
    from engine.config.load import load_file
    from engine.ops.inspect import account_runs
    from engine.store.workspace import Workspace

    c = Case(base, tmp_path)
    _odd_manifest(c.latest_run() / "manifest.json")
    cfg = load_file(c.cfg)
    ex = next(e for e in cfg.extractors if e.account == "acct0")
    runs = account_runs(cfg, Workspace(c.ws), ex)
    damaged = next(r for r in runs if r.path == c.latest_run())
    assert (damaged.records, damaged.bytes, damaged.parts, damaged.ratio, damaged.error_code) == (0, 0, 0, None, None)
    assert set(damaged.streams.values()) == {0}


def test_a_file_where_the_accounts_vault_folder_belongs_fails_write_failed_not_crashed(base: Path,
                                                                                        tmp_path: Path) -> None:
    """The extract worker made the account folder and its run outside its error handling: a
    file in the way was WORKER_CRASHED ("a lorchestra bug"), retried with backoff."""
    c = Case(base, tmp_path)
    acct = c.acct()
    shutil.rmtree(acct)
    acct.write_bytes(b"in the way\n")
    acct.chmod(0o600)
    res = c.run("extract", "acct0", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    done = [e for e in _events(res.stdout) if e.get("type") == "task_finished"]
    assert [(e["error_code"], e["attempt"]) for e in done] == [("WRITE_FAILED", 1)], done
    diag = (c.ws / "diagnostics" / "extract").glob("*.stderr.log")
    said = "".join(p.read_text() for p in diag)
    assert "Traceback" not in said and (f"ENOTDIR on {acct}" in said or f"EEXIST on {acct}" in said), said


def test_a_canonize_write_failure_names_its_path_in_the_diagnostics(base: Path, tmp_path: Path) -> None:
    """WRITE_FAILED said nothing more: no path, no errno (the docs sent people to dmesg)."""
    c = Case(base, tmp_path)
    folder = c.ws / "canonical" / "gmail"
    shutil.rmtree(folder)
    folder.write_bytes(b"in the way\n")
    folder.chmod(0o600)
    res = c.run("run", "--stage", "canonize", "--json", "--force")
    assert res.returncode == 1, res.stdout + res.stderr
    codes = {e["extractor"]: e.get("error_code") for e in _events(res.stdout) if e.get("type") == "task_finished"}
    assert codes["acct0"] == "WRITE_FAILED", codes
    said = "".join(p.read_text() for p in (c.ws / "diagnostics" / "canonize").glob("*.stderr.log"))
    assert "canonize: ENOTDIR on " in said or "canonize: EEXIST on " in said, said
    assert str(folder) in said and "Traceback" not in said


def test_an_index_that_cannot_be_opened_now_is_not_called_missing(base: Path, tmp_path: Path) -> None:
    """On a read-only folder (or a full disk) SQLite cannot open the index: `query` and
    `clients` said "there is no index ... missing" (exit 2), inviting a rebuild of an index
    that is whole. Now: INDEX_UNREADABLE, exit 1, and the advice not to rebuild."""
    c = Case(base, tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir(mode=0o700)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        shutil.copytree(c.ws / "vector-store", mnt / "vector-store")
        for side in ("-wal", "-shm"):
            (mnt / "vector-store" / f"index.sqlite{side}").unlink(missing_ok=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        for args in (("query", "--counts"), ("clients", "list"), ("status",)):
            res = c.run(*args, ws=mnt)
            assert res.returncode == 1, (args, res.stdout, res.stderr)
            said = res.stdout + res.stderr
            assert "cannot be opened now" in said and "is missing" not in said, said
            assert "do not rebuild" in said
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_verify_deep_names_a_missing_object_file(base: Path, tmp_path: Path) -> None:
    """A deleted object file hid every document from `query --json` while `verify --all
    --deep` said "all verified" and `status` "current"."""
    c = Case(base, tmp_path)
    assert c.run("verify", "--deep").returncode == 0
    gone = sorted((c.ws / "vector-store" / "objects").glob("*/*/*.json"))
    for path in gone[:25]:
        path.unlink()
    res = c.run("verify", "--deep", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    report = orjson.loads(res.stdout)
    assert report["objects_missing"] == 25 and report["objects"] == len(gone)
    listed = [p["path"] for p in report["problems"] if p["code"] == "OBJECT_MISSING"]
    assert len(listed) == 20 and all(p.startswith("vector-store/objects/") for p in listed)
    plain = c.run("verify", "--deep")
    assert "and 5 more object file(s)" in plain.stdout and "run --stage index --force" in plain.stdout
    assert c.run("verify").returncode == 0, "only --deep reads the index's objects"
    assert c.run("run", "--stage", "index", "--force").returncode == 0
    assert c.run("verify", "--deep").returncode == 0


def test_verify_deep_hashes_each_object(base: Path, tmp_path: Path) -> None:
    """One character changed in an object (still JSON, still 0600): `query --json` refused it
    as OBJECT_CORRUPT while `verify --deep` said "all verified" (it only checked the file was
    there)."""
    c = Case(base, tmp_path)
    victim = sorted((c.ws / "vector-store" / "objects").glob("*/*/*.json"))[0]
    data = victim.read_bytes()
    i = data.index(b'"', 2) - 1
    victim.write_bytes(data[:i] + (b"X" if data[i:i + 1] != b"X" else b"Y") + data[i + 1:])
    res = c.run("verify", "--deep", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    report = orjson.loads(res.stdout)
    assert [p["path"] for p in report["problems"] if p["code"] == "OBJECT_CORRUPT"] == [
        str(victim.relative_to(c.ws))]
    assert (report["objects_corrupt"], report["objects_missing"]) == (1, 0)
    assert c.run("run", "--stage", "index", "--force").returncode == 0
    assert c.run("verify", "--deep").returncode == 0


def test_query_edges_a_user_reaches(base: Path, tmp_path: Path) -> None:
    """`--until 9999-12-31` was an internal error (OverflowError); a pasted page of words took
    minutes for nothing (every word is required); `query | head` exited 1 (rich's broken pipe)."""
    c = Case(base, tmp_path)
    res = c.run("query", "--until", "9999-12-31", "--limit", "1")
    assert res.returncode == 0 and "internal error" not in res.stderr, res.stderr
    words = " ".join(f"w{i}" for i in range(70))
    res = c.run("query", "--text", words, "--words-only")
    assert res.returncode == 2 and "give at most 64" in res.stderr, res.stderr
    assert c.run("query", "--text", "hello " * 200, "--words-only").returncode in (0, 1)  # one word, required once
    for symbols in ("*", "^", "* ^ -"):  # no word: it ranked every document by meaning alone
        res = c.run("query", "--text", symbols)
        assert res.returncode == 2 and "has no words" in res.stderr and res.stdout == "", (symbols, res.stderr)
    cmd = (f"{shlex.quote(sys.executable)} -m lorch_tui.cli query --limit 0 --config {shlex.quote(str(c.cfg))} "
           "| head -1; exit ${PIPESTATUS[0]}")
    piped = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, env=clean_env(), timeout=120)
    assert piped.returncode == 0, piped.stderr


def test_verify_names_a_deleted_latest(base: Path, tmp_path: Path) -> None:
    """Successful runs in the vault and no LATEST.json: verify said "all verified" while
    canonize failed NO_LATEST ("never extracted successfully")."""
    c = Case(base, tmp_path)
    (c.acct() / "LATEST.json").unlink()
    res = c.run("verify", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    problems = orjson.loads(res.stdout)["problems"]
    assert [p["code"] for p in problems] == ["LATEST_MISSING"] and problems[0]["path"].endswith("LATEST.json")
    fresh = Case(base, tmp_path / "fresh")
    shutil.rmtree(fresh.acct())  # an account never extracted: nothing to say
    assert fresh.run("verify").returncode == 0
