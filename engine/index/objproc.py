"""The object writer's helper process: object files created on a core of their own, without the GIL.

Why a process: creating a file is kernel work that releases the GIL, but each of the three
calls per object (``open``, ``write``, ``close``) must take the GIL back to return, and in
the index worker the GIL is busy (the reading thread parses and derives, the insert thread
binds rows, the embedding thread gathers vectors): measured on a 50,000-document first load,
the writer threads spent most of the load waiting for it, so the objects took 3.2 s of
wall beside 2.1 s of CPU. A helper process has no one to wait for. The worker hands it
batches through a pipe (one ``write`` per batch, by a sending thread), and gets back one
result when it closes the pipe: objects written, bytes, repairs, or the ``errno`` that
stopped it, which the worker raises as the same ``OSError`` a thread would have (so
``DISK_FULL`` and ``WRITE_FAILED`` keep their meaning).

The helper imports only :mod:`engine.index.objfiles` and the standard library. It never
outlives the worker: it asks Linux to kill it when its parent dies (``PR_SET_PDEATHSIG``),
and in any case its only input is the worker's pipe, so it stops at the end of that input.
What it wrote and no row names yet is what a killed thread would have left: files that a
later load compares byte for byte before it trusts them.

Frames on the pipe: ``<count:u32><payload bytes:u32>`` then, per object,
``<sha256 hex:64 bytes><length:u32><bytes>``. The answer: ``<errno:i64><written:i64>
<bytes:i64><repaired:i64>`` (errno 0 when every object was stored).

    python -m engine.index.objproc OBJECTS_DIR PARENT_PID   (started by ObjectWriter, never by hand)
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from engine.index.objfiles import Batch, write_all, write_batch
from engine.store.fsutil import secure_umask

FRAME = struct.Struct("<II")
ITEM = struct.Struct("<64sI")
RESULT = struct.Struct("<qqqq")
ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``engine`` package, put on the helper's ``PYTHONPATH``."""


def encode(batch: Batch) -> bytes:
    """One frame holding ``batch``."""
    parts: list[bytes] = []
    size = 0
    for sha256, data in batch:
        parts.append(ITEM.pack(sha256.encode("ascii"), len(data)))
        parts.append(data)
        size += ITEM.size + len(data)
    return FRAME.pack(len(batch), size) + b"".join(parts)


def decode(payload: bytes, count: int) -> Batch:
    """The objects of one frame's payload."""
    out: Batch = []
    at = 0
    for _ in range(count):
        sha, length = ITEM.unpack_from(payload, at)
        at += ITEM.size
        out.append((sha.decode("ascii"), payload[at:at + length]))
        at += length
    if at != len(payload):
        raise ValueError("a frame's payload does not match its objects")
    return out


class Helper:
    """The worker's side: a started helper, fed batches, asked for its result once."""

    def __init__(self, objects: Path) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-m", "engine.index.objproc", str(objects), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        assert self.proc.stdin is not None
        self._fd = self.proc.stdin.fileno()

    def send(self, batch: Batch) -> int:
        """Hand ``batch`` over (blocks while the pipe is full); the number of objects sent.

        A helper that stopped on an error closes its end: its errno is raised here.
        """
        if self.proc is None:  # its result was taken after an error: the pipe is closed
            raise OSError(errno.EPIPE, "the object writer's helper process has stopped")
        try:
            write_all(self._fd, encode(batch))
        except BrokenPipeError:
            self.result()  # raises the helper's own error
            raise OSError(errno.EPIPE, "the object writer's helper process stopped early") from None
        return len(batch)

    def result(self) -> tuple[int, int, int]:
        """Close the input, wait for the helper; (written, bytes, repaired), or its OSError."""
        proc, self.proc = self.proc, None
        if proc is None:
            raise OSError(errno.EPIPE, "the object writer's helper process is gone")
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        answer = proc.stdout.read()
        proc.stdout.close()
        code = proc.wait()
        if len(answer) != RESULT.size:
            raise OSError(errno.EIO, f"the object writer's helper process ended without its result (exit {code})")
        err, written, size, repaired = RESULT.unpack(answer)
        if err:
            raise OSError(err, os.strerror(err))
        return written, size, repaired

    def terminate(self) -> None:
        """SIGKILL the helper (safe from any thread): a :meth:`send` blocked on the pipe then
        fails at once. The pipes stay open until :meth:`kill`, so no descriptor a sending
        thread still holds can be reused meanwhile."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.kill()

    def kill(self) -> None:
        """Stop the helper now (an error or a cancel in the worker); its files stay unnamed.

        Only once no thread sends any more (the sender's pool is shut down first)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or None at the end of the input (a partial frame counts as the end)."""
    data = stream.read(size)
    return data if len(data) == size else None


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the worker dies; exit at once if it already has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str]) -> int:
    """Read frames from stdin until it ends, store their objects, answer once on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the worker's to handle
    secure_umask()  # as the worker's: files 0600, folders 0700 whatever the caller's umask
    _die_with_parent(int(argv[1]))
    root = os.open(argv[0], os.O_RDONLY | os.O_DIRECTORY)
    suffix = f".tmp-{os.getpid()}"
    totals = [0, 0, 0]
    err = 0
    stream = os.fdopen(0, "rb", buffering=1 << 20)
    try:
        while (head := _read_exact(stream, FRAME.size)) is not None:
            count, size = FRAME.unpack(head)
            payload = _read_exact(stream, size)
            if payload is None:
                break  # the worker died mid-frame
            for i, n in enumerate(write_batch(root, decode(payload, count), suffix)):
                totals[i] += n
    except OSError as exc:
        err = exc.errno or errno.EIO
    try:
        os.write(1, RESULT.pack(err, *totals))
    except BrokenPipeError:  # the worker stopped listening (its cancel): nothing to tell
        return 1
    return 1 if err else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
