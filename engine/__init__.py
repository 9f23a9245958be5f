"""lorchestra engine: everything headless.

Grouped by concern (docs/architecture.md, "How engine/ is grouped"): ``config``, ``store``,
``run``, ``stages``, ``ops`` and the data packages (``vault``, ``canon``, ``index``,
``vectors``, ``drift``, ``clients``, ``measures``, ``demo_taps``), beside a few shared leaf
modules (``errors``, ``events``, ``names``, ``limits``, ``check``). Nothing in
this package may import ``textual`` or ``lorch_tui``: the cron face and the stage workers
import the engine alone, and a test enforces it.
"""

from __future__ import annotations

__version__ = "0.1.0"
