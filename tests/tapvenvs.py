"""Real PyPI taps (and Meltano) for integration tests, each in its own cached venv.

The project's own environment never gets a tap installed into it: every tool lives in
``${XDG_CACHE_HOME:-~/.cache}/lorchestra/test-taps/NAME-VERSION/`` (a plain ``python -m venv``
plus ``pip install NAME==VERSION``), built once and reused by later runs. A file lock
beside each venv makes parallel test processes wait for one builder instead of racing;
a ``.complete`` marker written last means a half-built venv (killed builder) is rebuilt.
If PyPI cannot be reached the caller skips with that reason; anything else fails.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MARKER = ".complete"
PIP_TIMEOUT_S = 900


class RegistryUnreachable(Exception):
    """pip could not reach the package index (the tests that need it skip)."""


@dataclass(frozen=True)
class ToolVenv:
    """A cached venv holding one PyPI package."""

    root: Path
    seconds_to_build: float | None
    """How long this call spent building it (None when it came from the cache)."""

    @property
    def bin(self) -> Path:
        """The venv's bin folder."""
        return self.root / "bin"

    def exe(self, name: str) -> str:
        """The path of a console script installed in the venv."""
        path = self.bin / name
        if not path.exists():
            raise FileNotFoundError(f"{name} is not installed in {self.root}")
        return str(path)


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/lorchestra/test-taps``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "lorchestra" / "test-taps"


def tool_venv(name: str, version: str, *extra: str) -> ToolVenv:
    """The venv with ``name==version`` (plus ``extra`` requirements), built if missing."""
    root = cache_root() / f"{name}-{version}"
    root.parent.mkdir(parents=True, exist_ok=True)
    if (root / MARKER).exists():
        return ToolVenv(root, None)
    with open(root.parent / f"{name}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it: wait for it
        if (root / MARKER).exists():
            return ToolVenv(root, None)
        started = time.monotonic()
        _build(root, [f"{name}=={version}", *extra])
        return ToolVenv(root, round(time.monotonic() - started, 1))


def _build(root: Path, requirements: list[str]) -> None:
    if root.exists():
        shutil.rmtree(root)  # a builder died half-way: start again
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-input", *requirements]
    res = subprocess.run(pip, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        text = res.stdout + res.stderr
        if _looks_offline(text) or not _index_reachable(requirements[0].split("==")[0]):
            raise RegistryUnreachable(f"PyPI is unreachable, cannot install {' '.join(requirements)}")
        raise RuntimeError(f"pip install {' '.join(requirements)} failed:\n{text[-4000:]}")
    (root / MARKER).write_text(" ".join(requirements) + "\n")


def _looks_offline(text: str) -> bool:
    signs = ("Temporary failure in name resolution", "Failed to establish a new connection",
             "Network is unreachable", "Connection refused", "Max retries exceeded",
             "NewConnectionError", "ConnectTimeoutError")
    return any(s in text for s in signs)


def _index_url() -> str:
    """The package index pip uses (``$PIP_INDEX_URL``, pip's config, else PyPI)."""
    url = os.environ.get("PIP_INDEX_URL", "")
    if not url:
        res = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True)
        url = res.stdout.strip() if res.returncode == 0 else ""
    return (url or "https://pypi.org/simple").rstrip("/")


def _index_reachable(name: str) -> bool:
    """Whether the index answers at all for ``name`` (an HTTP error still is an answer)."""
    try:
        urllib.request.urlopen(f"{_index_url()}/{name}/", timeout=15).close()
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True
