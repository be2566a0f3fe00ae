"""A large sheet rasterized chunk by chunk into a Zarr v3 store with Dask, written all at once.

Each Dask task draws one chunk from the binned atoms
(:func:`~ednn_dask.raster._binning.raster_chunk`); the store is written
beside its final path and moved there only when complete
(:func:`ednn_dask._outputs.atomic_path`), under :class:`~ednn_dask._outputs.OutputLock`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ._atoms import AtomsArrays
from ._binning import raster_chunk, splits
from ._channels import channel_numbers
from ._checks import StructureError, check_species
from ._gaussian import CUTOFF_SIGMAS, GAMMA

__all__ = ["RASTER_KIND", "rasterize_to_zarr"]

#: ``ednn_dask.kind`` of a raster store.
RASTER_KIND = "raster"


def rasterize_to_zarr(
    atoms: AtomsArrays,
    out: str | os.PathLike,
    spacing_yx: Sequence[float],
    species: Sequence[str] = ("B", "C", "N"),
    channels: str = "species",
    chunk: int = 1024,
    gamma: float = GAMMA,
    tolerance: float = 1e-3,
    overwrite: bool = False,
    progress: bool = False,
    scheduler: str | None = "threads",
    lattice: dict | None = None,
) -> Path:
    """Rasterize a sheet into a chunked, compressed Zarr v3 array with Dask.

    With ``lattice`` (a sheet model's ``metadata["input"]["lattice"]``) the
    atoms are first moved onto that lattice's origin and orientation, as the
    model's training cells were; the move is stored in the attrs
    (``registration_shift``, Å, and ``registration_mirror_y``) with ``lattice``.

    The array ``raster`` has dimensions ``("channel", "y", "x")`` and attrs
    ``spacing`` (Å, ``[h_y, h_x]``), ``cell`` (Å, ``[L_x, L_y]``),
    ``n_atoms``, ``species``, ``channels``, ``gamma``, ``cutoff``. It is
    written into a temporary directory that is renamed to ``out`` only when
    complete, so a failed run leaves nothing behind. Every chunk is stored
    (also all-zero ones) and the fill value is NaN, so a reader can tell a
    missing chunk from an empty one. ``overwrite`` replaces only a raster
    written by ednn-dask (:func:`ednn_dask._outputs.check_output`).
    """
    import dask.array as da

    from .._outputs import OutputLock, check_output

    out = check_output(out, RASTER_KIND, overwrite=overwrite)
    grid = atoms.grid(spacing_yx, tolerance, lattice)
    check_species(atoms.numbers, species)
    species_z = channel_numbers(species, channels)
    n_ch = len(species) if channels == "species" else 1
    reg = atoms.registration(lattice) if lattice else None
    binned = atoms.bin(grid, (chunk, chunk), registration=reg)

    def block(block_info=None):
        _, iy, ix = block_info[None]["chunk-location"]
        return raster_chunk(binned, iy, ix, species_z, gamma)

    lazy = da.map_blocks(
        block,
        dtype=np.float32,
        chunks=((n_ch,), splits(grid.shape[0], chunk), splits(grid.shape[1], chunk)),
        meta=np.empty((0, 0, 0), np.float32),
    )
    attrs = {
        "spacing": list(grid.spacing),
        "spacing_units": "Å",
        "cell": list(atoms.lengths_xy),
        "n_atoms": int(atoms.numbers.size),
        "species": list(species),
        "channels": channels,
        "gamma": gamma,
        "cutoff": CUTOFF_SIGMAS * gamma,
        **({"lattice": dict(lattice), **reg.as_attrs()} if lattice else {}),
        "raster": "V_s(x, y) = sum over atoms of species s of Z exp(-r^2 / (2 gamma^2)), periodic; "
        "pixel (i, j) at (x, y) = (j h_x, i h_y)",
    }
    with OutputLock(out):
        check_output(out, RASTER_KIND, overwrite=overwrite)  # again, now that no other run can write it
        _clear_leftover(out)
        _write(lazy, out, (n_ch, *grid.shape), (n_ch, chunk, chunk), progress, scheduler, attrs)
    return out


def _clear_leftover(out: Path) -> None:
    """Remove the temporary raster of a run on ``out`` that died; refuse anything else in its place."""
    from .._outputs import store_kind, temporary_path

    tmp = temporary_path(out)
    if tmp.exists():
        if store_kind(tmp) != RASTER_KIND:
            raise StructureError(f"{tmp} is in the way and is not a raster written by ednn-dask; remove it")
        shutil.rmtree(tmp)


def _write(lazy, out: Path, shape, chunks, progress: bool, scheduler, meta: dict) -> None:
    """Store ``lazy`` into a new raster with attrs ``meta`` beside ``out``, then move it to ``out``."""
    import dask.array as da
    import zarr

    from .._compute import compute_local
    from .._outputs import atomic_path, marker

    with atomic_path(out, RASTER_KIND) as tmp:  # only a raster of ours is replaced, once the new one is complete
        root = zarr.open_group(str(tmp), mode="w", attributes=marker(RASTER_KIND))
        arr = root.create_array(
            "raster",
            shape=shape,
            chunks=chunks,
            dtype="float32",
            dimension_names=["channel", "y", "x"],
            fill_value=np.nan,
            config={"write_empty_chunks": True},
        )
        arr.attrs.update(meta)
        root.attrs.update(meta)
        compute_local(da.store(lazy, arr, lock=False, compute=False), scheduler, progress)
