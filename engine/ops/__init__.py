"""What the faces ask of a workspace besides running it.

* :mod:`engine.ops.checks` — ``lorchestra validate``: will a run work, is the workspace private.
* :mod:`engine.ops.permissions` — ``validate``'s walk of the workspace's modes, and the fixer.
* :mod:`engine.ops.inspect` — the status views of a workspace.
* :mod:`engine.ops.verify` — ``lorchestra verify``: every checksum of the vault and outputs.
* :mod:`engine.ops.readback` — ``verify``'s re-reading of files: hashes and counts.
* :mod:`engine.ops.cleanup` — ``lorchestra clean``.

Nothing is imported here, so each command loads only the module it needs.
"""

from __future__ import annotations
