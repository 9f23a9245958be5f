"""The embedding model: wordllama's static 256-d vectors, loaded from the installed wheel only.

Why a module of its own: the model must never be fetched from the network (PHI workstation,
offline by design), must load lazily (only the index worker and the query command pay for
it; the dashboard never imports it), and its identity (name, package version, what text is
embedded) is stored beside every vector so a change re-embeds.

wordllama 0.4.0.post1 ships ``weights/l2_supercat_256.safetensors`` and
``tokenizers/l2_supercat_tokenizer_config.json`` inside its package, but ``WordLlama.load()``
looks for the tokenizer in the wrong folder and then downloads (with ``cache_dir`` = the
package's own folder and ``disable_download=True`` it finds both). This module reads the two
files itself (:func:`_load_offline`), so nothing can reach the network
(tests/engine/test_vectors.py proves it with the network blocked).

Embedding is wordllama's own recipe (tokenize, look up each token's row, average, normalise)
computed word by word, for speed (issue 16: the index stage may lose at most 15% with
embeddings on):

* **Words.** A text is split on whitespace; each word's tokens are summed once and the sum
  is kept in a word cache (``WORD_CACHE`` words), so a document costs a dictionary look-up
  and one gathered row per word, and the tokenizer only ever sees words it has not met. The
  tokenizer (Llama SentencePiece BPE: spaces become ``▁``, no token spans two words) splits
  ``"a b"`` exactly as ``"a"`` and ``"b"``, so this equals ``WordLlamaInference.embed`` on a
  text with single spaces within float32 rounding (a test compares the two); line breaks
  and runs of spaces, which the tokenizer would turn into tokens of their own, count as one
  space (``TEXT_VERSION`` 3).
* **Repeated texts** (the same subject line, a template) within one call are embedded once.
* **Pooling** gathers the word rows of 64 texts at a time into one reused buffer, so they
  stay in the CPU cache, and sums them with one ``np.add.reduceat``.
"""

from __future__ import annotations

import itertools
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.vectors.text import DocText

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

DIM = 256
"""Dimensions of every stored vector."""

MODEL_CONFIG = "l2_supercat"
"""The wordllama configuration that ships in the wheel."""

TENSOR = "embedding.weight"
"""The token table's name in the weights file (what ``WordLlama.load`` reads)."""

_BATCH = 64
"""Texts pooled per step: their rows (64 x ~20 x 1 KiB) stay in the CPU cache."""

WORD_CACHE = 32_768
"""Distinct words whose summed token vectors are kept (1 KiB each: 32 MiB at most, unless a
single text has more distinct words than that)."""

_CALL = 1024
"""Texts embedded per step: a step's distinct words (a few per cut text) fit in the cache."""


class ModelUnavailable(Exception):
    """The embedding model cannot be loaded from the installed package (never downloaded)."""


def package_version() -> str:
    """The installed wordllama version ('missing' when it is not installed)."""
    try:
        return metadata.version("wordllama")
    except metadata.PackageNotFoundError:
        return "missing"


