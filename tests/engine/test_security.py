"""Security promises of DESIGN.md section 3, through the real commands.

test_workspace.py proves the vault's modes under umask 000, the busy lock (exit 3), waiting
for it, a killed holder's lock, and exit 4 for a loose vault folder, manifest, logs folder
and the workspace itself; test_config.py proves unsafe config names (``..``, ``/``, NUL,
300 characters) are refused with exit 2. Here: every folder a full run creates (canonical,
vector-store, state, logs, diagnostics) is private whatever the umask, and loose modes on
them refuse the run; names a tap sends never become paths; a workspace reached through a
symlink; and a lock that cannot be stolen, not by deleting its file, not while the killed
engine's workers are still finishing, and a stale one that never blocks.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.engine.test_workspace import private_violations
from tests.helpers import (
    REPO,
    account_dir,
    clean_env,
    demo_extractor,
    demo_mappings,
    latest,
    log_events,
    run_cli,
    runs_of,
    vault_records,
    verify_parts,
    wait_for,
    write_config,
)
from tests.invariants import lock_is_free

CLI = [sys.executable, "-m", "lorch_tui.cli"]


def full_config(tmp: Path, **extract: Any) -> tuple[Path, list[dict[str, Any]]]:
    """Two demo accounts (one whose extract fails, so diagnostics have content) + mappings."""
    exs = [demo_extractor("mail", "gmail", records=25), demo_extractor("dv", "dataverse", records=25),
           demo_extractor("broken", "sheets", records=25, faults={"fail_after": 3})]
    cfg = write_config(tmp, exs, stages={"extract": {"cancel_grace_s": 1, **extract},
                                         "canonize": {"mappings": demo_mappings()}})
    return cfg, exs


# ------------------------------------------------------------------ modes


def test_a_full_run_under_umask_000_creates_only_private_paths(tmp_path: Path) -> None:
    cfg, _ = full_config(tmp_path)
    res = subprocess.run([*CLI, "run", "--config", str(cfg)], umask=0, capture_output=True, text=True,
                         cwd=REPO, env=clean_env(), timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr  # the broken account fails, the others run
    ws = tmp_path / "ws"
    for sub in ("vault", "canonical", "vector-store", "state", "logs", "diagnostics"):
        files = [p for p in (ws / sub).rglob("*") if p.is_file()]
        assert files, f"the run wrote nothing under {sub}/: the check would be vacuous"
    assert (ws / "canonical" / "gmail" / "mail.jsonl").is_file()
    assert (ws / "state" / "lorch.sqlite").is_file() and (ws / "vector-store" / "index.sqlite").is_file()
    assert list((ws / "diagnostics").rglob("*.stderr.log"))
    assert private_violations(ws) == []


LOOSE = [
    ("canonical/gmail/mail.jsonl", 0o644),
    ("canonical/gmail", 0o755),
    ("vector-store/index.sqlite", 0o640),
    ("vector-store/objects", 0o711),
    ("state/lorch.sqlite", 0o604),
    ("state", 0o750),
    ("diagnostics/extract", 0o705),
    ("logs", 0o701),
]


@pytest.mark.parametrize(("rel", "mode"), LOOSE, ids=[f"{r}-{oct(m)}" for r, m in LOOSE])
def test_loose_modes_anywhere_in_the_workspace_refuse_the_run(tmp_path: Path, rel: str, mode: int) -> None:
    cfg, exs = full_config(tmp_path)
    assert run_cli("run", "--config", str(cfg)).returncode == 1
    ws = tmp_path / "ws"
    target = ws / rel
    assert target.exists(), rel
    os.chmod(target, mode)
    before = len(log_events(ws))
    for face in (("run", "--config", str(cfg)), ("--no-ui", "--config", str(cfg))):
        prog = "lorch_tui.cli" if face[0] == "run" else "lorch_tui.tui_main"
        res = run_cli(*face, prog=prog)
        assert res.returncode == 4, (face, res.stdout, res.stderr)
        assert str(target) in res.stderr and "--skip-permissions" in res.stderr
        assert "Traceback" not in res.stderr
    assert len(log_events(ws)) == before, "a refused run writes nothing, not even a log line"
    res = run_cli("run", "--config", str(cfg), "--skip-permissions", "--account", "mail")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("rel", ["", "vector-store/index.sqlite"], ids=["workspace", "index"])
def test_a_path_another_user_owns_refuses_the_run(tmp_path: Path, rel: str) -> None:
    """Modes 0700/0600 are not enough: a workspace folder someone else made (``/tmp/lorch-try``)
    or an index file they planted was written into, and its owner could read every document."""
    cfg, _ = full_config(tmp_path)
    assert run_cli("run", "--config", str(cfg)).returncode == 1
    ws = tmp_path / "ws"
    target = ws / rel if rel else ws
    os.chown(target, 65534, -1)  # nobody
    for args in (("run", "--config", str(cfg)), ("validate", "--quick", "--config", str(cfg))):
        res = run_cli(*args)
        assert res.returncode == 4, (args, res.stdout, res.stderr)
        assert f"{target} (owned by another user: uid 65534)" in res.stdout + res.stderr
        assert "Traceback" not in res.stderr
    os.chown(target, 0, -1)
    assert run_cli("run", "--config", str(cfg), "--account", "mail").returncode == 0


# ------------------------------------------------------------------ names from taps


HOSTILE_TAP = textwrap.dedent("""\
    import json, sys
    names = ["../../escaped", "a/b", "..", "/abs/path", "nul\\u0000byte", "x" * 300, "ok"]
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    for n in names:
        print(json.dumps({"type": "SCHEMA", "stream": n, "schema": schema, "key_properties": ["id"]}))
        print(json.dumps({"type": "ACTIVATE_VERSION", "stream": n, "version": 1}))
        for i in range(3):
            print(json.dumps({"type": "RECORD", "stream": n, "record": {"id": i}}))
    print(json.dumps({"type": "STATE", "value": {"bookmarks": {n: 3 for n in names}}}))
