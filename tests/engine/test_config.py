"""The config loader, through ``engine.config.load.load`` and through the real CLI process.

Every bad config must give one clear message naming the file, the line and the key path,
exit 2 from ``lorchestra list extractors --config BAD``, and never a traceback. The good
paths cover path resolution, variable expansion and the order in which the config and the
workspace are found (DESIGN.md section 4).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import orjson
import pytest

from engine.config import DEMO_TAPS
from engine.config.load import DEMO_CONFIG, load, load_file
from engine.errors import ConfigError, ExitCode
from tests.helpers import REPO, clean_env, run_cli

UNSET_VAR = "LORCHTEST_SURELY_UNSET_VARIABLE_7F3"

# A valid config; the line numbers in the comments are what the error cases rely on.
BASE = """\
pipeline: {name: t, version: "1"}
workspace: ./ws
extractors:
  - name: alpha
    domain: email
    source: tiny
    account: a1
    kind: singer
    command: [tap-tiny]
  - name: beta
    domain: email
    source: tiny
    account: b1
    kind: singer
    command: [tap-tiny]
jobs:
  both: [alpha, beta]
stages:
  extract: {job: both, max_parallel: 2}
"""
#  1 pipeline   2 workspace   3 extractors   4-9 alpha   10-15 beta
# 16 jobs      17 both       18 stages      19 extract


def edit(old: str, new: str, *, nth: int = 1, text: str = BASE) -> str:
    """BASE with the ``nth`` occurrence of ``old`` replaced by ``new`` (which must exist)."""
    at = -1
    for _ in range(nth):
        at = text.index(old, at + 1)
    return text[:at] + new + text[at + len(old):]


@dataclass(frozen=True)
class Bad:
    """One kind of bad config and what its message must name."""

    id: str
    text: str
    line: int | None  # the line the message points at (None: no line applies)
    key: str | None  # the key path the message names
    says: str  # a fragment of the explanation (case-insensitive)


BAD: list[Bad] = [
    Bad("yaml-syntax", edit("stages:\n  extract: {job: both, max_parallel: 2}\n",
                            "stages:\n  extract: {job: both, max_parallel: 2}\n  index: a: b\n"),
        20, None, "invalid YAML"),
    Bad("yaml-unclosed-flow", edit("command: [tap-tiny]", "command: [tap-tiny, --x", nth=2),
        None, None, "invalid YAML"),
    Bad("top-level-list", "- workspace: ./ws\n- extractors: []\n", 1, "(top level)", "mapping"),
    Bad("top-level-empty", "# nothing but a comment\n", 1, "(top level)", "mapping"),
    Bad("unknown-top-key", BASE + "extractor: []\n", 20, "extractor", "is not a known key"),
    Bad("unknown-nested-key", edit("    account: b1\n", "    account: b1\n    retires: 3\n"),
        14, "extractors[1].retires", "is not a known key"),
    Bad("unknown-stage-key", edit("max_parallel: 2", "max_paralel: 2"),
        19, "stages.extract.max_paralel", "is not a known key"),
    Bad("missing-workspace", edit("workspace: ./ws\n", ""), 1, "workspace", "is required"),
    Bad("missing-extractor-name", edit("  - name: beta\n    domain", "  - domain"),
        10, "extractors[1].name", "is required"),
    Bad("wrong-type-retries", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    retries: many\n"),
        10, "extractors[0].retries", "must be a whole number, got 'many'"),
    Bad("negative-retries", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    retries: -1\n"),
        10, "extractors[0].retries", "must be at least 0, got -1"),
    Bad("absurd-retries", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    retries: 1000\n"),
        10, "extractors[0].retries", "must be at most 10, got 1000"),
    Bad("zero-timeout", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    timeout_s: 0\n", nth=2),
        16, "extractors[1].timeout_s", "must be more than 0, got 0"),
    Bad("zero-max-parallel", edit("max_parallel: 2", "max_parallel: 0"),
        19, "stages.extract.max_parallel", "must be at least 1, got 0"),
    # YAML reads true/yes/on as a boolean, and pydantic read that as 1: `timeout_s: true` killed
    # the tap after 1 s, `retries: yes` meant one retry
    Bad("bool-timeout", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    timeout_s: true\n"),
        10, "extractors[0].timeout_s", "must be a number, got true"),
    Bad("bool-retries-yes", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    retries: yes\n"),
        10, "extractors[0].retries", "must be a whole number, got true"),
    Bad("bool-max-parallel", edit("max_parallel: 2", "max_parallel: true"),
        19, "stages.extract.max_parallel", "must be a whole number, got true"),
    Bad("bool-compression-level-on", edit("max_parallel: 2", "compression_level: on"),
        19, "stages.extract.compression_level", "must be a whole number, got true"),
    Bad("bool-stale-after-false", BASE + "stale_after_hours: false\n", 20, "stale_after_hours",
        "must be a number, got false"),
    Bad("absurd-max-parallel", edit("max_parallel: 2", "max_parallel: 100000"),
        19, "stages.extract.max_parallel", "must be at most 64, got 100000"),
    Bad("wrong-type-bool", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    discover: maybe\n"),
        10, "extractors[0].discover", "must be true or false, got 'maybe'"),
    Bad("wrong-type-text", edit("account: a1", "account: [a, b]"), 7, "extractors[0].account",
        "must be text, got a list"),
    Bad("wrong-type-list", edit("command: [tap-tiny]", "command: 5"), 9, "extractors[0].command",
        "must be a list, got 5"),
    Bad("empty-on-failure", BASE + "on_failure: []\n", 20, "on_failure", "must have at least 1 item"),
    Bad("unknown-key-lists-known", edit("max_parallel: 2", "max_paralel: 2"), 19,
        "stages.extract.max_paralel", "known keys here: job, max_parallel, part_max_bytes"),
    Bad("unsafe-dotdot", edit("account: a1", "account: '..'"), 7, "extractors[0].account", "not a safe name"),
    Bad("unsafe-dot", edit("domain: email", "domain: '.'", nth=2), 11, "extractors[1].domain", "not a safe name"),
    Bad("unsafe-slash", edit("source: tiny", "source: a/b"), 6, "extractors[0].source", "not a safe name"),
    Bad("unsafe-hidden", edit("account: a1", "account: .a1"), 7, "extractors[0].account", "not a safe name"),
    Bad("unsafe-option", edit("source: tiny", "source: -tiny"), 6, "extractors[0].source", "not a safe name"),
    Bad("unsafe-nul", edit("account: a1", 'account: "a\\0b"'), 7, "extractors[0].account", "not a safe name"),
    Bad("unsafe-300-chars", edit("name: alpha", "name: " + "x" * 300).replace("[alpha, beta]", "[beta]"),
        4, "extractors[0].name", "not a safe name"),
    Bad("unsafe-job-name", edit("  both: [alpha, beta]", "  ../both: [alpha, beta]")
        .replace("job: both, ", ""), 17, "jobs", "not a safe name"),
    Bad("singer-without-command", edit("    command: [tap-tiny]\n", ""), 4, "extractors[0]",
        "kind: singer needs the key 'command'"),
    Bad("singer-empty-command", edit("command: [tap-tiny]", "command: []"), 4, "extractors[0]",
        "non-empty 'command'"),
    Bad("demo-key-on-singer", edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    demo: {tap: gmail}\n"),
        4, "extractors[0]", "'demo' does not apply to kind: singer"),
    Bad("invalid-kind", edit("kind: singer", "kind: airbyte", nth=2), 14, "extractors[1].kind",
        "must be one of: meltano, singer, demo (got 'airbyte')"),
    Bad("duplicate-extractor-name", edit("name: beta", "name: alpha").replace("[alpha, beta]", "[alpha]"),
        10, "extractors[1].name", "already used by extractors[0]"),
    Bad("same-vault-folder", edit("account: b1", "account: a1"), 13, "extractors[1].account",
        "same vault folder email/tiny/a1"),
    Bad("same-canonical-files", edit("account: b1", "account: a1", text=edit("domain: email", "domain: other", nth=2)),
        13, "extractors[1].account", "same canonical files canonical/tiny/a1.*"),
    Bad("account-named-like-rejects", edit("account: b1", "account: a1.rejects"), 13, "extractors[1].account",
        "would write the rejects file of account 'a1'"),
    Bad("reserved-source", edit("source: tiny", "source: measures"), 6, "extractors[0].source",
        "source 'measures' is the engine's own"),
    Bad("job-unknown-extractor", edit("[alpha, beta]", "[alpha, gamma]"), 17, "jobs.both[1]",
        "unknown extractor 'gamma'"),
    Bad("stage-job-unknown", edit("job: both", "job: nightly"), 19, "stages.extract.job", "unknown job 'nightly'"),
    Bad("empty-workspace", edit("workspace: ./ws", "workspace: ''"), 2, "workspace",
        "is empty: give a path"),
    Bad("empty-workspace-from-env", edit("workspace: ./ws", "workspace: ${LORCH_TEST_EMPTY:-}"), 2, "workspace",
        "is empty: give a path"),
    Bad("duplicate-mapping", BASE + "  canonize:\n    mappings:\n"
        "      - {source: tiny, stream: things, transform: a/b_v2}\n"
        "      - {source: tiny, stream: things, transform: a/b_v1}\n", 23, "stages.canonize.mappings[1]",
        "same source and stream as stages.canonize.mappings[0]"),
    Bad("undefined-variable", edit("workspace: ./ws", f"workspace: ${{{UNSET_VAR}}}/ws"), 2, "workspace",
        f"environment variable {UNSET_VAR} is not set"),
    Bad("duplicate-yaml-key", BASE + "workspace: /elsewhere\n", 20, "workspace", "duplicate key"),
    Bad("missing-file", "", None, None, "config file not found"),
]


def write_bad(tmp_path: Path, bad: Bad) -> Path:
    path = tmp_path / f"{bad.id}.yaml"
    if bad.id != "missing-file":
        path.write_text(bad.text)
    return path


# pydantic's own wording, which must never reach the user
PYDANTIC_PHRASES = ("Input should", "Extra inputs are not permitted", "Field required", "valid integer",
                    "Value error", "unable to parse", "should have at least", "[type=", "pydantic")


def check_message(text: str, path: Path, bad: Bad) -> None:
    """The message names the file, the line and the key path, once, and explains in our words."""
    assert "Traceback" not in text
    assert not [p for p in PYDANTIC_PHRASES if p.lower() in text.lower()], text
    assert str(path) in text
    assert bad.says.lower() in text.lower(), text
    # exactly one located problem: FILE:LINE occurs once
    located = re.findall(re.escape(str(path)) + r":(\d+)", text)
    if bad.line is None:
        assert len(located) <= 1, text
    else:
        assert located == [str(bad.line)], text
    if bad.key is not None:
        assert re.search(re.escape(f"{path}:{bad.line}") + r"(:\d+)?: " + re.escape(bad.key), text), text


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_config_through_load(tmp_path: Path, bad: Bad, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET_VAR, raising=False)
    monkeypatch.delenv("LORCH_WORKSPACE", raising=False)
    path = write_bad(tmp_path, bad)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.exit_code == ExitCode.USAGE
    check_message(info.value.render(), path, bad)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, CompletedProcess[str]]]:
    """`lorchestra list extractors --config BAD` for every kind, run a few at a time (it is
    the interpreter start-up that costs, so this keeps the module fast)."""
    root = tmp_path_factory.mktemp("bad-configs")

    def one(bad: Bad) -> tuple[Path, CompletedProcess[str]]:
        path = write_bad(root, bad)
        return path, run_cli("list", "extractors", "--config", str(path), cwd=root)

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(zip((b.id for b in BAD), pool.map(one, BAD), strict=True))


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_config_through_the_cli(bad: Bad, cli_runs: dict[str, tuple[Path, CompletedProcess[str]]]) -> None:
    path, res = cli_runs[bad.id]
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stdout == ""
    assert res.stderr.count("lorchestra: error:") == 1, res.stderr
    check_message(res.stderr, path, bad)


def test_every_number_of_the_config_refuses_a_boolean() -> None:
    """Every int and float field of every config model is ``Int``/``Float`` of
    :mod:`engine.config.numbers` (a boolean is refused), so a new number key cannot slip back
    to reading `true` as 1."""
    import types
    import typing

    from pydantic import BaseModel

    from engine.config import models
    from engine.config.numbers import Float, Int

    checked = 0
    for model in vars(models).values():
        if not (isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == models.__name__):
            continue
        for name, field in model.model_fields.items():
            where = f"{model.__name__}.{name}"
            members = [a for a in typing.get_args(field.annotation) if a is not type(None)] \
                if typing.get_origin(field.annotation) in (typing.Union, types.UnionType) else [field.annotation]
            for member in members:
                if member in (int, float):  # a plain `Int`: pydantic moved its validator to the field
                    wanted = Int if member is int else Float
                    assert len(members) == 1 and typing.get_args(wanted)[1] in field.metadata, where
                    checked += 1
                elif typing.get_origin(member) is typing.Annotated and typing.get_args(member)[0] in (int, float):
                    assert member in (Int, Float), where  # `Int | None`
                    checked += 1
    assert checked >= 30


def test_numbers_as_text_still_read_as_numbers(tmp_path: Path) -> None:
    """`${VAR}` expands to text: a number given that way (or quoted) is read as before, through
    `validate --quick` and `list extractors`."""
    text = edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    timeout_s: ${LORCHTEST_T}\n"
                "    retries: '2'\n").replace("max_parallel: 2", "max_parallel: '3'")
    path = tmp_path / "p.yaml"
    path.write_text(text + "stale_after_hours: ${LORCHTEST_H}\n")
    env = clean_env(LORCHTEST_T="30", LORCHTEST_H="2.5")
    res = run_cli("list", "extractors", "--config", str(path), env=env)
    assert res.returncode == 0, res.stderr
    loaded = load_file_env(path, env)
    assert loaded["timeout_s"] == 30.0 and loaded["retries"] == 2 and loaded["max_parallel"] == 3
    assert loaded["stale_after_hours"] == 2.5
    path.write_text(text.replace("${LORCHTEST_T}", "true") + "stale_after_hours: ${LORCHTEST_H}\n")
    res = run_cli("validate", "--quick", "--config", str(path), env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{path}:10: extractors[0].timeout_s: must be a number, got true" in res.stdout + res.stderr


def load_file_env(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """A few numbers of the config as the CLI's process reads them (its own environment)."""
    code = ("import sys, json; from engine.config.load import load_file; c = load_file(__import__('pathlib').Path(sys.argv[1])); "
            "print(json.dumps({'timeout_s': c.extractors[0].timeout_s, 'retries': c.extractors[0].retries, "
            "'max_parallel': c.stages.extract.max_parallel, 'stale_after_hours': c.stale_after_hours}))")
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=60, check=True).stdout
    data: dict[str, Any] = orjson.loads(out)
    return data


