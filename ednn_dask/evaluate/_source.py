"""What the evaluator reads: a Zarr raster, a structure file drawn on the fly, or an array.

Every source becomes a lazy Dask array ``(C, H, W)`` plus attributes
(``spacing``, ``n_atoms``, ...) and a fingerprint that identifies its
content for resuming. All checks that need no pixels run here, before any
cluster starts.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._errors import EvaluationError

__all__ = ["Source", "open_raster", "open_source", "check_against_model", "aligned_chunks"]


@dataclass
class Source:
    """A lazy raster and what is known about it without reading pixels.

    Attributes
    ----------
    array : dask.array.Array
        ``(C, H, W)`` float pixels.
    attrs : dict
        ``spacing`` (Å, ``[h_y, h_x]``), ``n_atoms``, registration, ...
    identify : callable
        Returns the sha256 identifying the content (file bytes, Zarr chunk
        listing, or the array's Dask token); see :attr:`fingerprint`.
    path : str or None
        The file or store read, if any.
    atoms : AtomsRef or None
        For structure files: what workers rasterize chunk by chunk.
    """

    array: Any
    attrs: dict[str, Any]
    identify: Callable[[], str]
    path: str | None = None
    atoms: Any = None
    kind: str = "array"
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def registration(self) -> dict[str, Any]:
        """The lattice registration applied to the atoms (``registration_shift``, ``registration_mirror_y``), if any."""
        return {k: self.attrs[k] for k in ("registration_shift", "registration_mirror_y") if k in self.attrs}

    @property
    def fingerprint(self) -> str:
        """sha256 identifying the content, computed on first use (only runs that write ``--out`` need it)."""
        if self._fingerprint is None:
            self._fingerprint = self.identify()
        return self._fingerprint


def aligned_chunks(size: int, focus: int, context: int, target: int) -> tuple[int, ...]:
    """Split ``size`` pixels into chunks that are multiples of ``focus``, near ``target``, none below ``context``.

    The last chunk may be smaller (but stays a multiple of ``focus``); when it
    would fall below ``context`` it is merged into its neighbour, because a
    periodic overlap of depth ``c`` needs every chunk to hold ``c`` pixels.
    """
    step = max(focus, (target // focus) * focus)
    step = max(step, -(-context // focus) * focus)
    chunks = [step] * (size // step)
    rest = size - sum(chunks)
    if rest:
        chunks.append(rest)
    if len(chunks) > 1 and chunks[-1] < context:
        last = chunks.pop()
        chunks[-1] += last
    return tuple(chunks)


# ---------------------------------------------------------------- Zarr rasters

_NODES: dict[tuple, Any] = {}


def _store_token(path: str, shape, chunks) -> tuple:
    """What identifies the store a reader opens: path, shape, chunks and the array metadata file's inode and mtime.

    Part of every read task, so a store replaced at the same path is opened afresh (and gets other Dask keys).
    """
    for meta in (Path(path) / "raster" / "zarr.json", Path(path) / "zarr.json"):
        if meta.is_file():
            st = meta.stat()
            return (path, tuple(shape), tuple(chunks), st.st_ino, st.st_mtime_ns)
    return (path, tuple(shape), tuple(chunks))


def _zarr_node(token: tuple):
    """The raster array of the store ``token`` names (opened once per process and store)."""
    node = _NODES.get(token)
    if node is None:
        import zarr

        node = zarr.open(token[0], mode="r")
        if isinstance(node, zarr.Group):
            node = node["raster"]
        if tuple(node.shape) != token[1] or tuple(node.chunks) != token[2]:
            raise EvaluationError(f"{token[0]} changed while it was being evaluated; run again")
        _NODES[token] = node
    return node


def _read_block(token: tuple, block_info=None) -> np.ndarray:
    """One chunk of the raster ``token`` names; a chunk that cannot be decoded is an input error, not a crash.

    Errors of the machine rather than of the file (memory, I/O, a stale file handle) pass through, so an
    interrupted run keeps its finished chunks for resuming.
    """
    loc = block_info[None]["array-location"]
    try:
        block = np.asarray(_zarr_node(token)[tuple(slice(a, b) for a, b in loc)])
    except (EvaluationError, MemoryError, OSError):
        raise
    except Exception as exc:  # codecs raise many types for a corrupt chunk
        where = " x ".join(f"{a}:{b}" for a, b in loc)
        raise EvaluationError(f"cannot read pixels [{where}] of {token[0]} "
                              f"({type(exc).__name__}: {exc}); the raster is damaged") from None
    if block.shape != tuple(b - a for a, b in loc):
        raise EvaluationError(f"{token[0]} changed while it was being evaluated; run again")
    return block


def _chunk_listing(root: Path) -> list[tuple[str, int, int]]:
    """``(key, size, mtime_ns)`` of every file under a local Zarr store, sorted."""
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out.append((os.path.relpath(os.path.join(dirpath, name), root), st.st_size, st.st_mtime_ns))
    return sorted(out)


def _check_attrs(path: str, attrs: dict[str, Any]) -> None:
    n = attrs.get("n_atoms")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0):
        raise EvaluationError(f"{path}: attribute n_atoms must be a positive integer, got {n!r}")
    spacing = attrs.get("spacing")
    if spacing is not None:
        try:
            values = np.broadcast_to(np.asarray(spacing, dtype=float), (2,))
        except (TypeError, ValueError):
            raise EvaluationError(f"{path}: attribute spacing must be one or two lengths in Å, got {spacing!r}") from None
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise EvaluationError(f"{path}: attribute spacing must be positive lengths in Å, got {spacing!r}")


def open_raster(source) -> tuple[Any, dict[str, Any]]:
    """Open a raster Zarr store lazily: ``(dask array (C, H, W), attrs)``.

    ``source`` is a path to a group holding ``raster`` (as written by
    ``ednn-dask rasterize``) or to the array itself. Refused with
    :class:`EvaluationError`: a missing or unreadable store, a shape that
    is not ``(channel, y, x)``, non-float pixels, malformed ``spacing`` or
    ``n_atoms`` attributes, and stored chunks missing (Zarr would read them
    as its fill value, silently).
    """
    src = open_raster_source(source)
    return src.array, src.attrs


def open_raster_source(source) -> Source:
    """:func:`open_raster` as a :class:`Source` with the store's fingerprint."""
    import dask.array as da
    import zarr

    path = str(source)
    if not Path(path).exists():
        raise EvaluationError(f"raster not found: {path}")
    try:
        node = zarr.open(path, mode="r")
        if isinstance(node, zarr.Group):
            if "raster" not in node:
                raise EvaluationError(f"{path} has no 'raster' array (write one with `ednn-dask rasterize`)")
            node = node["raster"]
        attrs = dict(node.attrs)
        shape, chunks, dtype = node.shape, node.chunks, node.dtype
        initialized, total = node.nchunks_initialized, node.nchunks
    except EvaluationError:
        raise
    except Exception as exc:  # zarr raises many types for corrupt stores
        raise EvaluationError(f"cannot open {path} as a Zarr raster ({type(exc).__name__}: {exc})") from None
    if len(shape) not in (2, 3):
        raise EvaluationError(f"raster must be (channel, y, x) or (y, x), got shape {shape}")
    if np.dtype(dtype).kind != "f":
        raise EvaluationError(f"raster must hold floating-point pixels, got dtype {dtype}")
    if 0 in shape:
        raise EvaluationError(f"raster is empty: shape {shape}")
    if initialized < total:
        raise EvaluationError(
            f"{path} is missing {total - initialized} of its {total} stored chunks (Zarr would read them as "
            "its fill value); re-create the raster (ednn-dask rasterize stores every chunk)"
        )
    _check_attrs(path, attrs)
    arr = da.map_blocks(_read_block, _store_token(Path(path).absolute().as_posix(), shape, chunks),
                        chunks=da.core.normalize_chunks(chunks, shape), dtype=dtype,
                        meta=np.empty((0,) * len(shape), dtype))
    if arr.ndim == 2:
        arr = arr[None]
    return Source(arr, attrs, lambda: hashlib.sha256(repr(_chunk_listing(Path(path))).encode()).hexdigest(),
                  path=path, kind="raster")


# ---------------------------------------------------------------- model checks

def check_against_model(arr, attrs: dict, card, rtol: float = 1e-6) -> None:
    """Channels, pixel spacing and size of a raster against the model card's."""
    f, channels = card.focus, card.channels
    if arr.shape[0] != channels:
        hint = f" (rasterize it with --model {card.name})" if card.takes_atoms else ""
        raise EvaluationError(f"raster has {arr.shape[0]} channels, the model expects {channels}{hint}")
    want = card.pixel_spacing
    have = attrs.get("spacing")
    if want is not None:
        if have is None:
            raise EvaluationError("raster has no 'spacing' attribute; cannot check it against the model's pixel spacing")
        want = np.broadcast_to(np.asarray(want, float), (2,))
        have = np.broadcast_to(np.asarray(have, float), (2,))
        if not np.allclose(have, want, rtol=rtol, atol=0):
            raise EvaluationError(
                f"raster pixel spacing {have.tolist()} Å differs from the model's {want.tolist()} Å"
            )
    bad = [s for s in arr.shape[1:] if s % f]
    if bad:
        raise EvaluationError(
            f"raster size {arr.shape[1]}x{arr.shape[2]} px is not a multiple of the model's focus f={f}"
        )


# ---------------------------------------------------------------- structure files

def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def atoms_source(path, card, target: int, unit: int) -> Source:
    """A lazy raster drawn chunk by chunk from a structure file, at the model's spacing.

    Chunks are multiples of ``unit`` (the focus, or the halo window) near
    ``target``: the chunks the evaluation uses, so the raster is never
    rechunked (which would move pixels between workers).
    """
    import dask.array as da

    from ..raster import StructureError, check_species
    from ..systems.large import load_atoms
    from ._worker import AtomsRef, raster_block

    if not card.takes_atoms:
        raise EvaluationError(f"model {card.name!r} does not take rasters of atoms")
    settings = card.raster_settings()
    spacing, lattice = settings.spacing, settings.lattice
    try:
        atoms = load_atoms(path)
        grid = atoms.grid(spacing, lattice=lattice)
        check_species(atoms.numbers, settings.species)
    except (StructureError, ValueError) as exc:
        raise EvaluationError(str(exc)) from None
    f, c = card.focus, card.context
    H, W = grid.shape
    if H % f or W % f:
        raise EvaluationError(f"sheet is {H}x{W} px at the model's spacing, not a multiple of the focus f={f}")
    chunks = (aligned_chunks(H, unit, c, target), aligned_chunks(W, unit, c, target))
    try:  # the model's training cells sit on one lattice origin and orientation: move the sheet there (exact)
        reg = atoms.registration(lattice) if lattice else None
    except StructureError as exc:
        raise EvaluationError(str(exc)) from None
    ref = AtomsRef.from_path(path, spacing, settings.species, settings.channels, chunks, reg)
    arr = da.map_blocks(raster_block, ref=ref, chunks=((settings.n_channels,), *chunks), dtype=np.float32,
                        meta=np.empty((0, 0, 0), np.float32))
    attrs = {"spacing": list(spacing), "n_atoms": int(atoms.numbers.size), "cell": list(atoms.lengths_xy)}
    if lattice:
        attrs.update(lattice=dict(lattice), **reg.as_attrs())
    return Source(arr, attrs, lambda: _file_digest(str(path)), path=str(path), atoms=ref, kind="atoms")


def array_source(data, card) -> Source:
    """An in-memory or Dask array ``(C, H, W)`` or ``(H, W)``; arrays carry no spacing, so it is not checked."""
    import dask.array as da

    arr = da.asarray(data)
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or 0 in arr.shape:
        raise EvaluationError(f"raster must be a non-empty (channel, y, x) array, got shape {arr.shape}")
    attrs = {"spacing": list(card.pixel_spacing) if card.pixel_spacing else None}
    return Source(arr, attrs, lambda: hashlib.sha256(arr.name.encode()).hexdigest())


def open_source(source, card, target: int, unit: int) -> Source:
    """Any evaluator input as a :class:`Source`, checked against the model card."""
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        src = atoms_source(source, card, target, unit)  # drawn in final chunks: no rechunk
    elif isinstance(source, (str, os.PathLike)):
        src = open_raster_source(source)
    else:
        src = array_source(source, card)
    check_against_model(src.array, src.attrs, card)
    return src
