"""Chunk-by-chunk rasterization of large sheets into a Zarr v3 array with Dask.

The whole raster of a micrometre sheet (10⁵ × 10⁵ pixels, 40 GB per
channel) never exists in memory: atoms are binned by output chunk once, and
each Dask task draws one chunk from the atoms of its own and the eight
neighbouring bins (the stencil radius, 1.2 Å, is far below a chunk edge).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ._checks import StructureError, check_species
from ._gaussian import GAMMA, CUTOFF_SIGMAS, RasterGrid, rasterize
from ._grid import sheet_grid
from ._register import Registration, registration

__all__ = ["AtomsArrays", "rasterize_to_zarr", "raster_chunk"]


class AtomsArrays:
    """Compact atoms of a large orthorhombic periodic sheet, binned for chunked rasterization.

    Parameters
    ----------
    positions : (N, 2 or 3) float array, Å
    numbers : (N,) int array, atomic numbers
    lengths_xy : (L_x, L_y) in Å
    """

    def __init__(self, positions, numbers, lengths_xy):
        self.positions = np.ascontiguousarray(np.asarray(positions, dtype=np.float64)[:, :2])
        self.numbers = np.asarray(numbers, dtype=np.int16)
        self.lengths_xy = (float(lengths_xy[0]), float(lengths_xy[1]))
        if self.positions.shape[0] != self.numbers.shape[0]:
            raise StructureError(f"{self.positions.shape[0]} positions but {self.numbers.shape[0]} atomic numbers")
        if self.positions.shape[0] == 0:
            raise StructureError("structure has no atoms")
        if not np.isfinite(self.positions).all():
            raise StructureError("atom positions contain NaN or infinite values")

    def registration(self, lattice: dict) -> Registration:
        """The :class:`~ednn_dask.raster._register.Registration` that puts these atoms on ``lattice``."""
        return registration(self.positions, self.numbers, lattice, "the sheet", self.lengths_xy)

    def grid(self, spacing_yx: Sequence[float], tolerance: float = 1e-3, lattice: dict | None = None) -> RasterGrid:
        """The pixel grid of the cell at ``spacing_yx`` (Å); a model's ``lattice`` makes a misfit's error specific.

        Raises :class:`StructureError` when the cell is not a whole number of
        pixels (see :func:`~ednn_dask.raster._grid.sheet_grid`).
        """
        return sheet_grid(self.lengths_xy, spacing_yx, tolerance, lattice, self.positions)

    def bin(self, grid: RasterGrid, chunks, registration=None) -> "BinnedAtoms":
        """Sort atoms into bins of one output chunk each.

        ``chunks`` is ``(chunk_y, chunk_x)`` (regular) or Dask-style
        ``((rows...), (cols...))`` pixel counts per chunk. ``registration``
        (a :class:`~ednn_dask.raster._register.Registration`) moves the atoms
        first, block by block, without a full copy of the positions.
        """
        return BinnedAtoms(self, grid, chunks, registration=registration)


_BLOCK_ATOMS = 1 << 22  # atoms per block while binning


class BinnedAtoms:
    """Atoms sorted by the output chunk they fall in, with the chunk edges in pixels."""

    def __init__(self, atoms: AtomsArrays, grid: RasterGrid, chunks, cutoff: float = CUTOFF_SIGMAS * GAMMA,
                 registration=None):
        self.grid = grid
        self.edges = []
        for n, ch in zip(grid.shape, chunks):
            sizes = _splits(n, ch) if np.isscalar(ch) else tuple(int(v) for v in ch)
            if sum(sizes) != n:
                raise ValueError(f"chunks {sizes} do not cover {n} pixels")
            self.edges.append(np.concatenate([[0], np.cumsum(sizes)]))
        self.nby, self.nbx = len(self.edges[0]) - 1, len(self.edges[1]) - 1
        hy, hx = grid.spacing
        Ly, Lx = grid.lengths
        self.cutoff = float(cutoff)
        self._min_size = (np.diff(self.edges[0]).min() * hy, np.diff(self.edges[1]).min() * hx)  # Å
        # how many rings of neighbouring bins a stencil can reach
        self.reach = self._reach(0, 0)
        # in blocks of atoms, so that a 35 M-atom sheet needs no full-length temporaries beyond the key,
        # the sort order and the sorted copy (1 um^2: peak 3.35 -> 1.61 GB, scripts/binning_memory.py)
        pos, n = atoms.positions, atoms.positions.shape[0]
        reg = registration or Registration()
        key = np.empty(n, np.int64 if self.nby * self.nbx >= 2**31 else np.int32)
        for i in range(0, n, _BLOCK_ATOMS):
            xy = reg.apply(pos[i : i + _BLOCK_ATOMS], (Lx, Ly))
            by = np.clip(np.searchsorted(self.edges[0], xy[:, 1] / hy, side="right") - 1, 0, self.nby - 1)
            bx = np.clip(np.searchsorted(self.edges[1], xy[:, 0] / hx, side="right") - 1, 0, self.nbx - 1)
            key[i : i + _BLOCK_ATOMS] = by * self.nbx + bx
        order = np.argsort(key, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=self.nby * self.nbx))])
        del key
        self.xy = np.empty((n, 2))
        for i in range(0, n, _BLOCK_ATOMS):
            self.xy[i : i + _BLOCK_ATOMS] = reg.apply(pos[order[i : i + _BLOCK_ATOMS]], (Lx, Ly))
        self.numbers = atoms.numbers[order]

    def _reach(self, halo_y: int, halo_x: int) -> tuple[int, int]:
        """Rings of neighbouring bins that reach a chunk grown by ``halo`` pixels per side."""
        hy, hx = self.grid.spacing
        return (
            int(np.ceil((self.cutoff + halo_y * hy) / self._min_size[0])) if self.nby > 1 else 0,
            int(np.ceil((self.cutoff + halo_x * hx) / self._min_size[1])) if self.nbx > 1 else 0,
        )

    def region(self, iy: int, ix: int, halo: int = 0) -> tuple[int, int, int, int]:
        """Pixel rows/cols ``(r0, r1, c0, c1)`` of chunk ``(iy, ix)``, grown by ``halo`` px per side.

        A grown region may extend beyond the grid: :func:`rasterize` wraps it periodically.
        """
        ey, ex = self.edges
        return int(ey[iy]) - halo, int(ey[iy + 1]) + halo, int(ex[ix]) - halo, int(ex[ix + 1]) + halo

    def near(self, iy: int, ix: int, halo: int = 0) -> np.ndarray:
        """Indices of atoms whose stencil can reach chunk (iy, ix) grown by ``halo`` px (periodic).

        Bins are taken in ascending order whatever the chunk, so every pixel sums its atoms in one order.
        """
        ry, rx = self._reach(halo, halo) if halo else self.reach
        ky = sorted({(iy + d) % self.nby for d in range(-ry, ry + 1)})
        kx = sorted({(ix + d) % self.nbx for d in range(-rx, rx + 1)})
        idx = [np.arange(self.starts[a * self.nbx + b], self.starts[a * self.nbx + b + 1]) for a in ky for b in kx]
        return np.concatenate(idx)


def raster_chunk(
    binned: BinnedAtoms, iy: int, ix: int, species_z: Sequence[int] | None, gamma: float, halo: int = 0
) -> np.ndarray:
    """One output chunk ``(C, h + 2 halo, w + 2 halo)``: channels per species (``species_z``) or one Z channel.

    ``halo`` > 0 draws the chunk with its periodic context border, as ``map_overlap`` would assemble it
    from the neighbouring chunks, but from the atoms directly (no data moves between workers).
    """
    grid = binned.grid
    region = binned.region(iy, ix, halo)
    idx = binned.near(iy, ix, halo)
    pos, z = binned.xy[idx], binned.numbers[idx].astype(np.float64)
    if species_z is None:
        return rasterize(pos, z, grid, region=region, gamma=gamma)[None]
    return np.stack([rasterize(pos[z == s], z[z == s], grid, region=region, gamma=gamma) for s in species_z])


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
    from ase.data import atomic_numbers

    from .._outputs import OutputLock, check_output, store_kind, temporary_path

    out = check_output(out, RASTER_KIND, overwrite=overwrite)
    grid = atoms.grid(spacing_yx, tolerance, lattice)
    check_species(atoms.numbers, species)
    species_z = [atomic_numbers[s] for s in species] if channels == "species" else None
    n_ch = len(species) if channels == "species" else 1
    reg = atoms.registration(lattice) if lattice else None
    binned = atoms.bin(grid, (chunk, chunk), registration=reg)

    def block(block_info=None):
        _, iy, ix = block_info[None]["chunk-location"]
        return raster_chunk(binned, iy, ix, species_z, gamma)

    lazy = da.map_blocks(
        block,
        dtype=np.float32,
        chunks=((n_ch,), _splits(grid.shape[0], chunk), _splits(grid.shape[1], chunk)),
        meta=np.empty((0, 0, 0), np.float32),
    )
    tmp = temporary_path(out)
    with OutputLock(out):
        check_output(out, RASTER_KIND, overwrite=overwrite)  # again, now that no other run can write it
        if tmp.exists():  # left by a run that died
            if store_kind(tmp) != RASTER_KIND:
                raise StructureError(f"{tmp} is in the way and is not a raster written by ednn-dask; remove it")
            shutil.rmtree(tmp)
        _write(lazy, out, (n_ch, *grid.shape), (n_ch, chunk, chunk), progress, scheduler, {
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
        })
    return out


def _write(lazy, out: Path, shape, chunks, progress: bool, scheduler, meta: dict) -> None:
    """Store ``lazy`` into a new raster with attrs ``meta`` beside ``out``, then move it to ``out``."""
    import dask
    import dask.array as da
    import zarr

    from .._outputs import atomic_path, marker, remove_store

    with atomic_path(out) as tmp:
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
        store = da.store(lazy, arr, lock=False, compute=False)
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                dask.compute(store, scheduler=scheduler)
        else:
            dask.compute(store, scheduler=scheduler)
        remove_store(out, RASTER_KIND)  # only a raster of ours, and only once the new one is complete


def _splits(n: int, chunk: int) -> tuple[int, ...]:
    full, rest = divmod(n, chunk)
    return (chunk,) * full + ((rest,) if rest else ())
