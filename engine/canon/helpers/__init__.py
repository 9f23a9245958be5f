"""The helper functions registered into every JSONata transform, one module per concern.

Why they exist: JSONata has no charset-aware base64url decoder, no RFC 5322 address or date
parser, no RFC 2047 decoder and no exact decimal type, and the engines disagree on the
built-ins that come closest (``$base64decode`` decodes as Latin-1 in the reference engine and
as UTF-8 in jsonatapy). Doing that work in Python, with the standard library's mail parsers,
makes the transforms' results independent of the engine and lets the transforms stay short,
declarative mappings. It is also faster: the JSONata spellings of this work (regex,
``$fromMillis``, ``**`` descent over MIME trees) are the slowest paths of every engine.

Modules: :mod:`.mail` (headers, RFC 2047, addresses, Message-IDs, Date headers; its
address-list parser is :mod:`.addrlist`),
:mod:`.mime` (MIME bodies and attachments), :mod:`.text` (HTML to text, previews),
:mod:`.dates` (timestamps and calendar dates), :mod:`.numeric` (decimals, numbers),
:mod:`.contact` (phones, countries) and :mod:`.values` (hashes, compaction).
:mod:`engine.canon.functions` registers them by ``$name`` and hashes their source.

Contract of every helper (tests hold them to it):

* **Pure and deterministic**: the output depends only on the arguments (no clock, no locale,
  no randomness, no I/O), so the same record always canonizes to the same bytes.
* **JSON in, JSON out**: arguments arrive as positional JSON values (``None`` for JSONata's
  ``null`` *and* for an undefined/missing argument); results are JSON values.
* **Never raises on odd input**: a value that cannot be interpreted gives ``None`` (JSON
  ``null``) and, where the caller needs to know, a flag (``encodingProblem``). An exception
  here would reject the whole record as ``TRANSFORM_FAILED``; odd data is not a failure.
* **Fast**: called once or a few times per record; no regex compiled per call.
"""

from __future__ import annotations

from typing import Any

JSON = Any
"""A JSON value as Python sees it (dict, list, str, int, float, bool or None)."""