def test_bad_config_lists_every_problem_each_with_its_line(tmp_path: Path) -> None:
    text = edit("account: b1", "account: b1\n    retires: 3").replace("max_parallel: 2", "max_parallel: 0")
    path = tmp_path / "two.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_file(path)
    msg = info.value.render()
    assert f"{path}:14: extractors[1].retires" in msg
    assert f"{path}:20: stages.extract.max_parallel" in msg


def test_verbose_shows_the_traceback_of_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(edit("kind: singer", "kind: airbyte"))
    res = run_cli("list", "extractors", "--config", str(path), "--verbose", cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" in res.stderr and "extractors[0].kind" in res.stderr


# ---------------------------------------------------------------- good configs, in process


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def no_lorch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LORCH_CONFIG", "LORCH_WORKSPACE", "LORCH_DEMO_RECORDS"):
        monkeypatch.delenv(name, raising=False)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path, no_lorch_env: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    text = edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    config: secrets/tap.json\n")
    text = edit("kind: singer\n    command: [tap-tiny]\n",
                "kind: meltano\n    meltano: {project: ../meltano, plugin: tap-x}\n", nth=2, text=text)
    cfg_path = write(tmp_path / "etc" / "pipe.yaml", text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load(Path("..") / "etc" / "pipe.yaml")
    assert loaded.path.resolve() == cfg_path
    assert loaded.origin == "--config"
    assert loaded.workspace == tmp_path / "etc" / "ws"
    assert loaded.config.workspace == tmp_path / "etc" / "ws"
    alpha, beta = loaded.config.extractors
    assert alpha.config == tmp_path / "etc" / "secrets" / "tap.json"
    assert beta.meltano is not None and beta.meltano.project == tmp_path / "meltano"


def test_tilde_expands(tmp_path: Path, no_lorch_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    text = edit("workspace: ./ws", "workspace: ~/phi-data")
    text = edit("command: [tap-tiny]", "command: [~/bin/tap-tiny, --opt, a~b]\n    config: ~/secrets/t.json",
                text=text)
    loaded = load(write(tmp_path / "c.yaml", text))
    assert loaded.workspace == home / "phi-data"
    alpha = loaded.config.extractors[0]
    assert alpha.command == [str(home / "bin" / "tap-tiny"), "--opt", "a~b"]
    assert alpha.config == home / "secrets" / "t.json"


def test_variables_and_defaults_expand(tmp_path: Path, no_lorch_env: None,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORCHTEST_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("LORCHTEST_EMPTY", "")
    monkeypatch.delenv(UNSET_VAR, raising=False)
    text = edit("workspace: ./ws", "workspace: ${LORCHTEST_ROOT}/ws")
    text = edit("account: a1", f"account: ${{{UNSET_VAR}:-fallback}}", text=text)
    text = edit("account: b1", "account: ${LORCHTEST_EMPTY:-empty-default}", text=text)
    text = edit("command: [tap-tiny]", "command: [tap-tiny, '${LORCHTEST_ROOT}/x']", text=text)
    loaded = load(write(tmp_path / "c.yaml", text))
    assert loaded.workspace == tmp_path / "root" / "ws"
    alpha, beta = loaded.config.extractors
    assert alpha.account == "fallback"
    assert beta.account == "empty-default"
    assert alpha.command == ["tap-tiny", f"{tmp_path}/root/x"]
    monkeypatch.setenv(UNSET_VAR, "now-set")
    assert load(tmp_path / "c.yaml").config.extractors[0].account == "now-set"


def test_a_variable_holding_a_bad_value_is_reported_at_its_key(tmp_path: Path, no_lorch_env: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORCHTEST_RETRIES", "lots")
    path = write(tmp_path / "c.yaml",
                 edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    retries: ${LORCHTEST_RETRIES}\n"))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert f"{path}:10: extractors[0].retries" in info.value.render()


def test_workspace_override_order(tmp_path: Path, no_lorch_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "c.yaml", BASE)
    assert load(path).workspace == tmp_path / "ws"
    monkeypatch.setenv("LORCH_WORKSPACE", str(tmp_path / "from-env"))
    assert load(path).workspace == tmp_path / "from-env"
    assert load(path, workspace=tmp_path / "from-flag").workspace == tmp_path / "from-flag"
    monkeypatch.chdir(tmp_path)
    assert load(path, workspace="rel/ws").workspace == tmp_path / "rel" / "ws"


def test_config_search_order(tmp_path: Path, no_lorch_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load().path == DEMO_CONFIG and load().origin == "bundled demo"
    local = write(tmp_path / "config" / "pipeline.yaml", BASE)
    got = load()
    assert (got.path, got.origin) == (local, "./config/pipeline.yaml")
    assert got.workspace == tmp_path / "config" / "ws"
    env_cfg = write(tmp_path / "env.yaml", edit("name: alpha", "name: from-env").replace("[alpha, ", "[from-env, "))
    monkeypatch.setenv("LORCH_CONFIG", str(env_cfg))
    got = load()
    assert (got.path, got.origin) == (env_cfg, "$LORCH_CONFIG")
    assert got.config.extractors[0].name == "from-env"
    flag_cfg = write(tmp_path / "flag.yaml", BASE)
    assert load(flag_cfg).origin == "--config"


DEMO_NAMES = {
    "tap-gmail--acct1-personal", "tap-gmail--acct2-business1", "tap-gmail--acct3-bfarmstrong",
    "tap-msgraph-mail--ben-mensio", "tap-dataverse",
}


def test_bundled_demo_has_fifteen_extractors_over_every_demo_tap(tmp_path: Path, no_lorch_env: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    cfg = load_file(DEMO_CONFIG)
    names = [e.name for e in cfg.extractors]
    assert len(names) == 15 == len(set(names))  # twelve, plus the forms (issue 15)
    assert DEMO_NAMES <= set(names)
    assert all(e.kind == "demo" and e.demo is not None for e in cfg.extractors)
    assert {e.demo.tap for e in cfg.extractors if e.demo} == set(DEMO_TAPS)
    assert sorted(cfg.jobs["ingest-all-accounts"]) == sorted(names)
    assert cfg.stages.extract.job == "ingest-all-accounts"
    assert cfg.workspace == tmp_path / "xdg" / "lorchestra" / "demo"
    assert {e.demo.records for e in cfg.extractors if e.demo} == {200}
    monkeypatch.setenv("LORCH_DEMO_RECORDS", "7")
    assert {e.demo.records for e in load_file(DEMO_CONFIG).extractors if e.demo} == {7}


def test_pipeline_example_loads(tmp_path: Path, no_lorch_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_file(REPO / "config" / "pipeline.example.yaml")
    assert cfg.workspace == tmp_path / "home" / "phi-data"
    kinds = {e.name: e.kind for e in cfg.extractors}
    assert kinds == {"tap-gmail--acct1-personal": "meltano", "tap-dataverse--mensio": "singer"}
    assert cfg.jobs["ingest-all-accounts"] == list(kinds)


# ---------------------------------------------------------------- good configs, through the CLI


def cli_env(**extra: str) -> dict[str, str]:
    """A clean environment with a wide terminal (rich wraps long paths at 80 columns)."""
    return clean_env(COLUMNS="1000", **extra)


def names_listed(res: Any) -> list[str]:
    assert res.returncode == 0, res.stderr
    return [row["name"] for row in orjson.loads(res.stdout)]


def dry_run_header(res: Any) -> tuple[str, str]:
    """The config line and the workspace line that `run --dry-run` prints."""
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    return lines[0], lines[1]


def test_config_flag_before_and_after_the_subcommand(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", BASE)
    before = run_cli("--config", str(path), "list", "extractors", "--json", cwd=tmp_path, env=cli_env())
    after = run_cli("list", "extractors", "--json", "--config", str(path), cwd=tmp_path, env=cli_env())
    assert names_listed(before) == names_listed(after) == ["alpha", "beta"]


def test_workspace_flag_and_env_override_the_config(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", BASE)
    res = run_cli("run", "--dry-run", "--config", str(path), cwd=tmp_path, env=cli_env())
    assert dry_run_header(res) == (f"config: {path} (--config)", f"workspace: {tmp_path / 'ws'}")
    env = cli_env(LORCH_WORKSPACE=str(tmp_path / "env-ws"))
    res = run_cli("run", "--dry-run", "--config", str(path), cwd=tmp_path, env=env)
    assert dry_run_header(res)[1] == f"workspace: {tmp_path / 'env-ws'}"
    res = run_cli("--workspace", str(tmp_path / "flag-ws"), "run", "--dry-run", "--config", str(path),
                  cwd=tmp_path, env=env)
    assert dry_run_header(res)[1] == f"workspace: {tmp_path / 'flag-ws'}"
    res = run_cli("run", "--dry-run", "--config", str(path), "--workspace", "rel-ws", cwd=tmp_path, env=env)
    assert dry_run_header(res)[1] == f"workspace: {tmp_path / 'rel-ws'}"
    assert not any(p.name.endswith("ws") for p in tmp_path.iterdir()), "a dry run writes nothing"


def test_lorch_config_env_and_local_pipeline_yaml_and_bundled_demo(tmp_path: Path) -> None:
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    res = run_cli("run", "--dry-run", cwd=tmp_path, env=env)
    assert dry_run_header(res) == (f"config: {DEMO_CONFIG} (bundled demo)",
                                   f"workspace: {tmp_path / 'xdg' / 'lorchestra' / 'demo'}")
    local = write(tmp_path / "config" / "pipeline.yaml", BASE)
    res = run_cli("run", "--dry-run", cwd=tmp_path, env=env)
    assert dry_run_header(res) == (f"config: {local} (./config/pipeline.yaml)",
                                   f"workspace: {tmp_path / 'config' / 'ws'}")
    assert names_listed(run_cli("list", "extractors", "--json", cwd=tmp_path, env=env)) == ["alpha", "beta"]
    env_cfg = write(tmp_path / "env.yaml", edit("name: alpha", "name: gamma").replace("[alpha, ", "[gamma, "))
    env["LORCH_CONFIG"] = str(env_cfg)
    assert names_listed(run_cli("list", "extractors", "--json", cwd=tmp_path, env=env)) == ["gamma", "beta"]
    res = run_cli("run", "--dry-run", cwd=tmp_path, env=env)
    assert dry_run_header(res)[0] == f"config: {env_cfg} ($LORCH_CONFIG)"
    res = run_cli("run", "--dry-run", "--config", str(local), cwd=tmp_path, env=env)
    assert dry_run_header(res)[0] == f"config: {local} (--config)"
    missing = tmp_path / "nope.yaml"
    res = run_cli("list", "jobs", cwd=tmp_path, env={**env, "LORCH_CONFIG": str(missing)})
    assert res.returncode == 2 and f"config file not found: {missing}" in res.stderr


def test_a_missing_config_says_where_its_path_came_from(tmp_path: Path) -> None:
    """`LORCH_CONFIG=/nonexist.yaml lorchestra status` said "config file not found" without
    naming $LORCH_CONFIG, and its hint was to set $LORCH_CONFIG: the message names the place
    the path came from and the hint fits it."""
    missing = tmp_path / "nonexist.yaml"
    res = run_cli("status", env=clean_env(LORCH_CONFIG=str(missing)), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert f"config file not found: {missing} (from $LORCH_CONFIG)" in res.stderr, res.stderr
    hint = res.stderr.split("hint:", 1)[1]
    assert "unset LORCH_CONFIG" in hint and "set $LORCH_CONFIG" not in hint.replace("unset", "")
    res = run_cli("status", "--config", str(missing), env=clean_env(), cwd=tmp_path)
    assert res.returncode == 2 and f"config file not found: {missing} (from --config)" in res.stderr, res.stderr
    assert "LORCH_CONFIG" not in res.stderr.split("hint:", 1)[1]
    # --config wins over $LORCH_CONFIG, and the message says which one was used
    res = run_cli("status", "--config", str(missing), env=clean_env(LORCH_CONFIG=str(tmp_path / "other.yaml")),
                  cwd=tmp_path)
    assert "(from --config)" in res.stderr and "other.yaml" not in res.stderr
    res = run_cli("status", env=clean_env(LORCH_CONFIG=str(tmp_path)), cwd=tmp_path)  # a folder
    assert res.returncode == 2 and f"cannot read config file {tmp_path} (from $LORCH_CONFIG): it is a folder" \
        in res.stderr and "LORCH_CONFIG=FOLDER/pipeline.yaml" in res.stderr, res.stderr


def test_bundled_demo_through_the_cli(tmp_path: Path) -> None:
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    res = run_cli("list", "extractors", "--json", cwd=tmp_path, env=env)
    rows = orjson.loads(res.stdout)
    assert len(rows) == 15 and DEMO_NAMES <= {r["name"] for r in rows}
    assert {r["kind"] for r in rows} == {"demo"}
    jobs = {j["job"]: j for j in orjson.loads(run_cli("list", "jobs", "--json", cwd=tmp_path, env=env).stdout)}
    assert jobs["ingest-all-accounts"]["extractors"] == 15
    assert set(jobs["ingest-all-accounts"]["members"]) == {r["name"] for r in rows}
    assert not (tmp_path / "xdg").exists()


def test_the_cli_process_sees_the_environment_for_variables(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", edit("name: alpha", "name: ${LORCHTEST_NAME:-dflt}").replace("[alpha, ", "["))
    assert names_listed(run_cli("list", "extractors", "--json", "--config", str(path), cwd=tmp_path,
                                env=cli_env()))[0] == "dflt"
    assert names_listed(run_cli("list", "extractors", "--json", "--config", str(path), cwd=tmp_path,
                                env=cli_env(LORCHTEST_NAME="named")))[0] == "named"



def test_validate_tells_config_errors_in_our_words_never_pydantic_s(tmp_path: Path) -> None:
    """`lorchestra validate --config BAD`: exit 2, FILE:LINE: key: our sentence, for each problem."""
    path = tmp_path / "bad.yaml"
    path.write_text(edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    retries: many\n    retrys: 2\n")
                    .replace("max_parallel: 2", "max_parallel: 0").replace("kind: singer", "kind: airbyte", 1))
    res = run_cli("validate", "--config", str(path), cwd=tmp_path, env=clean_env(COLUMNS="400"))
    assert res.returncode == 2, (res.stdout, res.stderr)
    text = res.stdout + res.stderr
    assert f"{path}:8: extractors[0].kind: must be one of: meltano, singer, demo (got 'airbyte')" in text
    assert f"{path}:10: extractors[0].retries: must be a whole number, got 'many'" in text
    assert f"{path}:11: extractors[0].retrys: is not a known key (known keys here: name, domain," in text
    assert f"{path}:21: stages.extract.max_parallel: must be at least 1, got 0" in text
    assert not [p for p in PYDANTIC_PHRASES if p.lower() in text.lower()], text
    assert "Traceback" not in text


def test_the_reserved_source_is_the_measures_source() -> None:
    from engine.config import RESERVED_SOURCES
    from engine.measures.score import MEASURES_SOURCE

    assert MEASURES_SOURCE in RESERVED_SOURCES


def test_relative_paths_in_commands_are_the_config_folder_s(tmp_path: Path) -> None:
    """DESIGN.md: relative paths resolve against the config file's folder. `command: [./tap.py]`
    ran the current folder's tap.py (TAP_NOT_FOUND from cron's `/`); a bare program name is
    still looked up on PATH and other arguments are passed as written."""
    import stat
    import sys

    import yaml

    from tests.helpers import TINY_TAP_SOURCE
    conf = tmp_path / "conf"
    (conf / "taps").mkdir(parents=True)
    tap = conf / "taps" / "tiny.py"
    tap.write_text("#!" + sys.executable + "\n" + TINY_TAP_SOURCE)
    tap.chmod(tap.stat().st_mode | stat.S_IXUSR)
    cfg = conf / "p.yaml"
    cfg.write_text(yaml.safe_dump({
        "pipeline": {"name": "t", "version": "1"}, "workspace": "ws",
        "extractors": [{"name": "a", "domain": "d", "source": "s", "account": "a", "kind": "singer",
                        "command": ["./taps/tiny.py", "3"]},
                       {"name": "b", "domain": "d", "source": "s", "account": "b", "kind": "singer",
                        "command": [sys.executable, "../conf/taps/tiny.py", "2", "plain/arg"]},
                       {"name": "c", "domain": "d", "source": "s", "account": "c", "kind": "singer",
                        "command": ["sh", "-c", "./taps/tiny.py 1 | cat", "./a b", "./x=1", "-c", "./y"]}]}))
    loaded = load(cfg)
    a, b, c = loaded.config.extractors
    assert a.command == [f"{conf}/./taps/tiny.py", "3"]
    assert b.command == [sys.executable, f"{conf}/../conf/taps/tiny.py", "2", "plain/arg"]
    assert c.command == ["sh", "-c", "./taps/tiny.py 1 | cat", "./a b", "./x=1", "-c", "./y"]  # as written
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_cli("run", "--stage", "extract", "--account", "a", "--account", "b", "--config", str(cfg),
                  cwd=elsewhere)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "extract:a success: 3 records" in res.stdout and "extract:b success: 2 records" in res.stdout


def test_a_bad_env_value_is_never_echoed(tmp_path: Path, no_lorch_env: None) -> None:
    """`env: SEKRET-...` (a string instead of a map) printed the token in the config error."""
    text = edit("    command: [tap-tiny]\n", "    command: [tap-tiny]\n    env: SEKRET-STR-789\n")
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path / "c.yaml", text))
    said = info.value.render()
    assert "env: must be a mapping of keys, got text" in said and "SEKRET" not in said