""")
HOSTILE = ["../../escaped", "a/b", "..", "/abs/path", "nul\x00byte", "x" * 300, "ok"]


def test_stream_names_from_a_tap_never_become_paths(tmp_path: Path) -> None:
    """The vault keeps a tap's stream names inside part lines and the manifest only; the
    canonical file is named from config identifiers (source, account) only."""
    script = tmp_path / "hostile_tap.py"
    script.write_text(HOSTILE_TAP)
    ex = {"name": "hostile", "domain": "test", "source": "tiny", "account": "acct", "kind": "singer",
          "command": [sys.executable, str(script)]}
    maps = [{"source": "tiny", "stream": "../../escaped", "transform": "email/gmail_to_canonical_v1",
             "max_rejects": 100}]
    cfg = write_config(tmp_path, [ex], stages={"canonize": {"mappings": maps}})
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    res = run_cli("run", "--config", str(cfg), "--stage", "extract", "--stage", "canonize")
    assert "Traceback" not in res.stderr
    ws = tmp_path / "ws"
    acct = ws / "vault" / "test" / "tiny" / "acct"
    [run] = runs_of(acct)
    assert verify_parts(run) == 3 * len(HOSTILE)
    lines = [orjson.loads(line) for p in sorted(run.glob("part-*.jsonl.gz"))
             for line in __import__("gzip").decompress(p.read_bytes()).splitlines()]
    assert {line["stream"] for line in lines if "stream" in line} == set(HOSTILE), "stream names are kept, as data"
    assert set(orjson.loads((run / "manifest.json").read_bytes())["streams"]) == set(HOSTILE)
    # nothing else anywhere: the workspace holds only the paths the layout names
    allowed_run_files = {"manifest.json", "tap.stderr.log"}
    for p in ws.rglob("*"):
        rel = p.relative_to(ws)
        assert ".." not in rel.parts and "escaped" not in str(rel) and "abs" not in rel.parts, rel
        if p.parent == run:
            assert p.name in allowed_run_files or p.name.startswith("part-"), rel
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*outside_before, "ws"})
    assert not (tmp_path.parent / "escaped").exists() and not Path("/abs/path").exists()
    canonical = sorted(str(p.relative_to(ws)) for p in (ws / "canonical").rglob("*") if p.is_file())
    assert all(c.startswith(("canonical/tiny/acct.", "canonical/tiny/.acct.gen/")) for c in canonical), canonical
    generation = [c for c in canonical if c.startswith("canonical/tiny/.acct.gen/g")]
    assert generation and all(c.rsplit("/", 1)[1].startswith("acct.") for c in generation), canonical


# ------------------------------------------------------------------ symlinks


def test_a_workspace_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    link = tmp_path / "ws"
    link.symlink_to(real)
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=5)])
    res = run_cli("extract", "mail", "--config", str(cfg))
    assert res.returncode == 4, res.stdout + res.stderr
    assert f"{link} is a symlink to {real}" in res.stderr
    assert f"({real})" in res.stderr, "the message names the real folder to configure instead"
    assert "Traceback" not in res.stderr
    assert list(real.iterdir()) == [], "nothing was written through the symlink"
    res = run_cli("validate", "--config", str(cfg))
    assert res.returncode == 4 and f"{link} is a symlink to {real}" in res.stdout, res.stdout
    res = run_cli("extract", "mail", "--config", str(cfg), "--workspace", str(real))
    assert res.returncode == 0, res.stderr
    res = run_cli("extract", "mail", "--config", str(cfg), "--skip-permissions")
    assert res.returncode == 0, "--skip-permissions accepts the risk, as for loose modes"


def test_a_symlink_inside_the_workspace_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=5)])
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0
    ws = tmp_path / "ws"
    public = tmp_path / "public"
    public.mkdir()
    (ws / "canonical").rmdir()
    (ws / "canonical").symlink_to(public)
    res = run_cli("run", "--config", str(cfg))
    assert res.returncode == 4, res.stdout + res.stderr
    assert f"{ws / 'canonical'} is a symlink to {public}" in res.stderr
    assert list(public.iterdir()) == []
    for quick in ([], ["--quick"]):  # validate's advice: not --fix-permissions, which leaves links alone
        res = run_cli("validate", "--config", str(cfg), *quick)
        assert res.returncode == 4, res.stdout + res.stderr
        assert "remove the symlinks" in res.stdout and "--fix-permissions`" not in res.stdout, res.stdout


def test_symlinked_ancestors_only_when_nobody_else_can_change_them(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "data").mkdir(parents=True)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "link").symlink_to(real)
    ex = demo_extractor("mail", "gmail", records=5)
    cfg = write_config(tmp_path, [ex], workspace=str(private / "link" / "data" / "ws"))
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0, "a symlink only we control"
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone may replace what is in it (no sticky bit)
    (shared / "link").symlink_to(real)
    cfg = write_config(tmp_path, [ex], workspace=str(shared / "link" / "data" / "ws"))
    res = run_cli("extract", "mail", "--config", str(cfg))
    assert res.returncode == 4, res.stdout + res.stderr
    assert "another user could change" in res.stderr
    os.chmod(shared, 0o777 | stat.S_ISVTX)  # like /tmp: only the owner may replace it
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0


# ------------------------------------------------------------------ the lock


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    ex = demo_extractor("hang", "gmail", records=50, faults={"hang_after": 5}, timeout_s=300)
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 1}})
    ws = tmp_path / "ws"
    first = subprocess.Popen([*CLI, "extract", "hang", "--config", str(cfg)], cwd=REPO, env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(e["type"] == "task_progress" for e in log_events(ws))
                 if (ws / "logs").exists() else False, what="the first run to be busy")
        (ws / "state" / "lock").unlink()  # what a person might do to "clear a stale lock"
        res = run_cli("extract", "hang", "--config", str(cfg))
        assert res.returncode == 3, res.stdout + res.stderr
        (ws / "state" / "lock").write_text("1 0 forged\n")  # and a forged holder changes nothing
        assert run_cli("extract", "hang", "--config", str(cfg)).returncode == 3
        assert len(list(account_dir(ws, ex).glob("dt=*/.run_id=*.partial"))) == 1, "one writer only"
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert first.returncode == 130
    assert lock_is_free(ws)


IGNORES_TERM = textwrap.dedent("""\
    import json, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    print(json.dumps({"type": "SCHEMA", "stream": "s", "schema": schema, "key_properties": ["id"]}))
    print(json.dumps({"type": "RECORD", "stream": "s", "record": {"id": 1}}), flush=True)
    time.sleep(3600)
