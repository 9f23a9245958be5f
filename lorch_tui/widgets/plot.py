"""Records and duration per run of the selected account, as a real plot with axes and values.

Drawn by ``textual-plotext`` (plotext inside a Textual widget): records per run on the left
axis, the extract's duration in seconds on the right axis, oldest run first, the run's
date and time under the x axis. Records come from the vault manifests, durations from the
run history; a run the history does not know is drawn without a duration.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

from engine.ops.inspect import RunInfo


@dataclass(frozen=True)
class Point:
    """One run on the plot."""

    label: str  # MM-DD HH:MM
    records: int
    duration_s: float | None


def points(runs: list[RunInfo], durations: dict[str, float], limit: int = 20) -> list[Point]:
    """The newest ``limit`` runs, oldest first (``runs`` is newest first)."""
    out: list[Point] = []
    for r in reversed(runs[:limit]):
        rid = r.run_id  # YYYYMMDDTHHMMSSZ...
        label = f"{rid[4:6]}-{rid[6:8]} {rid[9:11]}:{rid[11:13]}" if len(rid) >= 13 else rid
        out.append(Point(label, r.records, durations.get(f"dt={r.dt}/run_id={r.run_id}")))
    return out


class RunPlot(PlotextPlot):
    """The per-run plot of one account."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.account = ""
        self.data: list[Point] = []

    def show(self, account: str, data: list[Point]) -> None:
        """Plot ``data`` for ``account`` (redraws only when something changed)."""
        if (account, data) == (self.account, self.data):
            return
        self.account, self.data = account, data
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not data:
            plt.title(f"{account}: no runs yet")
            self.refresh()
            return
        xs = list(range(1, len(data) + 1))
        plt.plot(xs, [p.records for p in data], marker="braille", label="records")
        timed = [(x, p.duration_s) for x, p in zip(xs, data, strict=True) if p.duration_s is not None]
        if timed:
            plt.plot([x for x, _ in timed], [d for _, d in timed], marker="braille",
                     yside="right", label="seconds")
        step = max(1, len(xs) // 4)
        plt.xticks(xs[::step], [p.label for p in data][::step])
        plt.title(f"{account}: records (left) and extract seconds (right) per run")
        self.refresh()
