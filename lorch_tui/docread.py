"""Printing index documents safely: every object is checked against its sha256 first.

``query --json``, ranked queries and ``clients show --measures`` print (or show) documents
read from the index's content-addressed objects. A damaged object must never reach the
terminal as if it were the document, so the faces read through here and turn
:class:`~engine.index.store.ObjectCorrupt` into one clear error (exit 1, code
``OBJECT_CORRUPT``) that names the object file and how to repair, never its content.
"""

from __future__ import annotations

from engine.errors import ExitCode, LorchError
from engine.index.query import Document, ObjectCorrupt, Store
from engine.index.store import OBJECT_CORRUPT, REPAIR_HINT


def object_corrupt(exc: ObjectCorrupt, doc: Document | None = None) -> LorchError:
    """The error for a damaged index object (exit 1, code OBJECT_CORRUPT).

    It names the object file and the document's source, account and kind (identifiers from
    the config), never its content, and says how to repair.
    """
    what = f" (a {doc.kind} document of {doc.source}/{doc.account})" if doc is not None else ""
    err = LorchError(f"OBJECT_CORRUPT: the index object {exc.path}{what} does not match its sha256; "
                     "nothing was printed", hint=REPAIR_HINT, exit_code=ExitCode.TASK_FAILED)
    err.code = OBJECT_CORRUPT
    return err


def read_documents(store: Store, docs: list[Document]) -> list[bytes]:
    """Every document's bytes, each checked against its sha256 (ObjectMissing passes through)."""
    lines = []
    for d in docs:
        try:
            lines.append(store.document_bytes(d))
        except ObjectCorrupt as exc:
            raise object_corrupt(exc, d) from None
    return lines
