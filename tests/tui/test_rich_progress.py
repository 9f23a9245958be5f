"""The terminal progress face of a headless run (`lorchestra run` on a terminal): one bar per
running task, named by its task id and, for a task of several steps, the step it is in.

A real rich ``Progress`` on a console that believes it is a terminal (its output goes to a
buffer), fed the engine's own event models.
"""

from __future__ import annotations

import io

from rich.console import Console

from engine.events import RunStarted, TaskProgress, TaskStarted
from lorch_tui.headless import RichProgressFace


def test_a_task_s_bar_names_its_phase_and_counts_that_phase() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    tid = "project:clients"
    with RichProgressFace(console) as face:
        face(RunStarted(run_id="20260101T000000Z-abcdef", trigger="cli", pipeline="p", stages=["project"],
                        tasks=1))
        face(TaskStarted(task_id=tid, stage="project", extractor="clients", account="all", attempt=1, pid=1))
        face(TaskProgress(task_id=tid, stage="project", extractor="clients", records=900, total=900,
                          phase="read"))
        face(TaskProgress(task_id=tid, stage="project", extractor="clients", records=300, total=900,
                          phase="resolve"))
        bar = face.progress.tasks[face.tasks[tid]]
        assert bar.description == f"{tid} · resolve"
        assert (bar.completed, bar.total) == (300, 900), "the bar is the phase's, not the read's"
        face(TaskProgress(task_id=tid, stage="index", extractor="clients", records=5, total=10))
        assert face.progress.tasks[face.tasks[tid]].description == tid, "a task without phases: its id"
