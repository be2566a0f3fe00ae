"""From ASE ``Atoms`` to rasters: cell checks and per-species channels."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from ._checks import StructureError, check_sheet, check_sheet_cell, check_species
from ._gaussian import GAMMA, RasterGrid, rasterize
from ._grid import sheet_grid

__all__ = ["StructureError", "check_sheet_cell", "check_sheet_atoms", "grid_for_atoms", "raster_from_atoms",
           "CHANNEL_MODES"]

#: "species": one channel per element, peaks of height Z;
#: "z": the paper's single channel, sum over atoms of Z-weighted Gaussians.
CHANNEL_MODES = ("species", "z")


def check_sheet_atoms(atoms: Atoms, what: str | None = None) -> np.ndarray:
    """:func:`check_sheet_cell`, then :func:`~ednn_dask.raster._checks.check_sheet` on the atoms; return the cell.

    Raises :class:`StructureError` for what is not a physical sheet and warns
    (:class:`~ednn_dask.raster._checks.SheetWarning`) when atoms leave the plane.
    """
    cell = check_sheet_cell(atoms, what)
    pos = atoms.positions
    z_period = float(cell[2, 2]) if atoms.pbc[2] and cell[2, 2] > 0 else None
    check_sheet(pos, atoms.numbers, (cell[0, 0], cell[1, 1]), z=pos[:, 2], z_period=z_period, what=what)
    return cell


def grid_for_atoms(atoms: Atoms, spacing_yx: Sequence[float], tolerance: float = 1e-3,
                   lattice: dict | None = None) -> RasterGrid:
    """Pixel grid of a periodic orthorhombic sheet at a fixed spacing, after :func:`check_sheet_atoms`.

    Parameters
    ----------
    lattice : dict, optional
        A model's ``metadata["input"]["lattice"]``: a cell that is not a whole
        number of pixels is then explained in terms of that lattice (e.g. the
        sheet's own lattice constant).

    Raises
    ------
    StructureError
        If the structure is not a physical sheet (:func:`check_sheet_atoms`),
        or its cell not an integer number of pixels (within ``tolerance`` pixels).
    """
    cell = check_sheet_atoms(atoms)
    return sheet_grid((cell[0, 0], cell[1, 1]), spacing_yx, tolerance, lattice, atoms.positions)


def raster_from_atoms(
    atoms: Atoms,
    spacing_yx: Sequence[float],
    species: Sequence[str] = ("B", "C", "N"),
    channels: str = "species",
    gamma: float = GAMMA,
    tolerance: float = 1e-3,
    lattice: dict | None = None,
) -> np.ndarray:
    """Rasterize a sheet: ``(C, ny, nx)`` float32.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic orthorhombic sheet (z ignored, but atoms out of the plane warn;
        see :func:`check_sheet_atoms`).
    spacing_yx : (float, float)
        Pixel spacing ``(h_y, h_x)`` in Å.
    species : sequence of str
        Elements the model knows, in channel order.
    channels : {"species", "z"}
        One channel per species, or the paper's single Z-weighted channel.
    lattice : dict, optional
        A model's ``metadata["input"]["lattice"]``: translate the atoms onto
        that lattice's origin first (exact for the energy; see
        :mod:`ednn_dask.raster._register`). Raises :class:`StructureError`
        if the atoms are not on it.
    """
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be one of {CHANNEL_MODES}, got {channels!r}")
    grid = grid_for_atoms(atoms, spacing_yx, tolerance, lattice)
    check_species(atoms.numbers, species)
    symbols = np.array(atoms.get_chemical_symbols())
    pos = atoms.get_positions()
    if lattice:
        from ._register import register_honeycomb

        pos = register_honeycomb(pos, atoms.numbers, (grid.lengths[1], grid.lengths[0]), lattice)
    z = atoms.numbers.astype(np.float64)
    if channels == "z":
        return rasterize(pos, z, grid, gamma=gamma)[None]
    out = np.zeros((len(species), *grid.shape), np.float32)
    for k, el in enumerate(species):
        sel = symbols == el
        if sel.any():
            out[k] = rasterize(pos[sel], z[sel], grid, gamma=gamma)
    return out
