"""The demo's questionnaires end to end: forms taps -> form_response -> measurements -> charts.

One module-scoped `lorchestra run` (real subprocesses) over the demo's clinical system of
record plus its three forms extractors (the Forms API and both linked sheets), 30 records
each, about 10 s. Checked against the taps' ground truth: every measurement's client is the
person who answered; the linked sheets' copies are not scored twice; the measurements are in
`query --kind measurement`, the charts and `clients show --measures`; a rerun changes no byte.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml

from engine.clients import tables
from engine.demo_taps import forms
from engine.demo_taps.spec import TapContext
from engine.demo_taps.truth import truth
from tests.helpers import REPO, clean_env, copy_workspace, demo_subset_config, run_cli

RECORDS = 30
KEEP = ("tap-dataverse", "tap-forms--outcomes", "tap-formsheets--first-visit",
        "tap-formsheets--follow-up")


def env() -> dict[str, str]:
    return clean_env(LORCH_DEMO_RECORDS=str(RECORDS), COLUMNS="300")


def cli(ws: Path, cfg: Path, *args: str) -> Any:
    return run_cli(*args, "--workspace", str(ws), "--config", str(cfg), env=env(), timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("measures")
    path = demo_subset_config(tmp, KEEP)
    ws = tmp / "ws"
    res = cli(ws, path, "run")
    assert res.returncode == 0, res.stdout + res.stderr
    return ws, path


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def measurements(ws: Path) -> list[dict[str, Any]]:
    return jsonl(ws / "canonical/measures/scored.jsonl")


def project_events(ws: Path) -> list[dict[str, Any]]:
    events = [e for p in sorted((ws / "logs").glob("pipeline-*.log")) for e in jsonl(p)]
    return [e for e in events if e.get("stage") == "project"]


def test_measurements_belong_to_the_person_who_answered(demo: tuple[Path, Path]) -> None:
    ws, _cfg = demo
    got = measurements(ws)
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    contact_person = {t.source_id: next(iter(t.persons)) for t in truth("dataverse", "mensio", 7, RECORDS)
                      if t.kind == "contact"}
    person_of_client = {cid: contact_person[e] for cid, e in con.execute(
        "SELECT client_id, entity_id FROM clients")}
    answered = {t.source_id: t.persons for t in truth("forms", "outcomes", 7, RECORDS)}
    validator = jsonschema_rs.Draft202012Validator(
        orjson.loads((REPO / "config/schemas/measurement.v1.json").read_bytes()))
    for m in got:
        validator.validate(m)
    linked = [m for m in got if "client_id" in m]
    assert len(got) >= RECORDS and len(linked) >= len(got) * 2 // 3
    for m in linked:
        response = m["source_id"].split("/")[2]
        assert person_of_client[m["client_id"]] in answered[response]
        assert answered[response][person_of_client[m["client_id"]]] == "key"
    # Scored once, from the Forms API; the linked sheets' copies are duplicates.
    assert {m["source_id"].split("/")[0] for m in got} == {"forms"}
    rejects = jsonl(ws / "canonical/measures/scored.rejects.jsonl")
    assert {r["reason"] for r in rejects} <= {"UNKNOWN_ANSWER", "TOO_MANY_MISSING"}
    assert oct((ws / "canonical/measures/scored.rejects.jsonl").stat().st_mode & 0o777) == "0o600"
    # The sheets' copies are duplicates of a measurement, listed apart, never "not scored".
    duplicates = jsonl(ws / "canonical/measures/scored.duplicates.jsonl")
    assert oct((ws / "canonical/measures/scored.duplicates.jsonl").stat().st_mode & 0o777) == "0o600"
    kept = {m["source_id"]: m for m in got}
    assert len(duplicates) >= RECORDS // 2
    for d in duplicates:
        assert d["reason"] == "DUPLICATE_RESPONSE" and not d["response"].startswith("forms/")
        assert kept[d["duplicate_of"]]["measure"] == d["measure"]
    # The demo's answers, re-derived, give the same totals.
    responses = forms.Responses(TapContext("forms", "outcomes", 7, RECORDS))
    by_id = {responses.get(i).response_id: responses.get(i) for i in range(RECORDS)}
    # A real reject: the demo's answer that names no option is in the rejects file, and its
    # sheet copy too (not scored, so not a duplicate of anything).
    unknown = {rid for rid, r in by_id.items() if "Sometimes" in r.answers}
    assert unknown, "the demo's responses carry an answer no option names"
    refused = {r["response"] for r in rejects if r["reason"] == "UNKNOWN_ANSWER"}
    assert {f"forms/outcomes/{rid}" for rid in unknown} <= refused
    assert any(not ref.startswith("forms/") for ref in refused)
    for m in got:
        r = by_id[m["response_id"]]
        titles = forms.PHQ9 if m["measure"] == "phq9" else forms.GAD7
        answers = dict(zip((t for _q, t in r.form.questions), r.answers, strict=True))
        values = [forms.LABELS.index(a) if a in forms.LABELS else int(a) if a is not None else None
                  for a in (answers[t] for t in titles)]
        assert m["items"] == {f"{m['measure']}_{n}": v for n, v in enumerate(values, 1)}
        if None not in values:
            assert m["value"] == sum(v for v in values if v is not None)
    counts = tables.counts(con)
    assert counts is not None and counts["measures_scored"] == len(got)
    assert counts["measures_not_scored"] == len(rejects)
    assert counts["measures_duplicates"] == len(duplicates)
    con.close()


def test_the_warning_counts_real_rejects_and_duplicates_apart(demo: tuple[Path, Path]) -> None:
    ws, _cfg = demo
    rejects = jsonl(ws / "canonical/measures/scored.rejects.jsonl")
    duplicates = jsonl(ws / "canonical/measures/scored.duplicates.jsonl")
    events = project_events(ws)
    warned = [e for e in events if e.get("code") == "MEASURES_NOT_SCORED"]
    finished = [e for e in events if e.get("type") == "task_finished"]
    assert finished and finished[0]["duplicates"] == len(duplicates) > 0
    assert finished[0]["rejects"] == len(rejects) > 0
    assert [w["count"] for w in warned] == [len(rejects)]
    assert warned[0]["detail_path"] == str(ws / "canonical/measures/scored.rejects.jsonl")


def test_a_positive_item_9_of_a_response_linked_to_no_one_is_warned(demo: tuple[Path, Path]) -> None:
    """The family's shared address links its members' questionnaires to no one: a positive
    item 9 among them was in no chart and nothing said so."""
    ws, _cfg = demo
    unlinked = [m for m in measurements(ws) if "client_id" not in m and "phq9_9_positive" in m["flags"]]
    warned = [e["count"] for e in project_events(ws) if e.get("code") == "MEASURES_CRITICAL_UNLINKED"]
    rejected = [r for r in jsonl(ws / "canonical/measures/scored.rejects.jsonl")
                if "phq9_9_positive" in (r.get("flags") or []) and r["reason"] != "COPIES_DISAGREE"]
    assert unlinked, "the demo has such a response (the shared family address)"
    assert not rejected  # the demo's unscorable responses answer item 9 with nothing positive
    assert warned == [len(unlinked)]


def test_query_and_charts_show_the_measures(demo: tuple[Path, Path]) -> None:
    ws, cfg = demo
    got = measurements(ws)
    res = cli(ws, cfg, "query", "--kind", "measurement", "--json", "--limit", "0")
    assert res.returncode == 0, res.stderr
    docs = [orjson.loads(x) for x in res.stdout.splitlines()]
    assert sorted(d["source_id"] for d in docs) == sorted(m["source_id"] for m in got)
    assert {"measure", "measure_version", "code", "value", "band", "items", "flags", "effective_at",
            "response_id", "binding"} <= set(docs[0])
    assert "more documents match" not in res.stderr
    cut = cli(ws, cfg, "query", "--kind", "measurement", "--json", "--limit", "3")
    assert cut.returncode == 0, cut.stderr
    assert len(cut.stdout.splitlines()) == 3 < len(docs)
    # a script reading the JSON lines is told on stderr that they are not all (the warning's
    # way to find unlinked critical items must not lose the oldest silently)
    assert "more documents match than the 3 printed" in cut.stderr and "--limit 0" in cut.stderr
    ranked = cli(ws, cfg, "query", "--kind", "measurement", "--text", "phq9", "--words-only", "--json", "--limit", "1")
    assert ranked.returncode == 0, ranked.stderr
    assert len(ranked.stdout.splitlines()) == 1 and "more documents match than the 1 printed" in ranked.stderr
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    folder = dict(con.execute("SELECT client_id, folder FROM clients"))
    con.close()
    charts = ws / "clients"
    assert all((charts / f / "measures.md").is_file() for f in folder.values())
    cid = max({m["client_id"] for m in got if "client_id" in m},
              key=lambda c: sum(1 for m in got if m.get("client_id") == c))
    mine = sorted((m for m in got if m.get("client_id") == cid and m["measure"] == "phq9"),
                  key=lambda m: m["effective_at"])
    text = (charts / folder[cid] / "measures.md").read_text()
    assert "## Patient Health Questionnaire-9 (phq9 v1, LOINC 44261-6)" in text
    for m in mine:
        assert f"| {m['effective_at'][:10]} | {m['value']} | {m['band']} |" in text
    shown = cli(ws, cfg, "clients", "show", cid, "--measures", "--json")
    assert shown.returncode == 0, shown.stderr
    (out,) = [orjson.loads(x) for x in shown.stdout.splitlines()]
    assert sorted(m["source_id"] for m in out["measurements"]) == sorted(
        m["source_id"] for m in got if m.get("client_id") == cid)
    table = cli(ws, cfg, "clients", "show", cid, "--measures")
    assert "phq9 v1 (44261-6)" in table.stdout and "change from previous" in table.stdout


def test_clients_show_measures_gives_the_days_in_the_practice_s_zone(demo: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    """`clients show --measures` printed UTC days while the chart was in `clients.timezone`:
    the same questionnaire on two days. Now both use the zone (Kiritimati, UTC+14: most
    answers move to the next day)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    ws, cfg = demo
    zone = "Pacific/Kiritimati"
    data = yaml.safe_load(cfg.read_text())
    data.setdefault("clients", {})["timezone"] = zone
    zoned = tmp_path / "zoned.yaml"
    zoned.write_text(yaml.safe_dump(data))
    got = [m for m in measurements(ws) if m.get("client_id")]
    cid = got[0]["client_id"]
    table = cli(ws, zoned, "clients", "show", cid, "--measures")
    assert table.returncode == 0, table.stderr
    assert f"Dates are the day ({zone}) each questionnaire was answered;" in table.stdout
    moved = 0
    for m in got:
        if m["client_id"] != cid:
            continue
        at = m["effective_at"]
        day = at[:10] if at.endswith("T00:00:00Z") else datetime.fromisoformat(
            at.replace("Z", "+00:00")).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d")
        moved += day != at[:10]
        assert f"│ {day} │ {m['value']}" in table.stdout, (day, table.stdout)
    assert moved, "no answer changed day: the test would not tell the zones apart"


