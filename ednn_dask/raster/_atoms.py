"""From ASE ``Atoms`` to rasters: cell checks and per-species channels."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from ._gaussian import GAMMA, RasterGrid, rasterize

__all__ = ["StructureError", "check_sheet_cell", "grid_for_atoms", "raster_from_atoms", "CHANNEL_MODES"]

#: "species": one channel per element, peaks of height Z;
#: "z": the paper's single channel, sum over atoms of Z-weighted Gaussians.
CHANNEL_MODES = ("species", "z")


class StructureError(ValueError):
    """A structure that the rasterizer or a model cannot represent."""


def check_sheet_cell(atoms: Atoms) -> np.ndarray:
    """Refuse empty structures and cells that are not periodic in x, y or not orthorhombic; return the cell."""
    if len(atoms) == 0:
        raise StructureError("structure has no atoms")
    if not (atoms.pbc[0] and atoms.pbc[1]):
        raise StructureError(f"cell must be periodic in x and y (pbc={atoms.pbc.tolist()})")
    cell = np.asarray(atoms.cell)
    off = [cell[0, 1], cell[0, 2], cell[1, 0], cell[1, 2], cell[2, 0], cell[2, 1]]
    if np.max(np.abs(off)) > 1e-6 * max(1.0, np.abs(cell).max()):
        raise StructureError(
            "cell is not orthorhombic (the rasterizer needs a cell with axes along x, y, z); "
            f"cell = {cell.round(4).tolist()}"
        )
    return cell


def grid_for_atoms(atoms: Atoms, spacing_yx: Sequence[float], tolerance: float = 1e-3) -> RasterGrid:
    """Pixel grid of a periodic orthorhombic sheet at a fixed spacing.

    Raises
    ------
    StructureError
        If the cell is not periodic in x and y, not orthorhombic in-plane, or
        not an integer number of pixels (within ``tolerance`` pixels).
    """
    cell = check_sheet_cell(atoms)
    try:
        return RasterGrid.for_cell((cell[0, 0], cell[1, 1]), spacing_yx, tolerance)
    except ValueError as exc:
        raise StructureError(str(exc)) from None


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
        Periodic orthorhombic sheet (z ignored).
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
    grid = grid_for_atoms(atoms, spacing_yx, tolerance)
    symbols = np.array(atoms.get_chemical_symbols())
    unknown = sorted(set(symbols) - set(species))
    if unknown:
        raise StructureError(f"species {', '.join(unknown)} not known to the model (known: {', '.join(species)})")
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
