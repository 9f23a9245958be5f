"""Generations: publishing a set of files as one atomic step behind a single pointer.

Several files that must change together (an account's canonical data, meta and rejects;
later a client's chart folder) cannot be swapped by one ``os.replace`` each: a reader
between two renames would see a mix. A :class:`GenerationStore` keeps every version of the
set in its own numbered folder and one pointer file that names the current one; replacing
the pointer is the only commit step, so a reader sees the old set or the new one, never a
mix, and needs no repair step first.

Layout of a store named ``NAME`` in ``FOLDER``::

    FOLDER/.NAME.gen/CURRENT            {"format": 1, "generation": N}: the pointer
    FOLDER/.NAME.gen/g000007/...        generation 7: never changed once published
    FOLDER/.NAME.gen/.g000008.partial/  a generation being written (or left by a kill)
    FOLDER/.NAME.gen/.g000005.trash/    an old generation being deleted
    FOLDER/<file>                       with ``mirror=True``: hard links to the current
                                        generation's files under their plain names

**Writer** (holds the workspace lock, so one writer per store)::

    with store.stage() as gen:          # a fresh .gNNNNNN.partial folder
        write gen.path("a.jsonl"), ...  # or gen.carry("b.json") from the current generation
        gen.commit()                    # fsync, rename to gNNNNNN, replace CURRENT, mirrors, GC

Leaving the block without ``commit`` (an exception, a full disk) deletes the partial folder,
so nothing half-written stays. ``commit`` is: fsync every file and the folder, rename it to
its final name, fsync, then write ``CURRENT`` atomically (temp file, fsync, ``os.replace``,
fsync): that replace is the commit point. After it the mirrors are re-linked and old
generations removed; the current one and the one before it are kept, so a reader that
resolved the previous pointer an instant before the swap can still open its files.

**Reader** (no lock): :meth:`GenerationStore.current` names the current generation's folder;
:meth:`GenerationStore.open` opens several of its files together and retries when a
generation disappears under it (garbage-collected by a later writer), so the handles it
returns always belong to one generation. Open files stay readable after an unlink.

**Recovery**: :meth:`GenerationStore.recover` (writers, under the lock) removes partial and
orphaned generations (complete folders the pointer never named) and re-links the mirrors.
A store without ``CURRENT`` (a workspace written before generations existed, or a
hand-made fixture) is read from the plain names in ``FOLDER`` as generation 0.

Mirrors exist because DESIGN.md fixes plain paths (``canonical/{source}/{account}.jsonl``)
for people and scripts; they follow the pointer within the same publish, but only the
pointer is atomic across files, so consistent readers go through the store.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.store.fsutil import atomic_write_json, ensure_dir, fsync_dir, read_json

POINTER = "CURRENT"
GEN_NAME = re.compile(r"g(\d{6,})")
PARTIAL_NAME = re.compile(r"\.g(\d{6,})\.(?:partial|trash)")
LINK_NAME = re.compile(r"\.(.+)\.link-\d+")
READ_RETRIES = 8


class GenerationMissing(Exception):
    """A reader could not pin one generation (it kept disappearing): retry later."""


class NotAFile(OSError):
    """A name in a generation is not a regular file (a FIFO or folder planted there)."""


def _open_regular(path: Path) -> IO[bytes]:
    """Open a regular file for reading; never blocks on a FIFO (raises NotAFile instead)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotAFile(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class Generation:
    """One published (or legacy, number 0) generation: its number and folder."""

    number: int
    folder: Path

    def path(self, name: str) -> Path:
        """Where the file ``name`` of this generation lives."""
        return self.folder / name

    def names(self) -> list[str]:
        """The names of the files this generation holds."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if not p.name.startswith("."))


class GenerationStore:
    """Numbered generations of a set of files in ``folder``, named ``name``."""

    def __init__(self, folder: Path, name: str, *, mirror: bool = True,
                 legacy: tuple[str, ...] = (), owned: tuple[str, ...] = ()) -> None:
        self.folder, self.name, self.mirror = folder, name, mirror
        self.legacy = legacy
        """Plain names read as generation 0 when no pointer exists yet."""
        self.owned = (*legacy, *owned)
        """Every plain name the mirrors may hold: one the current generation lacks is removed."""

    @property
    def root(self) -> Path:
        """``FOLDER/.NAME.gen``: every generation and the pointer."""
        return self.folder / f".{self.name}.gen"

    @property
    def pointer(self) -> Path:
        """The pointer file; replacing it is the commit point."""
        return self.root / POINTER

    def gen_folder(self, number: int) -> Path:
        """The folder of generation ``number``."""
        return self.root / f"g{number:06d}"

    # -- reading ---------------------------------------------------------------------------

    def current_number(self) -> int | None:
        """The generation the pointer names, or None without a (readable) pointer."""
        try:
            data = read_json(self.pointer)
        except (OSError, ValueError):
            return None
        number = data.get("generation") if isinstance(data, dict) else None
        return number if isinstance(number, int) and number > 0 else None

    def current(self) -> Generation | None:
        """The current generation; the plain names (number 0) without a pointer; else None."""
        number = self.current_number()
        if number is not None:
            return Generation(number, self.gen_folder(number))
        if any((self.folder / n).exists() for n in self.legacy):
            return Generation(0, self.folder)
        return None

    @contextmanager
    def open(self, *names: str) -> Iterator[tuple[Generation, dict[str, IO[bytes] | None]]]:
        """Open ``names`` of the current generation together (None for a file it lacks).

        Retries when the generation is removed between reading the pointer and opening its
        files, so every handle belongs to the same generation. Raises
        :class:`GenerationMissing` when there is no generation at all.
        """
        for _ in range(READ_RETRIES):
            gen = self.current()
            if gen is None:
                raise GenerationMissing(self.name)
            handles: dict[str, IO[bytes] | None] = {}
            for n in names:
                try:
                    handles[n] = _open_regular(gen.path(n))
                except (FileNotFoundError, NotADirectoryError):
                    handles[n] = None
                except NotAFile:
                    _close(handles)
                    raise
            # a generation only ever leaves by a rename (see _collect): if its folder is
            # still there now, it was there for every open above, and a None is a real absence
            if gen.number == 0 or gen.folder.is_dir():
                try:
                    yield gen, handles
                finally:
                    _close(handles)
                return
            _close(handles)
        raise GenerationMissing(self.name)

    # -- writing ---------------------------------------------------------------------------

    @contextmanager
    def stage(self) -> Iterator[Staged]:
        """A new partial generation; removed again unless :meth:`Staged.commit` ran."""
        ensure_dir(self.root)
        self.recover(relink=False)
        number = max([self.current_number() or 0, *self._numbers()]) + 1
        partial = self.root / f".g{number:06d}.partial"
        ensure_dir(partial)
        staged = Staged(self, number, partial)
        try:
            yield staged
        finally:
            if not staged.committed:
                shutil.rmtree(partial, ignore_errors=True)
                with contextlib.suppress(OSError):
                    self.root.rmdir()  # only when empty: a store that never published anything

    def recover(self, *, relink: bool = True) -> bool:
        """Remove partial and orphaned generations and (``relink``) re-link the mirrors.

        Writers only.

        Returns True when anything was left over from an interrupted writer.
        """
        if not self.root.is_dir():
            return False
        current = self.current_number() or 0
        found = self._drop_partials()
        for number in self._numbers():
            if number > current:  # complete, but the pointer never named it
                trash = self.root / f".g{number:06d}.trash"
                os.rename(self.gen_folder(number), trash)
                shutil.rmtree(trash, ignore_errors=True)
                found = True
        for tmp in self.root.glob(f".{POINTER}.tmp-*"):
            tmp.unlink(missing_ok=True)
            found = True
        names = set(self.owned) | set(Generation(current, self.gen_folder(current)).names())
        for p in self.folder.iterdir():
            m = LINK_NAME.fullmatch(p.name)
            if m and m.group(1) in names:  # a mirror link a killed writer did not finish
                p.unlink(missing_ok=True)
                found = True
        if current and relink:
            found = self._sync_mirrors(self.gen_folder(current), None) or found
        return found

    def mirrors_current(self) -> bool:
        """True when every plain name is a link to the current generation's file (or absent
        from both); always True without mirrors or for the legacy generation 0."""
        gen = self.current()
        if not self.mirror or gen is None or gen.number == 0:
            return True
        names = set(gen.names()) | set(self.owned)
        for n in names:
            try:
                a = (self.folder / n).stat()
            except FileNotFoundError:
                a = None
            try:
                b = gen.path(n).stat()
            except FileNotFoundError:
                b = None
            if (a is None) != (b is None) or (a is not None and b is not None
                                              and not os.path.samestat(a, b)):
                return False
        return True

    def _numbers(self) -> list[int]:
        if not self.root.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.root.iterdir()
                      if (m := GEN_NAME.fullmatch(p.name)) and p.is_dir())

    def _drop_partials(self) -> bool:
        found = False
        for p in self.root.iterdir():
            if PARTIAL_NAME.fullmatch(p.name):
                shutil.rmtree(p, ignore_errors=True)
                found = True
        return found

    def _sync_mirrors(self, new: Path, old: Path | None) -> bool:
        """Hard-link every file of ``new`` under its plain name; drop names only ``old`` had."""
        if not self.mirror:
            return False
        changed = False
        names = {p.name for p in new.iterdir() if not p.name.startswith(".")}
        for n in sorted(names):
            plain, src = self.folder / n, new / n
            try:
                if os.path.samestat(plain.stat(), src.stat()):
                    continue
            except FileNotFoundError:
                pass
            tmp = self.folder / f".{n}.link-{os.getpid()}"
            tmp.unlink(missing_ok=True)
            os.link(src, tmp)
            os.replace(tmp, plain)
            changed = True
        stale = set(self.owned)
        if old is not None and old.is_dir():
            stale |= {p.name for p in old.iterdir() if not p.name.startswith(".")}
        for n in sorted(stale - names):
            if (self.folder / n).exists():
                (self.folder / n).unlink()
                changed = True
        if changed:
            fsync_dir(self.folder)
        return changed

    def _collect(self, current: int, previous: int | None) -> None:
        """Remove every generation but ``current`` and ``previous``.

        Each is first renamed to a hidden ``.gNNNNNN.trash`` (one atomic step), so a reader
        that still finds a generation's folder under its name knows it is whole.
        """
        keep = {current, previous}
        for number in self._numbers():
            if number not in keep:
                trash = self.root / f".g{number:06d}.trash"
                os.rename(self.gen_folder(number), trash)
                shutil.rmtree(trash, ignore_errors=True)


class Staged:
    """A generation being written; see :meth:`GenerationStore.stage`."""

    def __init__(self, store: GenerationStore, number: int, folder: Path) -> None:
        self.store, self.number, self.folder = store, number, folder
        self.committed = False

    def path(self, name: str) -> Path:
        """Where to write ``name`` (a file or a folder; no ``/``) in the new generation."""
        if "/" in name or name.startswith(".") or not name:
            raise ValueError(f"not a plain name: {name!r}")
        return self.folder / name

    def carry(self, name: str) -> bool:
        """Hard-link ``name`` from the current generation into this one; False if it has none."""
        gen = self.store.current()
        if gen is None or not gen.path(name).is_file():
            return False
        os.link(gen.path(name), self.path(name))
        return True

    def commit(self) -> None:
        """Make this generation current (the single atomic step), then mirrors and GC."""
        for top, _dirs, files in os.walk(self.folder, topdown=False):  # folders too (charts)
            for n in files:
                fd = os.open(os.path.join(top, n), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_dir(Path(top))
        final = self.store.gen_folder(self.number)
        previous = self.store.current()
        os.rename(self.folder, final)
        self.committed = True
        try:
            fsync_dir(self.store.root)
            atomic_write_json(self.store.pointer, {"format": 1, "generation": self.number})
        except BaseException:
            if self.store.current_number() != self.number:  # not committed: free the space now
                shutil.rmtree(final, ignore_errors=True)
                for tmp in self.store.root.glob(f".{POINTER}.tmp-*"):
                    tmp.unlink(missing_ok=True)
            raise
        old = previous.folder if previous is not None and previous.number else None
        self.store._sync_mirrors(final, old)
        self.store._collect(self.number, previous.number if previous is not None else None)


def _close(handles: dict[str, IO[bytes] | None]) -> None:
    for fh in handles.values():
        if fh is not None:
            fh.close()
