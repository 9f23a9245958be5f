"""The index loader's insert thread: order, errors handed back, abandoning queued work."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from engine.index.sink import InsertThread
from tests.helpers import wait_for


def _conn(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "t.sqlite", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, thread TEXT)")
    return conn


def test_work_runs_in_order_in_its_own_thread_and_the_first_error_comes_back(tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    conn.execute("BEGIN")
    sink = InsertThread(conn, depth=2)
    for n in range(20):
        sink.submit(lambda c, n=n: c.execute("INSERT INTO t VALUES (?, ?)", (n, threading.current_thread().name)))
    sink.submit(lambda c: c.execute("INSERT INTO t VALUES (3, 'again')"))  # primary key taken
    sink.submit(lambda c: c.execute("INSERT INTO t VALUES (99, 'after the error')"))
    with pytest.raises(sqlite3.IntegrityError):
        sink.join()
    got = conn.execute("SELECT n, thread FROM t ORDER BY rowid").fetchall()
    assert [n for n, _ in got] == list(range(20)), "in order; nothing after the failing item"
    assert {t for _, t in got} == {"index-insert"}
    conn.execute("ROLLBACK")
    conn.close()


def test_an_error_is_raised_by_the_next_submit(tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    sink = InsertThread(conn)
    sink.submit(lambda c: c.execute("INSERT INTO nowhere VALUES (1)"))
    deadline = time.monotonic() + 10
    with pytest.raises(sqlite3.OperationalError):
        while time.monotonic() < deadline:
            sink.submit(lambda c: None)
            time.sleep(0.01)
    sink.close()
    conn.close()


def test_close_abandons_queued_work(tmp_path: Path) -> None:
    conn = _conn(tmp_path)
    sink = InsertThread(conn, depth=4)
    release = threading.Event()
    sink.submit(lambda c: release.wait(10))
    for n in range(4):  # fills the queue behind the blocked item
        sink.submit(lambda c, n=n: c.execute("INSERT INTO t VALUES (?, 'queued')", (n,)))
    closer = threading.Thread(target=sink.close)
    closer.start()
    wait_for(lambda: sink._cancel, timeout=10, what="close() to cancel")
    release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,), "queued work never ran"
    conn.close()
