"""``python -m engine.demo_taps``: run one bundled demo tap (see ``cli.py``)."""

from __future__ import annotations

from engine.demo_taps.cli import main

raise SystemExit(main())
