"""What runs on a Dask worker: a per-process model cache and the block function.

A compiled/exported module is not picklable, so tasks carry a small
:class:`ModelRef` (a path and a content token); each worker process loads
the model once and keeps it here. The block functions call
:meth:`ednn_dask.nn.EDNN.contributions_from_padded` (or, for a model with a
domain, :meth:`~ednn_dask.nn.EDNN.maps_from_padded`) — the same tile code as
in-memory prediction.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..raster import Registration
from ._errors import EvaluationError

__all__ = ["ModelRef", "AtomsRef", "cached_model", "cached_atoms", "block_contributions", "block_maps",
           "preload"]

_CACHE: dict[str, object] = {}  # loaded models by sha256 (small; kept for the life of the worker)
_ATOMS: OrderedDict[tuple, tuple] = OrderedDict()  # binned sheets, least recently used first
_LOCK = threading.RLock()

#: Binned sheets a worker process keeps (the most recently used): each takes about as much memory as its
#: atoms, so a worker serving evaluation after evaluation of other sheets does not keep them all.
ATOMS_KEPT = 2


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds the model: ``path`` to load from, ``token`` (sha256) to cache under."""

    path: str
    token: str

    @classmethod
    def from_path(cls, path, data: bytes | None = None) -> "ModelRef":
        """Reference to the model file ``path``; ``data``, its bytes if already read."""
        data = open(path, "rb").read() if data is None else data
        return cls(str(path), hashlib.sha256(data).hexdigest())


def preload(ref: ModelRef, data: bytes | None = None, threads: int | None = None):
    """Load ``ref`` into this process's cache (from ``data`` bytes if given) and return it."""
    with _LOCK:
        model = _CACHE.get(ref.token)
        if model is None:
            import torch

            from ..models import load_model

            if threads:
                torch.set_num_threads(threads)
            model = load_model(data if data is not None else ref.path)
            _CACHE[ref.token] = model
        return model


def cached_model(ref: ModelRef):
    """The loaded model for ``ref``, loading it on first use in this process."""
    model = _CACHE.get(ref.token)
    return model if model is not None else preload(ref)


def block_contributions(block: np.ndarray, ref: ModelRef, mode, tile_origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Tile contributions (float64) of one padded raster block ``(C, n_y f + 2c, n_x f + 2c)``.

    ``mode`` (:class:`ednn_dask.models.inference.RunMode`) says how the
    model runs: halo-shared windows or per-tile batches, precision, layout.
    The client resolves it once, so every worker runs the same kernels.
    ``tile_origin`` is the index of the block's first tile in the whole
    field (per-tile inference puts each tile at a batch slot fixed by it).
    """
    import torch

    ednn, padded = _prepare(block, ref, mode)
    with torch.no_grad():
        out = ednn.contributions_from_padded(padded, tile_origin=tile_origin)
    return out[0].double().numpy()


def block_maps(block: np.ndarray, ref: ModelRef, mode, tile_origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Per-tile maps ``(n_maps, n_y, n_x)`` (float64) of one padded raster block, for a model with a domain.

    Map 0 is :func:`block_contributions` (the same values, bit for bit), map 1
    each tile's feature distance ``d2`` (:mod:`ednn_dask.domain`). Parameters
    as for :func:`block_contributions`.
    """
    import torch

    ednn, padded = _prepare(block, ref, mode)
    with torch.no_grad():
        out = ednn.maps_from_padded(padded, tile_origin=tile_origin)
    return out[0].double().numpy()


def _prepare(block: np.ndarray, ref: ModelRef, mode):
    """The EDNN of ``mode`` and the block as a ``(1, C, h, w)`` float32 tensor; non-finite pixels refused."""
    import torch

    from ..models.inference import build_ednn

    if not np.isfinite(block).all():
        raise EvaluationError("raster contains NaN or infinite pixels")
    with _LOCK:
        ednn = build_ednn(cached_model(ref), mode)
    return ednn, torch.from_numpy(np.ascontiguousarray(block, np.float32))[None]


@dataclass(frozen=True)
class AtomsRef:
    """A structure file that workers rasterize chunk by chunk (no raster on disk)."""

    path: str
    token: str
    spacing: tuple[float, float]
    species: tuple[str, ...]
    channels: str
    chunks: tuple[tuple[int, ...], tuple[int, ...]]
    registration: Registration | None = None  #: applied to the atoms while binning (lattice registration)

    @classmethod
    def from_path(cls, path, spacing, species, channels, chunks, registration=None) -> "AtomsRef":
        st = os.stat(path)
        token = hashlib.sha256(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        return cls(str(path), token, tuple(float(v) for v in spacing), tuple(species), channels,
                   (tuple(int(v) for v in chunks[0]), tuple(int(v) for v in chunks[1])), registration)


def cached_atoms(ref: AtomsRef):
    """``(BinnedAtoms, species Z or None)`` for ``ref``, loaded and binned once per process.

    Only the :data:`ATOMS_KEPT` most recently used sheets stay cached; the least recently used one is
    dropped before another is loaded, so no more than that many are held at once.
    """
    key = (ref.token, ref.spacing, ref.chunks, ref.registration)
    with _LOCK:
        hit = _ATOMS.get(key)
        if hit is not None:
            _ATOMS.move_to_end(key)
            return hit
        while _ATOMS and len(_ATOMS) >= ATOMS_KEPT:
            _ATOMS.popitem(last=False)
        from ..raster import channel_numbers
        from ..systems.large import load_atoms

        atoms = load_atoms(ref.path, check=False)  # the client checked it
        grid = atoms.grid(ref.spacing)
        species_z = channel_numbers(ref.species, ref.channels)
        hit = (atoms.bin(grid, ref.chunks, registration=ref.registration), species_z)
        _ATOMS[key] = hit
        return hit


def raster_block(ref: AtomsRef, block_info=None, halo: int = 0) -> np.ndarray:
    """One raster chunk ``(C, h, w)`` drawn from the atoms near it (``halo`` px of context per side added)."""
    from ..raster import GAMMA, raster_chunk

    binned, species_z = cached_atoms(ref)
    iy, ix = block_info[None]["chunk-location"][-2:]
    return raster_chunk(binned, iy, ix, species_z, GAMMA, halo=halo)
