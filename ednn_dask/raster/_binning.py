"""Atoms binned by the output chunk they fall in, and one chunk drawn from the atoms near it.

The whole raster of a micrometre sheet (10⁵ × 10⁵ pixels, 40 GB per
channel) never exists in memory: atoms are binned by output chunk once, and
each Dask task draws one chunk from the atoms of its own and the eight
neighbouring bins (the stencil radius, 1.2 Å, is far below a chunk edge).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._channels import draw_channels
from ._gaussian import CUTOFF_SIGMAS, GAMMA, RasterGrid
from ._register import Registration

__all__ = ["BinnedAtoms", "raster_chunk", "splits"]

_BLOCK_ATOMS = 1 << 22  # atoms per block while binning


class BinnedAtoms:
    """Atoms sorted by the output chunk they fall in, with the chunk edges in pixels.

    ``atoms`` is an :class:`~ednn_dask.raster.AtomsArrays` (``positions`` (N, 2) and ``numbers``).
    ``chunks_yx`` is ``(chunk_y, chunk_x)`` (regular) or Dask-style ``((rows...), (cols...))`` pixel
    counts per chunk; ``registration`` (a :class:`~ednn_dask.raster._register.Registration`) moves the
    atoms first, block by block. ``xy`` and ``numbers`` are the (moved, wrapped) atoms in bin order,
    ``starts`` the first atom of each bin, ``edges`` the chunk edges (rows, cols) and ``reach`` the
    rings of bins (y, x) a stencil reaches.
    """

    def __init__(self, atoms, grid: RasterGrid, chunks_yx, cutoff: float = CUTOFF_SIGMAS * GAMMA,
                 registration=None):
        self.grid = grid
        self.edges = []
        for n, ch in zip(grid.shape, chunks_yx):
            sizes = splits(n, ch) if np.isscalar(ch) else tuple(int(v) for v in ch)
            if sum(sizes) != n:
                raise ValueError(f"chunks {sizes} do not cover {n} pixels")
            self.edges.append(np.concatenate([[0], np.cumsum(sizes)]))
        self.nby, self.nbx = len(self.edges[0]) - 1, len(self.edges[1]) - 1
        hy, hx = grid.spacing
        lengths_xy = grid.lengths_xy
        self.cutoff = float(cutoff)
        self._min_size_yx = (np.diff(self.edges[0]).min() * hy, np.diff(self.edges[1]).min() * hx)  # Å
        # how many rings of neighbouring bins a stencil can reach
        self.reach = self._reach(0, 0)
        # in blocks of atoms, so that a 35 M-atom sheet needs no full-length temporaries beyond the key,
        # the sort order and the sorted copy (1 um^2: peak 3.35 -> 1.61 GB, scripts/binning_memory.py)
        pos, n = atoms.positions, atoms.positions.shape[0]
        reg = registration or Registration()
        key = np.empty(n, np.int64 if self.nby * self.nbx >= 2**31 else np.int32)
        for i in range(0, n, _BLOCK_ATOMS):
            xy = reg.apply(pos[i : i + _BLOCK_ATOMS], lengths_xy)
            by = np.clip(np.searchsorted(self.edges[0], xy[:, 1] / hy, side="right") - 1, 0, self.nby - 1)
            bx = np.clip(np.searchsorted(self.edges[1], xy[:, 0] / hx, side="right") - 1, 0, self.nbx - 1)
            key[i : i + _BLOCK_ATOMS] = by * self.nbx + bx
        order = np.argsort(key, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=self.nby * self.nbx))])
        del key
        self.xy = np.empty((n, 2))
        for i in range(0, n, _BLOCK_ATOMS):
            self.xy[i : i + _BLOCK_ATOMS] = reg.apply(pos[order[i : i + _BLOCK_ATOMS]], lengths_xy)
        self.numbers = atoms.numbers[order]

    def _reach(self, halo_y: int, halo_x: int) -> tuple[int, int]:
        """Rings of neighbouring bins that reach a chunk grown by ``halo`` pixels per side."""
        hy, hx = self.grid.spacing
        return (
            int(np.ceil((self.cutoff + halo_y * hy) / self._min_size_yx[0])) if self.nby > 1 else 0,
            int(np.ceil((self.cutoff + halo_x * hx) / self._min_size_yx[1])) if self.nbx > 1 else 0,
        )

    def region(self, iy: int, ix: int, halo: int = 0) -> tuple[int, int, int, int]:
        """Pixel rows/cols ``(r0, r1, c0, c1)`` of chunk ``(iy, ix)``, grown by ``halo`` px per side.

        A grown region may extend beyond the grid: :func:`~ednn_dask.raster._gaussian.rasterize` wraps it periodically.
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
    idx = binned.near(iy, ix, halo)
    return draw_channels(binned.xy[idx], binned.numbers[idx], binned.grid, species_z, gamma,
                         region=binned.region(iy, ix, halo))


def splits(n: int, chunk: int) -> tuple[int, ...]:
    """Sizes of the chunks of at most ``chunk`` that cover ``n`` pixels: all full but the last."""
    full, rest = divmod(n, chunk)
    return (chunk,) * full + ((rest,) if rest else ())