class Embedder:
    """Texts -> unit-length float32 vectors (``DIM`` columns); the model loads on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._embed_lock = threading.Lock()
        self._table: Matrix | None = None
        self._tokenizer: Any = None
        self._index: dict[str, int] = {}
        self._sums: Matrix | None = None

    @property
    def model(self) -> str:
        """The model's identity: config, dimensions and package version."""
        return f"wordllama/{MODEL_CONFIG}_{DIM}@{package_version()}"

    def load(self) -> None:
        """Load the model now (ModelUnavailable if the wheel's files are missing or broken)."""
        with self._lock:
            if self._table is None:
                self._table, self._tokenizer = _load_offline()

    def embed(self, texts: list[str]) -> Matrix:
        """One unit-length row per text (a text without words gives a zero row)."""
        import numpy as np

        self.load()
        distinct = list(dict.fromkeys(texts))
        if len(distinct) < len(texts):  # a repeated text (a subject line, a template) is embedded once
            row = {t: i for i, t in enumerate(distinct)}
            return self.embed(distinct)[np.fromiter(map(row.__getitem__, texts), dtype=np.int64,
                                                    count=len(texts))]
        if len(texts) > _CALL:  # bounds the words one call adds to the cache (and its memory)
            return np.vstack([self.embed(texts[i:i + _CALL]) for i in range(0, len(texts), _CALL)])
        with self._embed_lock:
            words = [t.split() for t in texts]
            flat = list(itertools.chain.from_iterable(words))
            self._learn(flat)
            index = self._index
            ids = np.fromiter(map(index.__getitem__, flat), dtype=np.int64, count=len(flat))
            lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
            if self._sums is None:  # no word learnt yet: every text is empty
                return np.zeros((len(texts), DIM), dtype=np.float32)
            out = _pool(self._sums, ids, lens)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def forget_words(self) -> None:
        """Empty the word cache (a benchmark's run then starts as cold as a new worker's)."""
        with self._embed_lock:
            self._index.clear()
            self._sums = None

    def _learn(self, words: list[str]) -> None:
        """Give every word of ``words`` a row of summed token vectors in the word cache."""
        import numpy as np

        index = self._index
        new = [w for w in set(words) if w not in index]
        if not new:
            return
        if len(index) + len(new) > WORD_CACHE:
            index.clear()  # full: start again (the words of this call are all re-learnt)
            new = list(set(words))
        table, tokenizer = self._table, self._tokenizer
        assert table is not None
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        id_lists = [e.ids for e in encode(new, add_special_tokens=False)]
        lens = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lens.sum()))
        np.clip(ids, 0, table.shape[0] - 1, out=ids)
        sums = _pool(table, ids, lens)
        first = len(index)
        if self._sums is None or self._sums.shape[0] < first + len(new):
            grown = np.empty((max(first + len(new), min(WORD_CACHE, 2 * first + 4096)), DIM), dtype=np.float32)
            if self._sums is not None:
                grown[:first] = self._sums[:first]
            self._sums = grown
        self._sums[first:first + len(new)] = sums
        index.update(zip(new, range(first, first + len(new)), strict=True))


def _pool(table: Matrix, ids: Any, lens: Any) -> Matrix:
    """float32 row sums of ``table[ids]`` per group of ``lens`` consecutive ids (0 ids: a zero row).

    Gathered ``_BATCH`` groups at a time into one reused buffer, so the rows stay in the CPU
    cache and no multi-MiB array (a fresh mmap, page faults) is allocated per call.
    """
    import numpy as np

    out = np.zeros((len(lens), DIM), dtype=np.float32)
    ends = np.cumsum(lens)
    starts = ends - lens
    buf = np.empty((_BATCH * 32, DIM), dtype=table.dtype)
    wide = buf if table.dtype == np.float32 else np.empty(buf.shape, dtype=np.float32)
    for i in range(0, len(lens), _BATCH):
        sl = slice(i, i + _BATCH)
        nonempty = lens[sl] > 0
        if not nonempty.any():
            continue
        first, last = int(starts[i]), int(ends[sl][-1])
        n = last - first
        if buf.shape[0] < n:
            buf = np.empty((n, DIM), dtype=table.dtype)
            wide = buf if table.dtype == np.float32 else np.empty(buf.shape, dtype=np.float32)
        rows = np.take(table, ids[first:last], axis=0, out=buf[:n])
        if wide is not buf:  # float16 rows widened first: a mixed-type reduceat is 10x slower
            rows = wide[:n]
            np.copyto(rows, buf[:n])
        out[np.flatnonzero(nonempty) + i] = np.add.reduceat(rows, starts[sl][nonempty] - first, axis=0)
    return out