""")


def test_the_killed_engines_workers_hold_the_lock_until_they_are_gone(tmp_path: Path) -> None:
    """SIGKILL the engine while its extract worker waits out the grace period of a tap that
    ignores SIGTERM: the workspace stays locked (exit 3) until that worker has finished the
    run as cancelled, then the next run works; nothing needs cleaning up."""
    script = tmp_path / "stubborn_tap.py"
    script.write_text(IGNORES_TERM)
    ex = {"name": "stub", "domain": "test", "source": "tiny", "account": "stub", "kind": "singer",
          "command": [sys.executable, str(script)], "timeout_s": 300}
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 4}})
    ws = tmp_path / "ws"
    engine = subprocess.Popen([*CLI, "extract", "stub", "--config", str(cfg)], cwd=REPO, env=clean_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = wait_for(lambda: [e for e in log_events(ws) if e["type"] == "task_progress"]
                       if (ws / "logs").exists() else None, what="the tap's first record")
    assert started
    worker = next(e["pid"] for e in log_events(ws) if e["type"] == "task_started")
    engine.kill()
    engine.wait(timeout=30)
    res = run_cli("extract", "stub", "--config", str(cfg))
    assert _alive(worker), "the orphaned worker must still be finishing (grace period 4 s)"
    assert res.returncode == 3, res.stdout + res.stderr
    assert "which has exited" in res.stderr, "the message explains who holds the lock"
    wait_for(lambda: not _alive(worker), timeout=60, what="the orphaned worker to finish")
    acct = tmp_path / "ws" / "vault" / "test" / "tiny" / "stub"
    [run] = runs_of(acct)
    assert orjson.loads((run / "manifest.json").read_bytes())["status"] == "cancelled"
    assert latest(acct) is None
    assert lock_is_free(ws)


def test_a_stale_lock_naming_a_live_process_does_not_block(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, [demo_extractor("mail", "gmail", records=5)])
    assert run_cli("extract", "mail", "--config", str(cfg)).returncode == 0
    lock = tmp_path / "ws" / "state" / "lock"
    lock.write_text(f"{os.getpid()} 0 lorchestra run\n")  # a live pid, but it holds no lock
    res = run_cli("extract", "mail", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert lock.read_text() == "", "released: an empty lock file means nobody holds it"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def test_a_running_engine_keeps_the_lock_against_every_face(tmp_path: Path) -> None:
    ex = demo_extractor("hang", "gmail", records=50, faults={"hang_after": 5}, timeout_s=300)
    cfg = write_config(tmp_path, [ex], stages={"extract": {"cancel_grace_s": 1}})
    ws = tmp_path / "ws"
    first = subprocess.Popen([*CLI, "run", "--config", str(cfg)], cwd=REPO, env=clean_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(e["type"] == "task_progress" for e in log_events(ws))
                 if (ws / "logs").exists() else False, what="the first run to be busy")
        for args, prog in ((("run", "--config", str(cfg)), "lorch_tui.cli"),
                           (("extract", "hang", "--config", str(cfg)), "lorch_tui.cli"),
                           (("--no-ui", "--config", str(cfg)), "lorch_tui.tui_main")):
            res = run_cli(*args, prog=prog)
            assert res.returncode == 3, (args, res.stdout, res.stderr)
            assert "busy" in res.stderr and "lorchestra run" in res.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert lock_is_free(ws)


def test_tampered_pointers_in_the_vault_never_lead_outside_it(tmp_path: Path) -> None:
    """LATEST and manifests are data too: a run id or part name that would climb out of the
    account folder is refused (LATEST_INVALID, MANIFEST_INVALID) and the file never opened."""
    import gzip
    import hashlib

    ex = demo_extractor("mail", "gmail", records=6)
    cfg = write_config(tmp_path, [ex], stages={"canonize": {"mappings": demo_mappings()}})
    assert run_cli("run", "--config", str(cfg), "--stage", "extract").returncode == 0
    ws = tmp_path / "ws"
    acct = account_dir(ws, ex)
    [run] = runs_of(acct)
    outside = tmp_path / "outside.jsonl.gz"
    outside.write_bytes(gzip.compress(b'{"stream": "messages", "record": {"id": "planted"}}\n'))
    m = orjson.loads((run / "manifest.json").read_bytes())
    good = dict(m["parts"][0])
    m["parts"][0].update(file=os.path.relpath(outside, run), sha256=hashlib.sha256(outside.read_bytes()).hexdigest(),
                         bytes=outside.stat().st_size)
    (run / "manifest.json").write_bytes(orjson.dumps(m))
    res = run_cli("run", "--config", str(cfg), "--stage", "canonize")
    assert res.returncode == 1
    assert last_code(ws) == "MANIFEST_INVALID"
    assert "MANIFEST_INVALID" in run_cli("verify", "--config", str(cfg)).stdout
    m["parts"][0] = good
    (run / "manifest.json").write_bytes(orjson.dumps(m))
    ptr = orjson.loads((acct / "LATEST.json").read_bytes())
    (acct / "LATEST.json").write_bytes(orjson.dumps({**ptr, "dt": f"{ptr['dt']}/../../../../..", }))
    res = run_cli("run", "--config", str(cfg), "--stage", "canonize")
    assert res.returncode == 1
    assert last_code(ws) == "LATEST_INVALID"
    assert "LATEST_INVALID" in run_cli("verify", "--config", str(cfg)).stdout
    (acct / "LATEST.json").write_bytes(orjson.dumps(ptr))
    assert run_cli("run", "--config", str(cfg), "--stage", "canonize").returncode == 0


def last_code(ws: Path) -> str | None:
    """The error code of the last finished task in the log."""
    code: str | None = [e for e in log_events(ws) if e["type"] == "task_finished"][-1].get("error_code")
    return code


def test_sqlite_temporary_btrees_never_go_to_tmp() -> None:
    """SQLite writes temporary b-trees (large sorts, DISTINCT, index builds) under /tmp unless
    ``temp_store = MEMORY``: every pragma the engine sets must say MEMORY (docs/security.md)."""
    import re

    engine = Path(__file__).resolve().parents[2] / "engine"
    found = {str(p.relative_to(engine)): re.findall(r"temp_store\s*=\s*(\w+)", p.read_text())
             for p in engine.rglob("*.py")}
    settings = {path: modes for path, modes in found.items() if modes}
    assert settings, "no connection sets temp_store"
    assert all(mode.upper() == "MEMORY" for modes in settings.values() for mode in modes), settings


CORE_TAP = textwrap.dedent("""\
    import json, resource
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    print(json.dumps({"type": "SCHEMA", "stream": "limits", "schema": schema, "key_properties": ["id"]}))
    print(json.dumps({"type": "RECORD", "stream": "limits",
                      "record": {"id": 1, "core": list(resource.getrlimit(resource.RLIMIT_CORE))}}))
