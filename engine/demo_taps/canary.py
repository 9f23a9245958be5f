"""Canary PHI: distinctive synthetic strings that every demo tap plants in its output.

The engine promises that tap output and tap stderr never leave the PHI workspace (no PHI in
events, the pipeline log or the state database). Leak tests prove it by running the demo taps
and grepping everything outside the workspace for these strings. Every tap plants all of them
in its first records (so even ``records: 5`` carries them) and in its stderr log lines.
"""

from __future__ import annotations

CANARY_GIVEN_NAME = "Zebulon"
CANARY_FAMILY_NAME = "Canarywhistle"
CANARY_NAME = f"{CANARY_GIVEN_NAME} {CANARY_FAMILY_NAME}"
CANARY_BIRTH_DATE = "1911-11-11"
CANARY_NOTE = "canary-diagnosis-zx81"
CANARY_ADDRESS = "42 Canary Wharf Lane"
CANARY_EMAIL = "zebulon.canary@example.org"

CANARY_CITY = "Springfield"
CANARY_STATE = "IL"
CANARY_POSTAL = "62704"
CANARY_PHONE_AREA = "217"
CANARY_PHONE_LINE = "0111"

CANARIES: tuple[str, ...] = (
    CANARY_NAME,
    CANARY_FAMILY_NAME,
    CANARY_BIRTH_DATE,
    CANARY_NOTE,
    CANARY_ADDRESS,
    CANARY_EMAIL,
)
"""Every string here appears verbatim in each tap's stdout (first records) and stderr."""

CANARY_SENTENCE = (
    f"{CANARY_NAME} (DOB {CANARY_BIRTH_DATE}) of {CANARY_ADDRESS}, {CANARY_CITY} "
    f"{CANARY_STATE}, reachable at {CANARY_EMAIL}; working diagnosis {CANARY_NOTE}."
)
"""One sentence that carries every canary; taps put it in notes, bodies and log lines."""


def canary_log_line() -> str:
    """The PHI-bearing stderr line every tap writes (the engine must keep it in the vault)."""
    return f"INFO fetched record for patient {CANARY_SENTENCE}"
