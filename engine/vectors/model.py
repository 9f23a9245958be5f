"""The embedding model: wordllama's static 256-d vectors, loaded from the installed wheel only.

Why a module of its own: the model must never be fetched from the network (PHI workstation,
offline by design), must load lazily (only the index worker and the query command pay for
it; the dashboard never imports it), and its identity (name, package version, what text is
embedded) is stored beside every vector so a change re-embeds.

wordllama 0.4.0.post1 ships ``weights/l2_supercat_256.safetensors`` and
``tokenizers/l2_supercat_tokenizer_config.json`` inside its package, but ``WordLlama.load()``
looks for the tokenizer in the wrong folder and then downloads. Loading with ``cache_dir`` =
the package's own folder and ``disable_download=True`` finds both files and never touches the
network (tests/engine/test_vectors.py proves it with the network blocked).

Embedding is wordllama's own recipe (tokenize, look up each token's row, average, normalise)
computed without padding, in small batches so the token rows stay in the CPU cache: several
times faster than ``WordLlamaInference.embed`` and equal to it within float32 rounding (a
test compares the two).
"""

from __future__ import annotations

import itertools
import logging
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

_BATCH = 64
"""Texts pooled per step: their token rows (64 x ~40 x 1 KiB) stay in the CPU cache."""


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
        self._table: Matrix | None = None
        self._tokenizer: Any = None

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
        """One unit-length row per text (an empty text gives a zero row)."""
        import numpy as np

        self.load()
        table, tokenizer = self._table, self._tokenizer
        assert table is not None
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        top = table.shape[0] - 1
        # encode_batch_fast (tokenizers >= 0.20) skips character offsets we never use.
        encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        # One reused buffer for the gathered token rows: a fresh multi-MiB array per batch
        # is a fresh mmap, and its page faults cost more than the arithmetic.
        buf = np.empty((_BATCH * 64, DIM), dtype=np.float32)
        for start in range(0, len(texts), _BATCH * 16):
            encoded = encode(texts[start:start + _BATCH * 16], add_special_tokens=False)
            id_lists = [e.ids for e in encoded]
            lens = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
            ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lens.sum()))
            np.clip(ids, 0, top, out=ids)
            ends = np.cumsum(lens)
            starts = ends - lens
            for i in range(0, len(id_lists), _BATCH):
                sl = slice(i, i + _BATCH)
                nonempty = lens[sl] > 0
                if not nonempty.any():
                    continue
                first, last = int(starts[i]), int(ends[sl][-1])
                if buf.shape[0] < last - first:
                    buf = np.empty((last - first, DIM), dtype=np.float32)
                rows = np.take(table, ids[first:last], axis=0, out=buf[:last - first])
                sums = np.add.reduceat(rows, starts[sl][nonempty] - first, axis=0)
                out[np.flatnonzero(nonempty) + start + i] = sums
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


def embed_documents(embedder: Embedder, texts: list[DocText]) -> Matrix:
    """Document vectors: the weighted sum of the head's and the tail's unit vectors, normalised."""
    import numpy as np

    heads = embedder.embed([t.head for t in texts])
    tails = embedder.embed([t.tail for t in texts])
    weights = np.fromiter((t.weight for t in texts), dtype=np.float32, count=len(texts))
    out = heads * weights[:, None] + tails
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _load_offline() -> tuple[Matrix, Any]:
    """Weights and tokenizer from the installed wordllama package; never a download."""
    import numpy as np

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError:
        raise ModelUnavailable("the wordllama package is not installed") from None
    finally:
        # wordllama.inference calls logging.basicConfig(INFO) at import: undo it, so no
        # library chatter reaches a worker's stderr.
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    try:
        inference = WordLlama.load(config=MODEL_CONFIG, dim=DIM,
                                   cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    except (OSError, ValueError, RuntimeError, KeyError):
        raise ModelUnavailable("the wordllama model files in the installed package cannot be read") from None
    table = np.ascontiguousarray(inference.embedding, dtype=np.float32)
    tokenizer = inference.tokenizer
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if table.shape[1] != DIM:
        raise ModelUnavailable(f"the wordllama model has {table.shape[1]} dimensions, not {DIM}")
    return table, tokenizer


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
