"""Deletion markers: records a tap sends to say a record is gone, which are no documents.

SOURCES.md lists them per source: Microsoft Graph's delta gives ``{"id": ..., "@removed":
{"reason": "deleted"}}``, Dataverse's ``$deletedEntity`` rows (an ``@odata.context`` ending
in ``$deletedEntity``), QuickBooks' change data capture ``{"domain": "QBO", "status":
"Deleted", "Id": ..., "MetaData": ...}``, and the Singer SDK's soft deletes a
``_sdc_deleted_at`` time. Read as
records they became an all-null e-mail in the index (replacing the real message) or a
``SCHEMA_INVALID`` reject that failed a Dataverse account on every delta with a deletion.
The canonize stage skips them; in an incremental chain a marker with the stream's key still
supersedes the older runs' record of that key, so the deleted record leaves the canonical
file, the index and the charts (``deleted`` in the meta counts those records; a marker that
could not remove a record that stays is warned, :mod:`engine.stages.markers`).

In the vault layer because what a tap's line is (a record, or word that one is gone) is read
below canonize too: the extract's field-path collector (:mod:`engine.vault.paths`) leaves
markers out of the fields every record has.
"""

from __future__ import annotations

from typing import Any


def keyed(record: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    """A marker with its stream's key: Dataverse's ``$deletedEntity`` row gives ``id``, not the
    table's key (``contactid``), and superseded nothing. With one key property missing from
    the marker, its ``id`` is that key's value."""
    if len(key) == 1 and key[0] not in record and record.get("id") is not None:
        return {**record, key[0]: record["id"]}
    return record


_QBO_MARKER_FIELDS = frozenset({"Id", "id", "MetaData", "domain", "status", "sparse", "SyncToken"})


def _qbo_deleted(record: dict[str, Any]) -> bool:
    """QuickBooks' CDC entry of a deleted transaction: ``status: "Deleted"`` on an entity of
    the QBO domain, or (a tap that dropped ``domain``) on a record with nothing but the
    marker's own fields. A record of another source with a ``status`` column is no marker."""
    if record.get("status") != "Deleted":
        return False
    if record.get("domain") == "QBO":
        return True
    return all(k in _QBO_MARKER_FIELDS or k.startswith("_sdc_") for k in record)


def is_deletion(record: Any) -> bool:
    """Whether a record is a deletion marker rather than a record of the source."""
    if not isinstance(record, dict):
        return False
    if "@removed" in record or record.get("_sdc_deleted_at") is not None:
        return True
    if "status" in record and _qbo_deleted(record):
        return True
    context = record.get("@odata.context")
    return isinstance(context, str) and context.rstrip("/").endswith("$deletedEntity")
