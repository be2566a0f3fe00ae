"""What ednn-dask writes: stores it can recognise as its own, replaced only when safe, one writer at a time.

Every Zarr store the package writes (a raster, a tile map) carries the root
attribute ``ednn_dask = {"kind": ..., "version": ...}``. ``--overwrite``
replaces a path only when it is such a store of the same kind and is
neither an input of the run nor a folder holding one; anything else of
the user's is left alone with one clear error. A run takes
:class:`OutputLock` on its output first, so two runs never write one store.
Files and stores are written at a temporary path beside their final one and
renamed only when complete (:func:`atomic_path`).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from . import __version__
from .errors import EDNNError

__all__ = ["OutputError", "MARKER", "marker", "store_kind", "check_output", "check_file_output", "remove_store",
           "replace_store", "OutputLock", "temporary_path", "atomic_path"]

#: Root attribute naming the writer of a store.
MARKER = "ednn_dask"


class OutputError(EDNNError, ValueError):
    """An output path that cannot be written or replaced safely (message is for users)."""


def marker(kind: str) -> dict[str, dict[str, str]]:
    """Root attributes that mark a store as written by ednn-dask (``kind``: ``"raster"`` or ``"tile-map"``)."""
    return {MARKER: {"kind": kind, "version": __version__}}


def store_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` of an ednn-dask store at ``path``, or ``None`` when it is not one.

    Reads only the group's ``zarr.json`` (no chunk, nothing written).
    """
    meta = Path(path) / "zarr.json"
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    mark = attrs.get(MARKER) if isinstance(attrs, dict) else None
    return mark.get("kind") if isinstance(mark, dict) else None


