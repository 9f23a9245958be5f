"""``lorchestra validate``'s checks of the measure registry: every measure and binding.

A measure file that does not load (bands with a gap, an item misnamed, an alias naming two
options) or a binding that names an unknown measure or item, leaves an item unbound or binds
one question twice, is left out of scoring; validate says so at setup time. What makes the
project stage fail (``MEASURES_INVALID``: a missing measures folder, no measure file) fails
validate too. Messages hold
file paths, ids and counts from the config, never data.
"""

from __future__ import annotations

from engine.check import Check
from engine.config import PipelineConfig


def check_measures(cfg: PipelineConfig) -> list[Check]:
    """Every measure and binding file (nothing when there is no ``clients`` section)."""
    if cfg.clients is None:
        return []
    from engine.measures.registry import load  # only with a clients section

    reg = load(cfg.clients.measures)
    out: list[Check] = []
    for (mid, version), m in sorted(reg.measures.items()):
        low, high = m.total_range()
        out.append(Check("measures", f"{mid} v{version}", "ok",
                         f"{len(m.items)} items, total {low}-{high}, {len(m.bands)} bands, "
                         f"code {m.code.code}"))
    for b in reg.bindings:
        carries = ", ".join(mb.measure for mb in b.measures) or "no measure (declared: measures: [])"
        out.append(Check("measures", f"binding {b.id}", "ok", f"{len(b.forms)} form(s): {carries}"))
    # what the project stage refuses (a missing folder, no measure file) fails here too: validate
    # passed a typo in clients.measures that failed every run with MEASURES_INVALID
    out += [Check("measures", "registry", "fail", p) for p in reg.problems]
    if reg.measures and not reg.bindings and not reg.problems:
        out.append(Check("measures", "bindings", "warn", "no bindings: no response is scored"))
    return out
