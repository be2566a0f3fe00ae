"""Structure files read with bounds: frame counts and claimed atom counts are checked before ASE parses.

ASE's (ext)xyz reader indexes a file by reading one line per atom that each
frame's header claims, whether or not the lines exist: a three-line file whose
header claims 999999999999 atoms keeps it busy for hours. Here the headers are
read first, with the claim checked against the bytes that follow (an atom
needs a line of at least :data:`MIN_ATOM_LINE` bytes) and the lines skipped in
bulk, which also counts the frames without parsing them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..raster import StructureError

__all__ = ["MIN_ATOM_LINE", "xyz_frame_sizes", "read_frames"]

#: Fewest bytes of an atom's line in an (ext)xyz file: ``"C 0 0 0\n"``.
MIN_ATOM_LINE = 8
_COMPRESSED = (".gz", ".bz2", ".xz")


def _skip_lines(fh, pos: int, k: int, size: int) -> tuple[int, int]:
    """``(position after the k-th line from pos, lines found)``; fewer than ``k`` found at the end of the file."""
    found, chunk = 0, 4096
    while found < k:
        fh.seek(pos)
        data = fh.read(min(chunk, 1 << 24))
        if not data:
            return pos, found
        lines = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
        if found + lines.size >= k:
            return pos + int(lines[k - found - 1]) + 1, k
        found += lines.size
        pos += len(data)
        if pos >= size and not data.endswith(b"\n"):  # a last line without a newline
            return size, found + 1
        chunk *= 4
    return pos, found


def xyz_frame_sizes(path: str | os.PathLike) -> list[int] | None:
    """Atoms claimed by each frame of an (ext)xyz file, each claim checked against the file.

    Returns
    -------
    list of int or None
        One count per frame, in file order (as ASE counts frames: up to the
        first blank line); None when the file does not start with an atom
        count (ASE then says what is wrong).

    Raises
    ------
    StructureError
        A frame claims a negative number of atoms, more atoms than the bytes
        after its header can hold, or more than the file has lines for.
    """
    path = Path(path)
    size = path.stat().st_size
    sizes: list[int] = []
    with open(path, "rb") as fh:
        pos = 0
        while True:
            fh.seek(pos)
            line = fh.readline(256)
            if not line.strip():
                return sizes
            try:
                n = int(line)
            except ValueError:
                return sizes or None  # ASE reports a frame that does not start with a count
            pos += len(line)
            frame = f"{path}: frame {len(sizes)}" if sizes else f"{path}:"
            if n < 0:
                raise StructureError(f"{frame} header claims {n} atoms")
            if n * MIN_ATOM_LINE > size - pos + 1:
                raise StructureError(
                    f"{frame} header claims {n:,} atoms, but only {size - pos:,} bytes follow it (an atom's line "
                    f"needs at least {MIN_ATOM_LINE}); the atom count on its first line is wrong or the file is cut "
                    f"short"
                )
            pos, found = _skip_lines(fh, pos, n + 1, size)  # comment line and atoms
            if found < n + 1:
                raise StructureError(f"{frame} header claims {n:,} atoms, but the file ends after "
                                     f"{max(found - 1, 0):,} atom lines")
            for _ in range(3):  # extxyz may follow a frame with up to three VEC lines
                fh.seek(pos)
                line = fh.readline(256)
                if not line.lstrip().startswith(b"VEC"):
                    break
                pos, _ = _skip_lines(fh, pos, 1, size)
            sizes.append(n)


def read_frames(path: str | os.PathLike, max_frames: int | None = None,
                takes: str = "this command takes one") -> list:
    """The structures (ASE ``Atoms``) of a file, read with bounds; one clear error per way a file can be wrong.

    Parameters
    ----------
    path : path
        Any ASE-readable structure file; (ext)xyz headers are checked first
        (:func:`xyz_frame_sizes`).
    max_frames : int, optional
        Refuse a file with more structures than this, without parsing them.
    takes : str
        What refuses them and how many it takes, for the message (e.g.
        ``"evaluate and rasterize take one"``).

    Raises
    ------
    StructureError
        The file is missing, empty, unreadable, holds no structure or more than ``max_frames``.
    """
    import ase.io
    from ase.io.formats import filetype

    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file not found: {path}")
    if not path.is_file():
        raise StructureError(f"structure file is not a file: {path}")
    if path.stat().st_size == 0:
        raise StructureError(f"structure file is empty: {path}")
    try:
        fmt = filetype(str(path))
    except Exception:  # unknown formats: ase.io.read gives the reason below
        fmt = None
    index = ":" if max_frames is None else f":{max_frames + 1}"
    if fmt in ("extxyz", "xyz") and not path.name.endswith(_COMPRESSED):
        sizes = xyz_frame_sizes(path)
        if sizes is not None and max_frames is not None and len(sizes) > max_frames:
            raise StructureError(_too_many(path, f"{len(sizes):,}", takes))
    try:
        frames = ase.io.read(path, index=index, format=fmt)
    except MemoryError:
        raise StructureError(f"cannot read structures from {path}: it claims more atoms than fit in memory") from None
    except Exception as exc:  # ASE raises many types for unreadable files
        raise StructureError(f"cannot read structures from {path} ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise StructureError(f"no structures in {path}")
    if max_frames is not None and len(frames) > max_frames:
        raise StructureError(_too_many(path, f"{max_frames + 1} or more", takes))
    return frames


def _too_many(path: Path, count: str, takes: str) -> str:
    return (f"{path} holds {count} structures; {takes} (predict takes many; pick one with "
            f"`ase convert -n 0 {path} one.extxyz`)")