""")


def test_no_process_of_a_run_may_dump_core(tmp_path: Path) -> None:
    """A crashing worker or tap left a core file with its records (PHI) in the folder cron
    started lorchestra from: every process of a run, the tap included, has RLIMIT_CORE 0
    even when the caller allows core dumps (``ulimit -c unlimited``)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.skip("core dumps are already off for this test process")
    (tmp_path / "core_tap.py").write_text(CORE_TAP)
    cfg = write_config(tmp_path, [{"name": "lim", "domain": "ops", "source": "limits", "account": "a",
                                   "kind": "singer", "command": [sys.executable, str(tmp_path / "core_tap.py")]}])
    res = subprocess.run([*CLI, "extract", "lim", "--config", str(cfg)], capture_output=True, text=True,
                         env=clean_env(), cwd=REPO, timeout=120,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (hard, hard)))
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = runs_of(account_dir(tmp_path / "ws", {"domain": "ops", "source": "limits", "account": "a"}))
    (record,) = [r for r in vault_records(run) if r.get("stream") == "limits"]
    assert record["record"]["core"] == [0, 0]


def test_the_lock_file_has_one_reader_that_survives_a_hand_edited_file(tmp_path: Path) -> None:
    """The run's wait, `status` and the dashboard read the lock file through one function:
    a pid no process can have raised OverflowError in the dashboard's reader, a FIFO blocked
    it; each is an owner or none now, and the holder text never fails."""
    from engine.store.lock import holder_of, lock_owner

    lock = tmp_path / "lock"
    lock.write_text(f"{os.getpid()} 1700000000 lorchestra run\n")
    me = lock_owner(lock)
    assert me is not None and (me.pid, me.started, me.command, me.alive) == (os.getpid(), 1700000000,
                                                                              "lorchestra run", True)
    assert holder_of(lock).startswith(f"pid {os.getpid()} (lorchestra run, since ")
    lock.write_text("9" * 30 + " " + "9" * 30 + " x\n")
    huge = lock_owner(lock)
    assert huge is not None and huge.alive and holder_of(lock) == "another process"
    lock.write_text("not-a-pid 1 x\n")
    assert lock_owner(lock) is None and holder_of(lock) == "another process"
    lock.unlink()
    os.mkfifo(lock, 0o600)
    assert lock_owner(lock) is None and holder_of(lock) == "another process"
