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

from ._atoms import StructureError
from ._gaussian import GAMMA, CUTOFF_SIGMAS, RasterGrid, rasterize

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

    def bin(self, grid: RasterGrid, chunk: tuple[int, int]) -> "BinnedAtoms":
        """Sort atoms into bins of one output chunk each."""
        return BinnedAtoms(self, grid, chunk)


class BinnedAtoms:
    def __init__(self, atoms: AtomsArrays, grid: RasterGrid, chunk: tuple[int, int]):
        hy, hx = grid.spacing
        self.grid, self.chunk = grid, chunk
        self.nby = -(-grid.shape[0] // chunk[0])
        self.nbx = -(-grid.shape[1] // chunk[1])
        Ly, Lx = grid.lengths
        x = np.mod(atoms.positions[:, 0], Lx)
        y = np.mod(atoms.positions[:, 1], Ly)
        by = np.minimum((y / (chunk[0] * hy)).astype(np.int64), self.nby - 1)
        bx = np.minimum((x / (chunk[1] * hx)).astype(np.int64), self.nbx - 1)
        key = by * self.nbx + bx
        order = np.argsort(key, kind="stable")
        self.xy = np.column_stack([x, y])[order]
        self.numbers = atoms.numbers[order]
        self.starts = np.searchsorted(key[order], np.arange(self.nby * self.nbx + 1))

    def near(self, iy: int, ix: int) -> np.ndarray:
        """Indices of atoms in bin (iy, ix) and its periodic neighbours."""
        idx = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                k = ((iy + dy) % self.nby) * self.nbx + (ix + dx) % self.nbx
                idx.append(np.arange(self.starts[k], self.starts[k + 1]))
        return np.unique(np.concatenate(idx))


def raster_chunk(binned: BinnedAtoms, iy: int, ix: int, species_z: Sequence[int] | None, gamma: float) -> np.ndarray:
    """One output chunk ``(C, h, w)``: channels per species (``species_z``) or one Z channel (``None``)."""
    grid, (cy, cx) = binned.grid, binned.chunk
    r0, c0 = iy * cy, ix * cx
    region = (r0, min(r0 + cy, grid.shape[0]), c0, min(c0 + cx, grid.shape[1]))
    idx = binned.near(iy, ix)
    pos, z = binned.xy[idx], binned.numbers[idx].astype(np.float64)
    if species_z is None:
        return rasterize(pos, z, grid, region=region, gamma=gamma)[None]
    return np.stack([rasterize(pos[z == s], z[z == s], grid, region=region, gamma=gamma) for s in species_z])


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
) -> Path:
    """Rasterize a sheet into a chunked, compressed Zarr v3 array with Dask.

    The array ``raster`` has dimensions ``("channel", "y", "x")`` and attrs
    ``spacing`` (Å, ``[h_y, h_x]``), ``cell`` (Å, ``[L_x, L_y]``),
    ``n_atoms``, ``species``, ``channels``, ``gamma``, ``cutoff``. It is
    written into a temporary directory that is renamed to ``out`` only when
    complete, so a failed run leaves nothing behind.
    """
    import dask
    import dask.array as da
    import zarr
    from ase.data import atomic_numbers

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; remove it or pass overwrite")
    try:
        grid = RasterGrid.for_cell(atoms.lengths_xy, spacing_yx, tolerance)
    except ValueError as exc:
        raise StructureError(str(exc)) from None
    present = {int(z) for z in np.unique(atoms.numbers)}
    known = {atomic_numbers[s]: s for s in species}
    unknown = sorted(present - set(known))
    if unknown:
        from ase.data import chemical_symbols

        names = ", ".join(chemical_symbols[z] for z in unknown)
        raise StructureError(f"species {names} not known (known: {', '.join(species)})")
    species_z = [atomic_numbers[s] for s in species] if channels == "species" else None
    n_ch = len(species) if channels == "species" else 1
    binned = atoms.bin(grid, (chunk, chunk))

    def block(block_info=None):
        (_, _), (y0, _), (x0, _) = block_info[None]["array-location"]
        return raster_chunk(binned, y0 // chunk, x0 // chunk, species_z, gamma)

    lazy = da.map_blocks(
        block,
        dtype=np.float32,
        chunks=((n_ch,), _splits(grid.shape[0], chunk), _splits(grid.shape[1], chunk)),
        meta=np.empty((0, 0, 0), np.float32),
    )
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        root = zarr.open_group(str(tmp), mode="w")
        arr = root.create_array(
            "raster",
            shape=(n_ch, *grid.shape),
            chunks=(n_ch, chunk, chunk),
            dtype="float32",
            dimension_names=["channel", "y", "x"],
        )
        meta = {
            "spacing": list(grid.spacing),
            "spacing_units": "Å",
            "cell": list(atoms.lengths_xy),
            "n_atoms": int(atoms.numbers.size),
            "species": list(species),
            "channels": channels,
            "gamma": gamma,
            "cutoff": CUTOFF_SIGMAS * gamma,
            "raster": "V_s(x, y) = sum over atoms of species s of Z exp(-r^2 / (2 gamma^2)), periodic; "
            "pixel (i, j) at (x, y) = (j h_x, i h_y)",
        }
        arr.attrs.update(meta)
        root.attrs.update(meta)
        store = da.store(lazy, arr, lock=False, compute=False)
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                dask.compute(store, scheduler=scheduler)
        else:
            dask.compute(store, scheduler=scheduler)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _splits(n: int, chunk: int) -> tuple[int, ...]:
    full, rest = divmod(n, chunk)
    return (chunk,) * full + ((rest,) if rest else ())
