"""Metropolis Monte Carlo of a sheet with an EDNN, one atom per trial move, O(1) per move in the sheet's size.

A move of atom ``a`` from ``r`` to ``r'`` changes the raster only where the
atom's stencil reaches (``±r_c`` around ``r`` and ``r'``), and a tile's
contribution depends only on its focus region and its ``c``-pixel context.
So a trial move redraws the atom in that box (the rasterizer's own
:func:`~ednn_dask.raster.rasterize` over a periodic window, new minus old),
runs the network on the smallest block of tiles whose windows see the box
(its focus regions plus the context border, cut from the updated raster with
periodic wrap), and takes ``ΔE`` as the new block's sum minus the old one's.
An accepted move writes the box into the raster and the block into the tile
map. The total after any number of moves is the full evaluation's of the
current positions (:meth:`Metropolis.full_energy`) up to float64 round-off.

The sheet is registered onto the model's lattice once, at the start; the
chain moves atoms in that frame (a full re-registration after every move
would translate the whole sheet by ~δ/N, a change of frame, not of
structure).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["Metropolis", "tile_range"]

def tile_range(lo: int, hi: int, focus: int, context: int, n_tiles: int) -> tuple[int, int]:
    """Tiles ``[t0, t1)`` (along one axis, unwrapped) whose window ``[t f - c, t f + f + c)`` meets pixels ``[lo, hi)``.

    All ``n_tiles`` (from 0) when the range would wrap onto itself.
    """
    t0 = (lo - focus - context) // focus + 1
    t1 = -(-(hi + context) // focus)
    if t1 - t0 >= n_tiles:
        return 0, n_tiles
    return t0, t1


class Metropolis:
    """Metropolis Monte Carlo of one sheet with a sheet model, re-evaluating only the tiles each move reaches.

    Parameters
    ----------
    model : LoadedModel
        A sheet model with a halo-shared (VALID conv) subnet.
    atoms : ase.Atoms
        A structure the model accepts (``predict``'s checks).
    temperature : float
        K.
    step : float
        Largest displacement of a trial move along x and along y, Å.
    seed : int
    dtype : torch.dtype
        ``torch.float64`` (default: the model's weights in double precision;
        incremental and full totals agree to round-off) or ``torch.float32``.

    Attributes
    ----------
    energy : float
        Current total (eV), kept up to date move by move.
    positions : numpy.ndarray
        ``(N, 2)`` current positions in the registered frame (Å, in the cell).
    accepted, trials : int
    """

    def __init__(self, model, atoms, temperature: float, step: float = 0.1, seed: int = 0,
                 dtype: torch.dtype = torch.float64):
        from ..forces import energy_network, sheet_input

        card = model.card
        sheet = sheet_input(model, atoms)
        self.grid = sheet.grid
        self.positions = sheet.xy.copy()
        self.numbers = sheet.arrays.numbers.astype(np.int64)
        zs = sheet.channel_z
        self._channel_z = zs
        #: raster channel of each atom (0 for the single Z channel)
        self._channel = np.zeros(len(self.numbers), np.int64) if zs is None else \
            np.array([zs.index(int(z)) for z in self.numbers])
        self.gamma = sheet.gamma
        self.f, self.c = card.focus, card.context
        self.net = energy_network(model, dtype)
        if not self.net.halo_sharing:
            raise ValueError(f"model {card.name!r}: incremental Monte Carlo needs a halo-shared (VALID conv) subnet")
        self.dtype = dtype
        from ase.units import kB

        self.kT = kB * float(temperature)
        self.step_size = float(step)
        self.rng = np.random.default_rng(seed)
        self.raster = self._draw_all()
        self.tiles = self._evaluate_all(self.raster)
        self.energy = float(self.tiles.sum())
        self.accepted = self.trials = 0

    # ---- full evaluation (the reference the moves must agree with)
    def _draw_all(self) -> np.ndarray:
        from ..raster._channels import draw_channels

        return draw_channels(self.positions, self.numbers, self.grid, self._channel_z, self.gamma,
                             dtype=np.float64)

    @torch.no_grad()
    def _evaluate_all(self, raster: np.ndarray) -> np.ndarray:
        field = torch.from_numpy(raster).to(self.dtype)[None]
        return self.net.tile_maps(field)[0, 0].double().numpy()

    def full_energy(self) -> float:
        """The total of a fresh rasterization and evaluation of the current positions."""
        return float(self._evaluate_all(self._draw_all()).sum())

    # ---- one move
    def _box(self, ys: tuple[float, float], xs: tuple[float, float]) -> tuple[int, int, int, int]:
        """Pixel window ``(r0, r1, c0, c1)`` (unwrapped) that the stencils of both positions reach."""
        from ..raster import CUTOFF_SIGMAS

        rc = CUTOFF_SIGMAS * self.gamma
        hy, hx = self.grid.spacing
        return (math.ceil((min(ys) - rc) / hy), math.floor((max(ys) + rc) / hy) + 1,
                math.ceil((min(xs) - rc) / hx), math.floor((max(xs) + rc) / hx) + 1)

    @torch.no_grad()
    def _block(self, raster: np.ndarray, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Contributions of tiles ``rows x cols`` (unwrapped tile indices) of ``raster``."""
        f, c = self.f, self.c
        ny, nx = self.grid.shape
        iy = np.arange(rows[0] * f - c, rows[1] * f + c) % ny
        ix = np.arange(cols[0] * f - c, cols[1] * f + c) % nx
        padded = torch.from_numpy(np.ascontiguousarray(raster[:, iy[:, None], ix[None, :]])).to(self.dtype)[None]
        return self.net.maps_from_padded(padded)[0, 0].double().numpy()

    def trial(self) -> bool:
        """One trial move of a random atom; returns whether it was accepted."""
        from ..raster import rasterize

        a = int(self.rng.integers(len(self.positions)))
        old = self.positions[a]
        L = np.array(self.grid.lengths_xy)
        new = old + self.rng.uniform(-self.step_size, self.step_size, 2)
        box = self._box((old[1], new[1]), (old[0], new[0]))
        w = np.array([float(self.numbers[a])])
        delta = (rasterize(new[None], w, self.grid, region=box, gamma=self.gamma, dtype=np.float64)
                 - rasterize(old[None], w, self.grid, region=box, gamma=self.gamma, dtype=np.float64))
        ny, nx = self.grid.shape
        ty, tx = self.tiles.shape
        rows = tile_range(box[0], box[1], self.f, self.c, ty)
        cols = tile_range(box[2], box[3], self.f, self.c, tx)
        iy = np.arange(box[0], box[1]) % ny
        ix = np.arange(box[2], box[3]) % nx
        ch = self._channel[a]
        index = (iy[:, None], ix[None, :])
        saved = self.raster[ch][index]  # the box before the move, restored bit for bit on rejection
        np.add.at(self.raster[ch], index, delta)
        block = self._block(self.raster, rows, cols)
        ti = np.arange(rows[0], rows[1]) % ty
        tj = np.arange(cols[0], cols[1]) % tx
        dE = float(block.sum() - self.tiles[ti[:, None], tj[None, :]].sum())
        self.trials += 1
        accept = dE <= 0 or self.rng.random() < math.exp(-dE / self.kT)
        if accept:
            self.tiles[ti[:, None], tj[None, :]] = block
            self.positions[a] = np.mod(new, L)
            self.energy += dE
            self.accepted += 1
        else:
            self.raster[ch][index] = saved
        return accept

    def run(self, trials: int) -> float:
        """``trials`` trial moves; returns the acceptance ratio of these."""
        before = self.accepted
        for _ in range(int(trials)):
            self.trial()
        return (self.accepted - before) / max(1, int(trials))
