"""The project task's reading queue (engine.clients.reading.AccountQueue): the task and its
forked reading helper take accounts from one pipe until it is empty, so neither waits long
for the other.

Real processes (``fork``) reading a real pipe: every account is read by exactly one of them,
both get a share when reading takes time, the largest accounts go first, and the choice of
sharing (``shared``) follows the size, the count and the queue's capacity.
"""

from __future__ import annotations

import os
import time

import pytest

from engine.clients import reading
from engine.clients.reading import AccountQueue

ACCOUNTS = [("gmail", f"box{n:02}", "sha", docs) for n, docs in enumerate([5, 900, 40, 300, 7, 1200, 66,
                                                                          500, 12, 800, 3, 60])]


def _drain(queue: AccountQueue, out: int) -> None:
    for source, account, _, _ in queue:
        os.write(out, f"{source}/{account}\n".encode())
        time.sleep(0.03)  # reading an account takes time: the other process takes the next one


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_each_account_is_read_once_by_one_of_two_processes() -> None:
    queue = AccountQueue(ACCOUNTS)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's share is checked below
        try:
            os.close(r)
            _drain(queue, w)
        finally:
            os._exit(0)
    os.close(w)
    mine: list[str] = []
    for source, account, _, _ in queue:
        mine.append(f"{source}/{account}")
        time.sleep(0.03)
    queue.close()
    os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as fh:
        theirs = fh.read().decode().split()
    assert sorted(mine + theirs) == sorted(f"gmail/{a[1]}" for a in ACCOUNTS), "each account once"
    assert mine and theirs, "both processes read a share"
    first = sorted(ACCOUNTS, key=lambda a: -a[3])[:2]
    assert {f"gmail/{a[1]}" for a in first} <= {mine[0], theirs[0]}, "the largest accounts go first"


def test_one_process_reads_alone_when_sharing_would_not_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "READ_SHARD_MIN", 1000)
    big = [("s", "a", "x", 800), ("s", "b", "x", 900)]
    assert reading.shared(big) == reading.forked.can_fork()
    assert not reading.shared([("s", "a", "x", 5000)]), "one account: nothing to share"
    assert not reading.shared([("s", "a", "x", 400), ("s", "b", "x", 500)]), "below READ_SHARD_MIN"
    many = [("s", f"a{n}", "x", 100) for n in range(AccountQueue.MOST + 1)]
    assert not reading.shared(many), "more accounts than the queue holds"
