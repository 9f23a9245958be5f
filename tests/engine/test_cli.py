"""The ``lorchestra`` command line, as a real process: version, help, list, dry runs and
usage errors (exit 2 with a hint, never a traceback, never a write)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from engine import __version__
from engine.config.load import DEMO_CONFIG
from engine.run.plan import IMPLEMENTED_STAGES, RUN_STAGES
from tests.helpers import clean_env, run_cli

DEMO_NAMES = [
    "tap-gmail--acct1-personal", "tap-gmail--acct2-business1", "tap-gmail--acct3-bfarmstrong",
    "tap-msgraph-mail--ben-mensio", "tap-msgraph-mail--frontdesk-mensio", "tap-msgraph-mail--billing-mensio",
    "tap-dataverse", "tap-dataverse--farmstrong", "tap-sheets--intake-log", "tap-sheets--billing-tracker",
    "tap-quickbooks--mensio", "tap-quickbooks--farmstrong-llc", "tap-forms--outcomes",
    "tap-formsheets--first-visit", "tap-formsheets--follow-up",
]


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty cwd (so the bundled demo is found) and an env whose XDG data dir is in tmp."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd, clean_env(COLUMNS="1000", XDG_DATA_HOME=str(tmp_path / "xdg"))


def cli(demo: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    cwd, env = demo
    res = run_cli(*args, cwd=cwd, env=env)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def nothing_written(demo: tuple[Path, dict[str, str]]) -> bool:
    cwd, env = demo
    return list(cwd.iterdir()) == [] and not Path(env["XDG_DATA_HOME"]).exists()


def test_version(demo: tuple[Path, dict[str, str]]) -> None:
    res = cli(demo, "--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"lorchestra {__version__}"


def test_top_level_help_lists_commands_and_exit_codes(demo: tuple[Path, dict[str, str]]) -> None:
    res = cli(demo, "--help")
    assert res.returncode == 0
    for word in ("extract", "run", "list", "--config", "--workspace", "--verbose", "--version"):
        assert word in res.stdout
    for code in ("0 ok", "1 a task failed", "2 usage", "3 workspace busy", "4 permission", "130 interrupted"):
        assert code in " ".join(res.stdout.split())


@pytest.mark.parametrize(("command", "options"), [
    ("extract", ["NAME", "--config", "--workspace", "--verbose", "--skip-permissions", "--json", "--wait"]),
    ("run", ["--stage", "--account", "--job", "--dry-run", "--config", "--workspace", "--verbose",
             "--skip-permissions", "--json", "--wait"]),
    ("list", ["extractors", "jobs", "--json", "--config", "--workspace"]),
])
def test_command_help(demo: tuple[Path, dict[str, str]], command: str, options: list[str]) -> None:
    res = cli(demo, command, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"usage: lorchestra {command}")
    for option in options:
        assert option in res.stdout, option


def test_list_extractors_table_and_json(demo: tuple[Path, dict[str, str]]) -> None:
    table = cli(demo, "list", "extractors")
    assert table.returncode == 0, table.stderr
    for name in DEMO_NAMES:
        assert name in table.stdout
    for header in ("name", "kind", "domain", "source", "account", "command"):
        assert header in table.stdout.splitlines()[1]
    res = cli(demo, "list", "extractors", "--json")
    assert res.returncode == 0
    rows = orjson.loads(res.stdout)
    assert [r["name"] for r in rows] == DEMO_NAMES
    assert all(set(r) == {"name", "kind", "domain", "source", "account", "command"} for r in rows)
    gmail = rows[0]
    assert (gmail["domain"], gmail["source"], gmail["account"], gmail["kind"]) == (
        "email", "gmail", "acct1-personal", "demo")
    assert "gmail" in gmail["command"]
    assert nothing_written(demo)


def test_list_jobs_table_and_json(demo: tuple[Path, dict[str, str]]) -> None:
    table = cli(demo, "list", "jobs")
    assert table.returncode == 0, table.stderr
    assert "ingest-all-accounts" in table.stdout and "ingest-mail" in table.stdout
    rows = {r["job"]: r for r in orjson.loads(cli(demo, "list", "jobs", "--json").stdout)}
    assert rows["ingest-all-accounts"]["extractors"] == 15
    assert rows["ingest-all-accounts"]["members"] == DEMO_NAMES  # typed JSON: a list, a bool
    assert rows["ingest-all-accounts"]["default"] is True and rows["ingest-all-accounts"]["kinds"] == {"demo": 15}
    assert rows["ingest-mail"]["extractors"] == 6 and rows["ingest-mail"]["default"] is False
    # each member's kind and command, as `list extractors` shows them (issue 7)
    extractors = {e["name"]: e for e in orjson.loads(cli(demo, "list", "extractors", "--json").stdout)}
    commands = rows["ingest-mail"]["commands"]
    assert list(commands) == rows["ingest-mail"]["members"]
    assert all(c == {"kind": extractors[n]["kind"], "command": extractors[n]["command"]} for n, c in commands.items())
    maps = orjson.loads(cli(demo, "list", "mappings", "--json").stdout)
    assert maps and all(m["found"] is True for m in maps)
    assert nothing_written(demo)


def test_dry_run_prints_the_plan_and_writes_nothing(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    res = cli(demo, "run", "--dry-run", "--workspace", str(ws))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"config: {DEMO_CONFIG} (bundled demo)"
    assert lines[1] == f"workspace: {ws}"
    assert lines[2] == (f"plan: {len(DEMO_NAMES) * len(IMPLEMENTED_STAGES) + 1} task(s), stages "
                        f"{', '.join(RUN_STAGES)}")
    chains = [line.strip() for line in lines[3:-1]]
    assert chains == [f"{n}: {' -> '.join(IMPLEMENTED_STAGES)}" for n in DEMO_NAMES]
    assert lines[-1].strip().startswith("then project (clients)")
    assert not ws.exists()
    assert nothing_written(demo)
    # the config's own workspace (under XDG_DATA_HOME) is not created either
    res = cli(demo, "run", "--dry-run")
    assert res.returncode == 0
    assert res.stdout.splitlines()[1] == f"workspace: {demo[1]['XDG_DATA_HOME']}/lorchestra/demo"
    assert nothing_written(demo)


def test_dry_run_selection(demo: tuple[Path, dict[str, str]]) -> None:
    def chains(*args: str) -> list[str]:
        res = cli(demo, "run", "--dry-run", "--stage", "extract", *args)
        assert res.returncode == 0, res.stderr
        return [line.split(":")[0].strip() for line in res.stdout.splitlines()[3:]]

    assert chains("--account", "tap-gmail--*") == DEMO_NAMES[:3]
    assert chains("--account", "mensio") == ["tap-dataverse", "tap-quickbooks--mensio"]
    assert chains("--account", "tap-dataverse", "--account", "*intake*") == ["tap-dataverse",
                                                                             "tap-sheets--intake-log"]
    assert chains("--job", "ingest-mail") == DEMO_NAMES[:6]
    assert nothing_written(demo)


def test_extract_unknown_name_exits_2_with_a_hint(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    res = cli(demo, "extract", "NO_SUCH", "--workspace", str(tmp_path / "ws"))
    assert res.returncode == 2
    assert res.stdout == ""
    assert "no extractor named 'NO_SUCH'" in res.stderr and str(DEMO_CONFIG) in res.stderr
    assert "hint:" in res.stderr and "tap-gmail--acct1-personal" in res.stderr
    assert not (tmp_path / "ws").exists()
    assert nothing_written(demo)


def test_run_account_matching_nothing_exits_2(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    res = cli(demo, "run", "--account", "nomatch*", "--workspace", str(tmp_path / "ws"))
    assert res.returncode == 2
    assert "--account 'nomatch*' matches no extractor" in res.stderr
    assert "hint:" in res.stderr and "lorchestra list extractors" in res.stderr
    assert not (tmp_path / "ws").exists()


def test_run_unknown_job_exits_2(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    res = cli(demo, "run", "--job", "nightly", "--workspace", str(tmp_path / "ws"))
    assert res.returncode == 2
    assert "unknown job 'nightly'" in res.stderr and "ingest-all-accounts" in res.stderr
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("args", [
    (), ("frobnicate",), ("list", "everything"), ("extract",), ("run", "--stage", "transmogrify"),
])
def test_usage_errors_exit_2(demo: tuple[Path, dict[str, str]], args: tuple[str, ...]) -> None:
    res = cli(demo, *args)
    assert res.returncode == 2
    assert "usage: lorchestra" in res.stderr
    assert nothing_written(demo)


@pytest.mark.parametrize("command", [("run",), ("run", "--stage", "extract"),
                                     ("extract", "tap-gmail--acct1-personal")])
def test_headless_run_refuses_the_bundled_demo_without_a_terminal(
        demo: tuple[Path, dict[str, str]], tmp_path: Path, command: tuple[str, ...]) -> None:
    """Cron without `cd` finds only the bundled demo: refused (exit 2), nothing written."""
    ws = tmp_path / "ws"
    res = cli(demo, *command, "--workspace", str(ws))
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert "bundled demo" in res.stderr and str(DEMO_CONFIG) in res.stderr
    assert "--config" in res.stderr and "--demo" in res.stderr and "hint:" in res.stderr
    assert not ws.exists()
    assert nothing_written(demo)


def test_headless_run_of_the_demo_on_purpose(demo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    """`--demo` runs the bundled demo on purpose; so does naming it with --config."""
    cwd, env = demo
    small = (cwd, {**env, "LORCH_DEMO_RECORDS": "5"})
    for how in (["--demo"], ["--config", str(DEMO_CONFIG)]):
        ws = tmp_path / f"ws{len(how)}"
        res = cli(small, "run", *how, "--stage", "extract", "--account", "tap-gmail--acct1-personal",
                  "--workspace", str(ws))
        assert res.returncode == 0, res.stderr
        origin = "bundled demo" if how == ["--demo"] else "--config"
        assert res.stdout.splitlines()[0] == f"config: {DEMO_CONFIG} ({origin}) · workspace: {ws}"
        assert "extract:tap-gmail--acct1-personal success: 5 records" in res.stdout
    res = cli(small, "extract", "tap-gmail--acct1-personal", "--demo", "--workspace", str(tmp_path / "ws9"))
    assert res.returncode == 0, res.stderr
    assert "extract:tap-gmail--acct1-personal success: 5 records" in res.stdout