def test_a_response_that_could_not_be_scored_is_listed_in_the_chart_of_who_answered(
        demo: tuple[Path, Path], tmp_path: Path) -> None:
    """A questionnaire that cannot be scored (an answer not among the options) vanished from
    the chart: only the rejects file named it. The demo's come from a family's shared address
    (a conflict, so no one's); once a `link:` settles one, the client's measures.md lists it
    under "Not scored", with the measure, the reason and the item, once for both copies."""
    ws0, cfg0 = demo
    ws = copy_workspace(ws0, tmp_path)
    reject = next(r for r in jsonl(ws / "canonical/measures/scored.rejects.jsonl")
                  if r.get("measure") and r["response"].startswith("forms/"))
    source, account, entity = reject["response"].split("/", 2)
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    cid, folder = con.execute("SELECT client_id, folder FROM clients ORDER BY client_id").fetchone()
    con.close()
    assert "## Not scored" not in (ws / "clients" / folder / "measures.md").read_text()
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({"link": [{"document": f"{source}:{account}:form_response:{entity}",
                                                   "client": cid}]}))
    overrides.chmod(0o600)
    conf = yaml.safe_load(cfg0.read_text())
    conf["clients"]["overrides"] = str(overrides)
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump(conf))
    res = cli(ws, cfg, "run", "--stage", "project")
    assert res.returncode == 0, res.stdout + res.stderr
    section = (ws / "clients" / folder / "measures.md").read_text().split("## Not scored", 1)[1]
    rows = [x for x in section.splitlines() if x.startswith("| 2")]
    assert len(rows) == 1, section
    assert f"| {reject['measure']} | " in rows[0] and f"({reject['reason']}) | {reject['item']} |" in rows[0]
    assert reject["response"] in rows[0]
    # its linked sheet's copy linked to another client: the copies disagree, no chart lists it
    copy = next(r for r in jsonl(ws / "canonical/measures/scored.rejects.jsonl")
                if r.get("measure") == reject["measure"] and r["response"].startswith("sheets/"))
    con = sqlite3.connect(ws / "vector-store" / "index.sqlite")
    other, other_folder = con.execute("SELECT client_id, folder FROM clients WHERE client_id != ? "
                                      "ORDER BY client_id", (cid,)).fetchone()
    con.close()
    c_source, c_account, c_entity = copy["response"].split("/", 2)
    links = [{"document": f"{source}:{account}:form_response:{entity}", "client": cid},
             {"document": f"{c_source}:{c_account}:form_response:{c_entity}", "client": other}]
    overrides.write_text(yaml.safe_dump({"link": links}))
    res = cli(ws, cfg, "run", "--stage", "project")
    assert res.returncode == 0, res.stdout + res.stderr
    for f in (folder, other_folder):
        text = (ws / "clients" / f / "measures.md").read_text()
        assert reject["response"] not in text and copy["response"] not in text, text


