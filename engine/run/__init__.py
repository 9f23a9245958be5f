"""The run machinery of one process tree: plan -> runner -> task attempts -> worker subprocesses.

* :mod:`engine.run.plan` — which tasks a run has, in which order.
* :mod:`engine.run.runner` — runs the plan: concurrency, retries, cancellation.
* :mod:`engine.run.session` — what every face shares around a run: lock, log, state, exit code.
* :mod:`engine.run.task` — one task's attempts.
* :mod:`engine.run.executor` — starts a worker (``python -m engine.run.worker``) and reads its events.
* :mod:`engine.run.worker` — the entry point of stage worker subprocesses.
* :mod:`engine.run.bus` — the event fan-out to the faces, the log and the state database.
* :mod:`engine.run.hooks` — the failure hook.

Nothing is imported here: ``run --dry-run`` needs only the plan, not the runner.
"""

from __future__ import annotations
