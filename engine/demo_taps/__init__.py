"""Bundled demo Singer taps: synthetic PHI shaped like the real sources, run as subprocesses.

``python -m engine.demo_taps {gmail|msgraph|dataverse|sheets|quickbooks|forms|formsheets} --config FILE
[--state FILE] [--discover] [--catalog FILE]`` behaves like a real Singer tap, so a fresh
clone can run the whole pipeline without credentials, and the engine's tests can drill every
failure a real tap shows (crashes, hangs, garbage, floods) through the ``faults`` config.
Output is a pure function of (tap, account, records, seed): byte-identical on every run.
See ``cli.py`` for the command line and ``settings.py`` for the config contract.
"""

from __future__ import annotations

TAP_NAMES: tuple[str, ...] = ("gmail", "msgraph", "dataverse", "sheets", "quickbooks", "forms",
                              "formsheets")
"""The bundled taps, by the name the command line takes."""
