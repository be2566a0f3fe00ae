"""Raster channels: one per species (peaks of height Z) or the paper's single Z-weighted channel.

:func:`draw_channels` is the one place atoms become channels, for a whole
cell (:func:`~ednn_dask.raster.raster_from_atoms`) and for one chunk of a
large sheet (:func:`~ednn_dask.raster._binning.raster_chunk`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._gaussian import RasterGrid, rasterize

__all__ = ["CHANNEL_MODES", "check_channels", "channel_numbers", "draw_channels"]

#: "species": one channel per element, peaks of height Z;
#: "z": the paper's single channel, sum over atoms of Z-weighted Gaussians.
CHANNEL_MODES = ("species", "z")


def check_channels(channels: str) -> None:
    """Refuse a channel mode that is not one of :data:`CHANNEL_MODES`."""
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be one of {CHANNEL_MODES}, got {channels!r}")


def channel_numbers(species: Sequence[str], channels: str) -> list[int] | None:
    """Atomic numbers of the channels, in order, for ``channels="species"``; None for the single Z channel."""
    from ase.data import atomic_numbers

    return [atomic_numbers[s] for s in species] if channels == "species" else None


def draw_channels(xy: np.ndarray, numbers: np.ndarray, grid: RasterGrid, species_z: Sequence[int] | None,
                  gamma: float, region: tuple[int, int, int, int] | None = None, dtype=np.float32) -> np.ndarray:
    """``(C, rows, cols)`` (float32 by default): a channel per atomic number in ``species_z``, or one Z channel when None.

    ``region`` is a window of the grid as in :func:`~ednn_dask.raster._gaussian.rasterize` (default: all
    of it). Each channel's atoms keep their order in ``xy``, which fixes the order of every pixel's sum.
    """
    z = np.asarray(numbers).astype(np.float64)
    if species_z is None:
        return rasterize(xy, z, grid, region=region, gamma=gamma, dtype=dtype)[None]
    return np.stack([rasterize(xy[z == s], z[z == s], grid, region=region, gamma=gamma, dtype=dtype)
                     for s in species_z])
