"""`lorchestra query --kind K` checks the kind with index seeks, not a count over every document
(issue 18: on a workspace of 1,000,000 documents the old check cost 3.9 CPU-s before the
first row). Real index databases (the index's own schema, opened with its own writer and
reader); the cost is the SQLite virtual machine's steps, the same at N and 10N documents.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.index.query import Store
from engine.index.store import objects_dir, open_reader, open_writer
from engine.store.workspace import Workspace
from tests.helpers import REPO, clean_env

KINDS = ("contact", "email", "invoice")


def index(root: Path, documents: int) -> Workspace:
    """A workspace whose index holds ``documents`` rows over three kinds (no object files: the
    checks read rows only)."""
    ws = Workspace(root)
    conn = open_writer(ws)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO documents (kind, source, account, entity_id, sha256, time) VALUES (?, 'src', 'acct', ?, ?, ?)",
        [(KINDS[0] if n % 100 == 0 else KINDS[1 + n % 2], f"e{n}", f"{n:064x}", f"2024-01-{1 + n % 28:02d}")
         for n in range(documents)])
    conn.execute("COMMIT")
    conn.close()
    return ws


def steps(conn: sqlite3.Connection, action: object) -> tuple[object, int]:
    """The result of ``action()`` and the virtual machine steps it took (every opcode counted)."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        result = action()  # type: ignore[operator]
    finally:
        conn.set_progress_handler(None, 0)
    return result, count[0]


def test_kind_checks_cost_the_same_at_n_and_10n_documents(tmp_path: Path) -> None:
    costs = []
    for n in (3_000, 30_000):
        ws = index(tmp_path / f"ws{n}", n)
        store = Store(open_reader(ws), objects_dir(ws))
        try:
            assert sorted(store.kind_counts()) == list(KINDS)  # the truth, counted the slow way
            kinds, kinds_steps = steps(store.conn, store.kinds)
            has, has_steps = steps(store.conn, lambda s=store: s.has_kind("email"))
            missing, missing_steps = steps(store.conn, lambda s=store: s.has_kind("emial"))
            _, counted_steps = steps(store.conn, store.kind_counts)
        finally:
            store.close()
        assert kinds == list(KINDS) and has is True and missing is False
        costs.append((kinds_steps, has_steps, missing_steps, counted_steps))
    (small, large) = costs
    assert large[:3] == small[:3], costs  # seeks: independent of the documents
    assert large[3] > 5 * small[3], costs  # the count the check no longer makes grows with them


def test_an_unknown_kind_is_refused_naming_the_kinds(tmp_path: Path) -> None:
    import subprocess
    import sys

    ws = index(tmp_path / "ws", 500)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"pipeline: {{name: k, version: '1'}}\nworkspace: {ws.root}\nextractors:\n"
                   "- {name: a, domain: email, source: src, account: acct, kind: demo, demo: {tap: gmail, records: 5}}\n")
    res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "query", "--config", str(cfg), "--kind", "emial"],
                         cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "did you mean 'email'?" in res.stderr + res.stdout
    assert "contact, email, invoice" in res.stderr + res.stdout
    ok = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "query", "--config", str(cfg), "--kind", "contact",
                         "--limit", "3"], cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 document(s); more match" in ok.stdout


def test_query_never_sends_control_characters_from_documents_to_the_terminal(tmp_path: Path) -> None:
    """A title or id with terminal escape sequences (an e-mail subject is anyone's to write)
    is printed with U+FFFD in their place, in the boxed table and in the plain lines."""
    import subprocess
    import sys

    ws = Workspace(tmp_path / "ws")
    conn = open_writer(ws)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO documents (kind, source, account, entity_id, sha256, time, title) "
        "VALUES ('email', 'src', 'acct', ?, ?, '2024-01-02', ?)",
        [(f"e{n}\x1b[8m", f"{n:064x}", f"Re: invoice \x1b]52;c;cGF5bG9hZA==\x07 \x1b[2J{n}\x9b31m")
         for n in range(6)])
    conn.execute("COMMIT")
    conn.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"pipeline: {{name: k, version: '1'}}\nworkspace: {ws.root}\nextractors:\n"
                   "- {name: a, domain: email, source: src, account: acct, kind: demo, demo: {tap: gmail, records: 5}}\n")
    for rich_rows in ("1000", "2"):  # the boxed table, then the plain lines
        res = subprocess.run([sys.executable, "-m", "lorch_tui.cli", "query", "--config", str(cfg), "--limit", "0"],
                             cwd=REPO, env=clean_env(LORCH_RICH_TABLE_ROWS=rich_rows, COLUMNS="200"),
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        assert not any(ch in res.stdout for ch in ("\x1b", "\x07", "\x9b")), repr(res.stdout)
        assert res.stdout.count("Re: invoice \ufffd]52;c;cGF5bG9hZA==\ufffd \ufffd[2J") == 6, res.stdout
        assert ("│" in res.stdout) == (rich_rows == "1000")


def test_bidi_overrides_in_values_are_not_printed_as_they_are() -> None:
    """U+202E in a subject reverses the rest of the printed line (the next columns too)."""
    from lorch_tui.bigtable import clean
    assert clean("Invoice \u202egnp.exe") == "Invoice \ufffdgnp.exe"
    assert clean("a\u2066b\u2069c\u200fd") == "a\ufffdb\ufffdc\ufffdd"
    assert clean("café — naïve") == "café — naïve"
