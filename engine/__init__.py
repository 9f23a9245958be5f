"""lorchestra engine: everything headless.

Config, vault, stages, runner, events, state, logs and the demo taps live here. Nothing in
this package may import ``textual`` or ``lorch_tui``: the cron face and the stage workers
import the engine alone, and a test enforces it.
"""

from __future__ import annotations

__version__ = "0.1.0"