def embed_documents(embedder: Embedder, texts: list[DocText]) -> Matrix:
    """Document vectors: the weighted sum of the head's and the tail's unit vectors, normalised."""
    import numpy as np

    both = embedder.embed([t.head for t in texts] + [t.tail for t in texts])
    heads, tails = both[:len(texts)], both[len(texts):]
    weights = np.fromiter((t.weight for t in texts), dtype=np.float32, count=len(texts))
    out = heads * weights[:, None] + tails
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _load_offline() -> tuple[Matrix, Any]:
    """Weights and tokenizer read from the installed wordllama package's files; never a download.

    Read directly (``safetensors`` and ``tokenizers``, both wordllama dependencies) rather than
    through ``WordLlama.load``: importing wordllama (requests, its configs) and its loader cost
    0.3 CPU-s per index worker, these two reads 0.05 s. What is read is what ``WordLlama.load``
    reads (a test compares the vectors with wordllama's own).
    """
    import numpy as np

    files = model_files()
    if files is None:
        raise ModelUnavailable("the wordllama package is not installed")
    weights, tokenizer_file = files
    try:
        from safetensors import safe_open
        from tokenizers import Tokenizer
    except ImportError:
        raise ModelUnavailable("the wordllama package's dependencies are not installed") from None
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        table = _map_tensor(weights, TENSOR)
        if table is None:  # a layout this reader does not know: the safetensors reader copies it
            with safe_open(str(weights), framework="np", device="cpu") as f:
                table = np.ascontiguousarray(f.get_tensor(TENSOR))
    except Exception:  # noqa: BLE001 - the Rust readers raise their own exception types
        raise ModelUnavailable("the wordllama model files in the installed package cannot be read") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if table.ndim != 2 or table.shape[1] != DIM:
        raise ModelUnavailable(f"the wordllama model does not have {DIM} dimensions")
    return table, tokenizer


def _map_tensor(path: Path, name: str) -> Matrix | None:
    """The tensor ``name`` of a safetensors file, mapped read-only instead of copied.

    Kept in the file's dtype (float16): only the rows of new words are read, and they are
    summed in float32, which is what widening the table first would give. Mapped, the 128k x
    256 table (64 MiB) costs a worker only the pages of the tokens its documents use, and the
    page cache shares it between workers (a loaded model: 82 -> 55 MiB of RSS). The format: an 8-byte little-endian header length, a JSON
    header giving each tensor's dtype, shape and byte range, then the data. None when the
    header does not describe a plain little-endian float tensor of the expected size.
    """
    import json
    import math
    import struct

    import numpy as np

    dtypes: dict[str, Any] = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4")}
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    info = header.get(name) if isinstance(header, dict) else None
    if not isinstance(info, dict) or info.get("dtype") not in dtypes:
        return None
    dtype, shape = dtypes[info["dtype"]], tuple(info.get("shape") or ())
    start, end = info.get("data_offsets") or (0, -1)
    if len(shape) != 2 or end - start != math.prod(shape) * dtype.itemsize:
        return None
    table: Matrix = np.memmap(path, dtype=dtype, mode="r", offset=8 + size + start, shape=(shape[0], shape[1]))
    return table


def model_files() -> tuple[Path, Path] | None:
    """The weights and tokenizer files in the installed wordllama package (None: no package).

    Found without importing the package, so ``lorchestra validate`` can check them cheaply.
    """
    import importlib.util

    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    return (root / "weights" / f"{MODEL_CONFIG}_{DIM}.safetensors",
            root / "tokenizers" / f"{MODEL_CONFIG}_tokenizer_config.json")


def check_model() -> tuple[bool, str]:
    """(ok, message) for ``lorchestra validate``: are the model's files installed?"""
    files = model_files()
    if files is None:
        return False, ("the wordllama package is not installed: documents index without vectors "
                       "(reinstall with `make setup`)")
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        return False, f"the wordllama package lacks {', '.join(missing)}: documents index without vectors"
    return True, f"wordllama {package_version()}: model files installed (loaded offline, never downloaded)"


_SHARED: Embedder | None = None


def shared() -> Embedder:
    """The process's one embedder (the model is loaded once per process, on first use)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Embedder()
    return _SHARED