def _related(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are the same path or one lies inside the other."""
    return a == b or a in b.parents or b in a.parents


def _check_not_an_input(out, resolved: Path, inputs: Iterable[str | os.PathLike]) -> None:
    for source in inputs:
        if _related(resolved, Path(source).expanduser().resolve()):
            raise OutputError(f"output {out} would overwrite the input {source}; choose another output path")


def check_output(out: str | os.PathLike, kind: str, inputs: Iterable[str | os.PathLike] = (),
                 overwrite: bool = False) -> Path:
    """Check that ``out`` may be written by a run reading ``inputs``; return it resolved.

    Refused: ``out`` equal to, inside, or holding an input; an existing
    ``out`` without ``overwrite``; with ``overwrite``, an existing ``out``
    that is not an ednn-dask store of this ``kind`` (a user's folder, the
    working directory, a file); a parent folder that is missing or not
    writable. Nothing is changed on disk.

    Raises
    ------
    OutputError
    """
    path = Path(out).expanduser().absolute()
    resolved = path.resolve()
    _check_not_an_input(out, resolved, inputs)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputError(f"{out} exists; remove it or pass --overwrite")
        if path.is_symlink() or not path.is_dir() or store_kind(path) != kind:
            raise OutputError(f"{out} exists and is not a {kind} store written by ednn-dask; "
                              "--overwrite replaces only those: remove it yourself or choose another path")
        if resolved in Path.cwd().resolve().parents or resolved == Path.cwd().resolve():
            raise OutputError(f"{out} is the working directory or holds it; choose another output path")
    _check_writable_folder(out, path.parent)
    return path


def _check_writable_folder(out, parent: Path) -> None:
    """The folder exists and a file can be created in it (a probe, since root passes every ``os.access``)."""
    import tempfile

    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: folder {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ednn-dask-probe-", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: folder {parent} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_file_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False,
                      suffix: str | None = None) -> Path:
    """Check that a single output file (a PNG, ...) may be written; return it.

    Refused: a wrong ``suffix``, an input's path, a directory, an existing
    file without ``overwrite``, a missing or read-only parent folder.
    """
    path = Path(out).expanduser().absolute()
    if suffix and path.suffix.lower() != suffix:
        raise OutputError(f"{out}: the file name must end in {suffix}")
    _check_not_an_input(out, path.resolve(), inputs)
    if path.is_dir():
        raise OutputError(f"{out} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{out} exists; remove it or pass --overwrite")
    _check_writable_folder(out, path.parent)
    return path


def remove_store(path: str | os.PathLike, kind: str) -> None:
    """Delete an ednn-dask store of ``kind`` at ``path``; refuse anything else."""
    path = Path(path)
    if not path.exists():
        return
    if path.is_symlink() or store_kind(path) != kind:
        raise OutputError(f"refusing to delete {path}: not a {kind} store written by ednn-dask")
    shutil.rmtree(path)


def temporary_path(path: str | os.PathLike) -> Path:
    """Where :func:`atomic_path` writes ``path`` until it is complete: ``.tmp-<name>`` in the same folder."""
    path = Path(path)
    return path.with_name(f".tmp-{path.name}")


@contextmanager
def atomic_path(path: str | os.PathLike, kind: str | None = None, overwrite: bool = True) -> Iterator[Path]:
    """Write ``path`` all at once: yield :func:`temporary_path`, moved onto ``path`` when the block succeeds.

    The block writes a file or a folder at the yielded path (its name keeps the suffix of ``path``).
    When the block returns, a file is moved onto ``path`` with ``os.replace`` (atomic within a file
    system: a reader sees the old or the new content, never a part); with ``kind``, the yielded path
    is a store of that kind and replaces an older one of ours with :func:`replace_store`. When the
    block or the move raises (interrupts included), what it left at the temporary path is removed, the
    old ``path`` is untouched, and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        The final file or store.
    kind : str, optional
        ``ednn_dask.kind`` of the store written (``"raster"``, ...); ``None`` for a file.
    overwrite : bool
        For a file: ``False`` refuses a ``path`` that exists when the new file is moved in (one
        that appeared while it was written) with :class:`OutputError`, leaving that one alone.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        if kind is not None:
            replace_store(tmp, path, kind)
        elif overwrite:
            os.replace(tmp, path)
        else:
            _move_new(tmp, path)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _move_new(tmp: Path, path: Path) -> None:
    """Move the file ``tmp`` to ``path``, which must not exist: a hard link fails atomically if it does."""
    appeared = OutputError(f"{path} appeared while it was being written; remove it or pass --overwrite")
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise appeared from None
    except OSError:  # a file system without hard links: check, then move
        if path.exists() or path.is_symlink():
            raise appeared from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def replace_store(new: str | os.PathLike, final: str | os.PathLike, kind: str) -> None:
    """Move the complete store ``new`` onto ``final``, where an older store of ours of ``kind`` may stand.

    The old store is renamed aside (``.old-<name>``) before the new one moves in and deleted after, so at
    every moment ``final`` is the old store or the new one, never half of either; a store there that is
    not ours is refused. An aside left by a run that died between the two renames is removed first.
    """
    new, final = Path(new), Path(final)
    aside = final.with_name(f".old-{final.name}")
    remove_store(aside, kind)
    if not (final.exists() or final.is_symlink()):
        os.replace(new, final)
        return
    if final.is_symlink() or store_kind(final) != kind:
        raise OutputError(f"refusing to replace {final}: not a {kind} store written by ednn-dask")
    os.replace(final, aside)
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


class OutputLock:
    """An exclusive lock on an output path, held while a run writes it.

    The lock is ``.<name>.lock`` beside the output, taken with ``flock``
    (released by the kernel if the process dies) and holding the owner's
    host, pid and start time, which a refused second run reports.
    """

    def __init__(self, out: str | os.PathLike):
        out = Path(out)
        self.path = out.with_name(f".{out.name}.lock")
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                raise OutputError(f"cannot lock {self.out}: {self.path} cannot be created ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"{self.out} is being written by another ednn-dask run ({holder}); "
                                      "wait for it to finish or choose another output path") from None
                raise OutputError(f"cannot lock {self.out} ({exc.strerror})") from None
            try:  # the file may have been unlinked by the previous holder between open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        os.ftruncate(fd, 0)
        os.write(fd, info.encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown process"
