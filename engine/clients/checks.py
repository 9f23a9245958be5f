"""``lorchestra validate``'s checks of the ``clients`` section: will the project stage run?

A broken overrides file would fail the project stage of every run; a ``clients.sources``
entry that no extractor has would define no client. Both are cheaper to hear about at setup
time. Messages hold config identifiers, paths and counts, never file content. The overrides
file lives beside the config, outside the workspace, and holds PHI (addresses, phone numbers,
document ids): one that others can read is a warning, as a tap's config file is.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from engine.check import Check
from engine.config import PipelineConfig


def check_clients(cfg: PipelineConfig, index: Path | None = None) -> list[Check]:
    """The ``clients`` section's sources and overrides file (nothing when there is no section);
    with ``index`` (the index database), the ``names:`` entries against its last projection."""
    c = cfg.clients
    if c is None:
        return []
    # only with a clients section:
    from engine.clients.overrides import OverridesError, load_overrides

    out: list[Check] = []
    have = {ex.source for ex in cfg.extractors}
    for source in c.sources:
        if source in have:
            out.append(Check("clients", f"sources: {source}", "ok", "contacts of this source define clients"))
        else:
            out.append(Check("clients", f"sources: {source}", "warn",
                             "no extractor has this source: it defines no client"))
    if not c.sources:
        out.append(Check("clients", "sources", "warn", "empty: the project stage defines no client"))
    if not c.own_addresses:
        out.append(Check("clients", "own_addresses", "warn",
                         "empty: every mail counts as incoming and the practice's own addresses "
                         "could become client keys"))
    if c.overrides is None:
        out.append(Check("clients", "overrides", "ok", "no overrides file configured"))
    elif not c.overrides.exists():
        out.append(Check("clients", "overrides", "ok", f"{c.overrides} does not exist: no overrides"))
    else:
        try:
            ov, _ = load_overrides(c.overrides)
        except OverridesError as exc:
            out.append(Check("clients", "overrides", "fail", str(exc)))
        else:
            out.append(Check("clients", "overrides", "ok",
                             f"{c.overrides}: {len(ov.merge)} merge, {len(ov.apart)} apart, "
                             f"{len(ov.link)} link, {len(ov.ignore)} ignore, {len(ov.names)} names"))
            ids = [x for g in (*ov.merge, *ov.apart) for x in g] + [lk.client for lk in ov.link if lk.client]
            short = sorted({x for x in ids if not re.fullmatch(r"[0-9a-f]{16}", x)})
            if short:  # a chart folder's short id (`Quinn, Bob (78ea5078)`) names no client here
                out.append(Check("clients", "overrides", "warn",
                                 f"{len(short)} client id(s) are not 16 hex digits (a chart folder's short "
                                 f"id, or a name where the id goes? not shown: it may be PHI); write the "
                                 f"full id `lorchestra clients list` prints, or the entry is unused "
                                 f"(OVERRIDE_UNUSED; `lorchestra clients conflicts` names it)"))
            if ov.names and index is not None:
                out += _names_of_others(ov.names, index)
            if c.overrides.stat().st_mode & 0o044:
                out.append(Check("clients", "overrides", "warn",
                                 f"{c.overrides} (it names documents, addresses and phone numbers) is "
                                 f"readable by others: chmod 600 it"))
    return out


def _names_of_others(names: dict[str, list[str]], index: Path) -> list[Check]:
    """A ``names:`` entry that is another client's very name in the last projection (a typo,
    a sibling's name pasted under the wrong id): the project stage does not apply it
    (``OVERRIDE_UNUSED``). Counted, never shown: the names are PHI."""
    from engine.clients import keys as K

    if not index.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1)
        try:
            got = conn.execute("SELECT client_id, name, merged FROM clients").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # no projection yet (or tables of another version): nothing to compare
    by_name: dict[str, set[str]] = {}
    one: dict[str, str] = {}  # a merged id -> the client kept
    for cid, name, merged in got:
        folded = K.name_text(name)
        if folded:
            by_name.setdefault(folded, set()).add(cid)
        for m in str(merged or "").replace(",", " ").split():
            one[m] = cid
    bad = sum(1 for cid, listed in names.items() for n in listed
              if (K.name_text(n) or "") in by_name and by_name[K.name_text(n) or ""] - {one.get(cid, cid)})
    if not bad:
        return []
    return [Check("clients", "overrides", "warn",
                  f"{bad} names: entr(y/ies) are another client's name in the last projection (not shown: "
                  f"PHI); the project stage does not apply them (OVERRIDE_UNUSED; `lorchestra clients "
                  f"conflicts` names the client ids): correct the id or the name")]