def test_events_and_log_carry_no_answers(demo: tuple[Path, Path]) -> None:
    ws, _cfg = demo
    text = b"".join(p.read_bytes() for p in (ws / "logs").iterdir() if p.is_file())
    assert b"MEASURES_NOT_SCORED" in text
    for m in measurements(ws)[:5]:
        assert m["response_id"].encode() not in text
    assert b"@example" not in text and b"Nearly every day" not in text


def test_rerun_changes_nothing(demo: tuple[Path, Path], tmp_path: Path) -> None:
    ws, cfg = demo

    def snap() -> dict[str, bytes]:
        out = {str(p.relative_to(ws)): p.read_bytes() for p in (ws / "canonical/measures").iterdir()
               if not p.name.startswith(".")}  # the plain names (the generations behind them: below)
        out["generation"] = (ws / "canonical/measures/.scored.gen/CURRENT").read_bytes()
        out.update({str(p.relative_to(ws)): p.read_bytes() for p in (ws / "clients").rglob("measures.md")})
        return out
    before = snap()
    res = cli(ws, cfg, "run", "--stage", "project", "--force")
    assert res.returncode == 0, res.stdout + res.stderr
    assert snap() == before


def test_a_skipped_projection_says_its_warnings_again(demo: tuple[Path, Path], tmp_path: Path) -> None:
    """A nightly run with nothing new skips the projection, and said none of them: the
    positive item 9 in no chart, the unscored responses, the open conflicts (the docs say
    "every time until each is linked"); its task_finished said 0 rejects."""
    import shutil

    ws, cfg = demo
    before = {e.get("code"): e["count"] for e in project_events(ws) if e.get("type") == "task_warning"}
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy, symlinks=True)
    res = cli(copy, cfg, "run", "--stage", "project")
    assert res.returncode == 0 and "project:clients skipped" in res.stdout, res.stdout + res.stderr
    events = [e for e in project_events(copy) if e not in project_events(ws)]
    again = {e["code"]: e["count"] for e in events if e.get("type") == "task_warning"}
    for code in ("MEASURES_CRITICAL_UNLINKED", "MEASURES_NOT_SCORED", "CLIENT_CONFLICTS", "OVERRIDE_UNUSED",
                 "OVERRIDE_STALE"):
        assert again.get(code) == before.get(code), (code, again, before)
    assert "MEASURES_CRITICAL_UNLINKED" in again
    [not_scored] = [e for e in events if e.get("code") == "MEASURES_NOT_SCORED"]
    assert not_scored["detail_path"] == str(copy / "canonical/measures/scored.rejects.jsonl")
    [done] = [e for e in events if e.get("type") == "task_finished"]
    assert done["status"] == "skipped" and done["rejects"] == before["MEASURES_NOT_SCORED"]
