"""The chart writer's peak memory does not grow with the largest chart (issue 18, session 6).

One synthetic client's chart is written by the project task's own writer in a fresh
subprocess (``bench/chart_peak.py``), with 5,000 and then 50,000 linked documents yielded in
chart order, first written, then rerun unchanged; the peak RSS each write adds must be the
same within a few MiB (the writer before session 6 added about 1.3 KiB per document:
+65 MiB at 50,000, so this fails on it). And with the items held as one list, the same
bench shows the growth (the check is measuring something).
"""

from __future__ import annotations

from pathlib import Path

from bench.chart_peak import growth

SMALL, LARGE = 5_000, 50_000
SLACK_KIB = 6 * 1024


def test_the_peak_of_writing_a_chart_does_not_grow_with_its_size(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    first = (growth(SMALL, small, "2026-01-01T00:00:00Z"), growth(LARGE, large, "2026-01-01T00:00:00Z"))
    timeline = large / "Doe, Jane (01234567)" / "timeline.md"
    assert timeline.stat().st_size > 5 * 2**20 and first[1] < first[0] + SLACK_KIB, first
    mtime = timeline.stat().st_mtime_ns
    again = (growth(SMALL, small, "2026-02-02T00:00:00Z"), growth(LARGE, large, "2026-02-02T00:00:00Z"))
    assert again[1] < again[0] + SLACK_KIB, again
    assert timeline.stat().st_mtime_ns == mtime, "an unchanged chart is not rewritten"
    assert b'projected_at: "2026-01-01T00:00:00Z"' in (timeline.parent / "client.md").read_bytes()
    assert not [p for p in large.iterdir() if p.name.startswith(".")], "no spill or staging left"


def test_holding_the_items_does_grow_with_the_chart(tmp_path: Path) -> None:
    small = growth(SMALL, tmp_path / "s", "2026-01-01T00:00:00Z", held=True)
    large = growth(LARGE, tmp_path / "l", "2026-01-01T00:00:00Z", held=True)
    assert large > small + 4 * SLACK_KIB, (small, large)
