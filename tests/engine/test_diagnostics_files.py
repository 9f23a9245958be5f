"""A task's diagnostics file stays bounded: every attempt of every nightly run appended to it.

Real files; the engine's own cut (:func:`engine.run.executor.keep_small`).
"""

from __future__ import annotations

from pathlib import Path

from engine.run.executor import keep_small


def test_a_diagnostics_file_past_its_limit_keeps_its_newer_half_from_an_attempt_line(tmp_path: Path) -> None:
    path = tmp_path / "extract" / "a.stderr.log"
    path.parent.mkdir()
    lines = b"".join(b"--- attempt 1 of extract:a at 2026-11-%02dT02:15:00Z\nline %d\n" % (d % 28 + 1, d)
                     for d in range(3000))
    path.write_bytes(lines)
    path.chmod(0o600)
    keep_small(path, limit=10_000)
    kept = path.read_bytes()
    assert len(kept) <= 5_100 and kept.startswith(b"--- (older attempts removed")
    assert kept.splitlines()[1].startswith(b"--- attempt 1 of extract:a at ")  # whole attempts only
    assert kept.endswith(b"line 2999\n") and path.stat().st_mode & 0o777 == 0o600
    before = path.read_bytes()
    keep_small(path, limit=10_000)  # under the limit: untouched
    assert path.read_bytes() == before
