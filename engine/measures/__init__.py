"""Outcome measures: questionnaires from form responses scored per client (docs/measures.md).

``registry`` loads and checks the measure definitions and bindings (YAML under
``config/measures``), ``score`` turns one response into a measurement or a stable reason,
``step`` runs inside the project stage (index -> measurements -> index, rejects file) and
``chart`` renders each client's ``measures.md``.
"""

from __future__ import annotations
