"""Chart folder names fit the file system in bytes, and source text stays on its Markdown line.

A name long in multi-byte characters (70 emoji: 280 bytes) once made a folder name past the
255-byte limit of one name and failed the whole project stage; a line break in a name broke
the heading of ``client.md`` and let a record start Markdown lines of its own. Here: the byte
cut (whole characters only, names that fitted unchanged), every Markdown line a name or other
source text reaches, and one real project run over a singer tap with such names.
"""

from __future__ import annotations

import errno
import os
import random
import re
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from engine.clients import charts, folders, markdown
from engine.clients.model import Card, Client, DocFacts, DocRef, Link
from tests.helpers import run_cli

EMOJI70 = "\U0001F600" * 70
DERIVED_MAX = 255 - 8
"""``.aside-<folder>``, the longest name folders.py derives from a chart folder, with a margin."""


def old_safe_name(text: str) -> str:
    """safe_name as it was before the byte limit (the names existing workspaces hold)."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    text = re.sub(r"\s+", " ", re.sub(r'[\x00-\x1f\x7f<>:"/\\|?*]', "-", text)).strip(" .")
    return text[:80].rstrip(" .") or "Unnamed"


def folder_of(name: str, cid: str = "0123456789abcdef") -> str:
    c = Client(cid, DocRef("ehr", "main", "contact", "p1"), Card(name, None, None, None))
    charts.assign_folders({cid: c})
    return c.folder


def assert_good_folder(folder: str) -> None:
    raw = folder.encode()
    assert len(raw) <= charts.MAX_FOLDER_BYTES == 240
    assert len((folders.ASIDE + folder).encode()) <= DERIVED_MAX
    assert raw.decode() == folder and unicodedata.is_normalized("NFC", folder)
    assert charts.is_chart_folder(folder)
    assert not [c for c in folder if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


# --- the byte limit ---------------------------------------------------------------------------


def test_seventy_emoji_make_a_folder_within_the_byte_limit(tmp_path: Path) -> None:
    folder = folder_of(EMOJI70)
    assert_good_folder(folder)
    assert folder == "\U0001F600" * 57 + " (01234567)"  # 228 + 11 bytes, whole emoji only
    assert len(old_safe_name(EMOJI70).encode()) + len(" (01234567)") == 291  # what failed
    root = tmp_path / "clients"
    root.mkdir(mode=0o700)
    assert folders.replace_folder(root, folder, {"client.md": b"x"})
    assert (root / folder / "client.md").read_bytes() == b"x"
    os.mkdir(root / (folders.ASIDE + folder))  # the derived name fits too
    if os.pathconf(root, "PC_NAME_MAX") <= 255:  # the old name is really refused here
        with pytest.raises(OSError) as err:
            os.mkdir(root / f"{old_safe_name(EMOJI70)} (01234567)")
        assert err.value.errno == errno.ENAMETOOLONG


@pytest.mark.parametrize("name, kept", [
    ("e\u0301" * 200, None),  # NFC makes é: 80 of them fit (160 bytes)
    ("\u0915\u094d\u0937" * 40, None),  # Devanagari: 80 characters, 240 bytes, cut by bytes
    ("\U0001F44D\U0001F3FD" * 60, "\U0001F44D\U0001F3FD"),  # thumbs up + skin tone
    ("\U0001F1EB\U0001F1F7" * 60, "\U0001F1EB\U0001F1F7"),  # flags: pairs of regional indicators
    ("\u30ab" * 80, "\u30ab"),  # 3-byte CJK: 80 characters are 240 bytes, past the limit
    ("\U00020000" * 80, "\U00020000"),  # 4-byte CJK extension B
    ("a\u0308\u0301" * 100, None),  # ä + an acute that does not compose
], ids=["nfc", "devanagari", "skin-tone", "flags", "cjk", "cjk-ext-b", "two-marks"])
def test_the_cut_falls_between_whole_characters(name: str, kept: str | None) -> None:
    folder = folder_of(name)
    assert_good_folder(folder)
    part = folder[:-len(" (01234567)")]
    old = old_safe_name(name)
    assert old.startswith(part), "the cut only shortens the name the old rule gave"
    if len(f"{old} (01234567)".encode()) <= charts.MAX_FOLDER_BYTES:
        assert part == old
    else:
        assert len(folder.encode()) > charts.MAX_FOLDER_BYTES - 12, "cut by no more than one cluster"
    rest = old[len(part):]
    assert not rest or not (unicodedata.category(rest[0]).startswith("M") or 0x1F3FB <= ord(rest[0]) <= 0x1F3FF)
    if kept is not None:
        assert len(part) % len(kept) == 0 and part == kept * (len(part) // len(kept))


def test_a_base_with_more_marks_than_fit_keeps_its_base() -> None:
    name = "a" + "\U0001D167" * 100  # a combining mark of 4 bytes: one cluster of 317 bytes
    folder = folder_of(name)
    assert_good_folder(folder)
    assert folder == name[:58] + " (01234567)"


def test_lone_surrogates_and_controls_never_reach_a_folder_name() -> None:
    for name in ("Doe\ud83d, Jane", "\udcff" * 300, "Line\nBreak\r\t\x85\u2028\u2029\x7f\u202eRTL"):
        assert_good_folder(folder_of(name))
    assert folder_of("Line\nBreak\u2028x") == "Line Break x (01234567)"


def test_names_that_fit_keep_exactly_their_old_folder_name() -> None:
    """Existing workspaces see no folder renamed: only names past the limit change."""
    alphabet = ("abcXYZ ,.-'/\n\t|?é\u0301\u0308ßøØłİı\u30ab\u30c8\u5f20\u674e\uac00\u0915\u094d"
                "\u05d0\u0627\u202e\u200d\U0001F600\U0001F44D\U0001F3FD\U0001F1EB\U00020000")
    rng = random.Random(1970)
    samples = ["Doe, Jane", "Zoë", "x" * 500, "\u30ab\u30c8\u30a6, \u30cf\u30ca", "\u5f20" * 70, EMOJI70]
    wide = alphabet[alphabet.index("\u30ab"):]  # mostly 3 and 4 bytes a character
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 130))) for _ in range(2000)]
    samples += ["".join(rng.choice(wide) for _ in range(rng.randint(50, 100))) for _ in range(1000)]
    changed = 0
    for name in samples:
        for width in (8, 10, 16):
            cid = "0123456789abcdef"
            old = f"{old_safe_name(name)} ({cid[:width]})"
            new = charts.safe_name(name, charts.MAX_FOLDER_BYTES - len(f" ({cid[:width]})")) + f" ({cid[:width]})"
            assert_good_folder(new)
            if len(old.encode()) <= charts.MAX_FOLDER_BYTES:
                assert new == old, name
            else:
                changed += 1
                assert old.startswith(new[:-width - 3]), name
        assert folder_of(name) == charts.safe_name(name, charts.MAX_FOLDER_BYTES - 11) + " (01234567)"
    assert changed > 50, "the sample reaches past the limit too"


# --- one line per value in the Markdown -----------------------------------------------------


BREAKS = ["\n", "\r\n", "\r", "\t", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x1c", "\x00"]


def chart_files(name: str, *, email: str = "jane@example.org", address: str = "1 Main St",
                entity: str = "p1", title: str = "Hello") -> dict[str, str]:
    home = DocRef("ehr", "main", "contact", entity)
    card = Card(name, None, None, "1990-01-02", [email], ["+12125550100"], [address])
    c = Client("0123456789abcdef", home, card, {"email:jane@example.org"})
    c.folder = "x (01234567)"
    mail = DocRef("gmail", "box", "email", f"m-{entity}")
    session = DocRef("ehr", "main", "clinical_session", f"s-{entity}")
    items = [(Link(c.client_id, home, "source_ref", None, entity), DocFacts(home, None, name)),
             (Link(c.client_id, mail, "email", "in", email), DocFacts(mail, "2024-01-02T03:04:05Z", title)),
             (Link(c.client_id, session, "source_ref", None, entity),
              DocFacts(session, "2024-01-03T00:00:00Z", title, columns=(title, title, "50", title)))]
    files = charts.render(charts.ChartInput(c, items), "2026-01-01T00:00:00Z")
    return {k: v.decode() for k, v in files.items()}


def lines_of(files: dict[str, str]) -> dict[str, list[str]]:
    return {k: v.split("\n") for k, v in files.items()}


@pytest.mark.parametrize("brk", BREAKS)
def test_line_breaks_in_source_text_never_start_a_markdown_line(brk: str) -> None:
    evil = f"Jane{brk}# Injected{brk}- item{brk}| a | b |"
    clean = chart_files("Jane X", email="jane@example.org", address="1 Main St", entity="p1", title="Hello")
    dirty = chart_files(evil, email=f"jane@example.org{brk}# Mail", address=f"1 Main St{brk}# Addr",
                        entity=f"p1{brk}# Id", title=f"Hello{brk}# Title")
    for fname, text in dirty.items():
        body = text.split("---\n", 2)[-1] if fname == "client.md" else text
        assert not re.search(r"[\r\x0b\x0c\x1c\x85\u2028\u2029\x00]", body), fname
        for line in text.split("\n"):
            assert not line.lstrip().startswith(("# Injected", "- item", "# Mail", "# Addr", "# Id", "# Title")), \
                (fname, line)
        assert len(text.split("\n")) == len(clean[fname].split("\n")), fname
    heads = [ln for ln in dirty["client.md"].split("\n") if ln.startswith("# ")]
    assert heads == ["# Jane # Injected - item | a | b |"]
    assert "# Timeline: Jane # Injected - item | a | b |\n" in dirty["timeline.md"]
    assert "# Sessions: Jane # Injected - item | a | b |\n" in dirty["sessions.md"]
    assert "# Billing: Jane # Injected - item | a | b |\n" in dirty["billing.md"]
    assert "- **Address:** 1 Main St # Addr\n" in dirty["client.md"]
    assert "- **E-mail:** jane@example.org # Mail\n" in dirty["client.md"]
    assert "- **Record:** ehr/main `p1 # Id`\n" in dirty["client.md"]
    row = next(ln for ln in dirty["timeline.md"].split("\n") if "| email |" in ln)
    assert row == "| 2024-01-02 03:04 | email | in | Hello # Title | gmail/box | `gmail:box:email:m-p1 # Id` |"
    front = yaml.safe_load(dirty["client.md"].split("---\n")[1])
    assert front["name"] == evil, "the front matter keeps the name exactly"


def test_printable_text_is_written_as_before_and_bidi_controls_go() -> None:
    """A bidi override (U+202E) in a subject showed the rest of its timeline row reversed: the
    bidi controls become a space; other format characters (a zero-width joiner) stay."""
    assert markdown.inline("Doe,  Jane ") == "Doe,  Jane "
    assert markdown.inline("\u202eRTL\u200d") == " RTL\u200d"
    assert markdown.inline("a\r\n\r\nb\tc") == "a b c"
    assert markdown._cell("x | y\n|z") == "x \\| y \\|z"
    assert markdown._cell("a\x00b") == "a b"
    assert markdown.yaml_str("a\u2028b\x85c") == '"a\\u2028b\\u0085c"'
    assert yaml.safe_load(markdown.yaml_str("a\u2028b\x85c\n")) == "a\u2028b\x85c\n"
    files = chart_files("Doe, Jane")
    assert files["client.md"].count("\n# Doe, Jane\n") == 1


def test_bidi_controls_in_a_name_never_reorder_the_front_matter() -> None:
    """A first name holding U+202E showed the rest of the front matter's ``name:`` line
    reversed in an editor (JSON leaves it unescaped): every bidi control is escaped there,
    and YAML reads the name back exactly."""
    name = "Zo\u00eb\u202e O'Brien\u2066x\u2069\u200f"
    front = chart_files(name)["client.md"].split("---\n")[1]
    assert not re.search("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", front)
    assert '"Zo\u00eb\\u202e O\'Brien\\u2066x\\u2069\\u200f"' in front
    assert yaml.safe_load(front)["name"] == name


# --- the real project stage --------------------------------------------------------------------


TAP = r'''
import json, sys
def out(m): sys.stdout.write(json.dumps(m, ensure_ascii=False) + "\n")
out({"type": "SCHEMA", "stream": "patients", "schema": {"type": "object"}, "key_properties": ["pid"]})
for p in [{"pid": "p1", "first": "\U0001F600" * 70, "last": "X", "dob": "1990-01-02"},
          {"pid": "p2", "first": "Line\nBreak\n# Injected\n- item", "last": "Doe", "dob": "1990-01-03"},
          {"pid": "p3", "first": "Jane", "last": "Doe", "dob": "1990-01-04"}]:
    out({"type": "RECORD", "stream": "patients", "record": p})
out({"type": "STATE", "value": {"ok": 1}})
'''

TRANSFORM = '''{
  "source_id": pid, "source_version": null, "uid": null,
  "name": {"full": first & " " & last, "components": []},
  "emails": null, "phones": null, "addresses": null, "anniversaries": null,
  "birth_date": dob, "active": true, "created": null, "updated": null, "has_notes": false
}
'''


def project_setup(tmp: Path) -> Path:
    (tmp / "tap.py").write_text(TAP)
    tdir = tmp / "transforms" / "clin"
    tdir.mkdir(parents=True)
    (tdir / "patient_v1.jsonata").write_text(TRANSFORM)
    (tdir / "patient_v1.meta.yaml").write_text(yaml.safe_dump({
        "id": "clin/patient_v1", "version": 1, "input": {"source": "ehr", "stream": "patients"},
        "output": {"kind": "contact", "schema": "contact.v1"}, "description": "test", "samples": []}))
    cfg = {"pipeline": {"name": "names", "version": "1"}, "workspace": str(tmp / "ws"),
           "extractors": [{"name": "ehr-main", "domain": "clinical", "source": "ehr", "account": "main",
                           "kind": "singer", "command": [sys.executable, str(tmp / "tap.py")]}],
           "stages": {"canonize": {"transforms_dir": str(tmp / "transforms"),
                                   "mappings": [{"source": "ehr", "stream": "patients",
                                                 "transform": "clin/patient_v1"}]}},
           "clients": {"sources": ["ehr"]}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def test_project_stage_charts_a_seventy_emoji_client_and_a_name_with_line_breaks(tmp_path: Path) -> None:
    cfg = project_setup(tmp_path)
    res = run_cli("run", "--config", str(cfg), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "project:clients success" in res.stdout, res.stdout
    root = tmp_path / "ws" / "clients"
    names = sorted(p.name for p in root.iterdir())
    assert len(names) == 3 and not [n for n in names if n.startswith(".")], names  # no staging left
    for n in names:
        assert_good_folder(n)
        assert set(charts.FILES) <= set(os.listdir(root / n))
    emoji = next(n for n in names if n.startswith("\U0001F600"))
    assert re.fullmatch("\U0001F600{57} \\([0-9a-f]{8}\\)", emoji), emoji
    assert "# " + "\U0001F600" * 70 + " X\n" in (root / emoji / "client.md").read_text()
    broken = next(n for n in names if n.startswith("Line"))
    assert broken.startswith("Line Break # Injected - item Doe (")
    for fname in charts.FILES:
        text = (root / broken / fname).read_text()
        assert not [ln for ln in text.split("\n") if ln.startswith(("# Injected", "- item"))], fname
    assert "\n# Line Break # Injected - item Doe\n" in (root / broken / "client.md").read_text()
    before = {n: [(root / n / f).stat().st_ino for f in charts.FILES] for n in names}
    again = run_cli("run", "--config", str(cfg), "--force", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {n: [(root / n / f).stat().st_ino for f in charts.FILES] for n in names} == before, \
        "a rerun gives the same folder names and rewrites nothing"

