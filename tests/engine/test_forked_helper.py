"""The project task's forked helper (engine/clients/forked.py) reports a file error it died of.

A real fork: the helper's work raises, the task's ``result()`` raises ``ChildFailed``, an
``OSError`` carrying the helper's errno (a full disk is then ``DISK_FULL``, as in the task).
"""

from __future__ import annotations

import errno

import pytest

from engine.clients.forked import Child, ChildFailed
from engine.events import ErrorCode, write_error_code


def _raise(exc: BaseException) -> bytes:
    raise exc


@pytest.mark.parametrize(("exc", "code"), [
    (OSError(errno.ENOSPC, "No space left on device", "/ws/clients/x"), ErrorCode.DISK_FULL),
    (OSError(errno.EACCES, "Permission denied"), ErrorCode.WRITE_FAILED),
])
def test_a_helper_s_file_error_reaches_the_task_with_its_errno(exc: OSError, code: ErrorCode) -> None:
    child = Child(lambda: _raise(exc))
    with pytest.raises(ChildFailed) as got:
        child.result()
    child.stop()
    assert got.value.errno == exc.errno and write_error_code(got.value) == code


def test_another_failure_and_a_good_result() -> None:
    child = Child(lambda: _raise(ValueError("x")))
    with pytest.raises(ChildFailed) as got:
        child.result()
    child.stop()
    assert got.value.errno is None
    ok = Child(lambda: b"counts")
    assert ok.result() == b"counts"
    ok.stop()
