"""The rasterizer's atoms: :class:`AtomsArrays`, compact arrays of a periodic orthorhombic sheet.

Every path to a raster goes through this container: a small cell in memory
(:func:`raster_from_atoms`), a large sheet chunk by chunk into Zarr
(:func:`~ednn_dask.raster._store.rasterize_to_zarr`) or on the fly in the
evaluator. ASE ``Atoms`` (user files, built cells) enter at
:meth:`AtomsArrays.from_ase`, which checks the cell and the sheet; compact
``.npz`` atoms enter at :func:`ednn_dask.systems.large.load_atoms`. On the
container, one implementation each: the pixel grid (:meth:`AtomsArrays.grid`),
the lattice registration (:meth:`AtomsArrays.registration`) and the binning
by output chunk (:meth:`AtomsArrays.bin`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._binning import BinnedAtoms
from ._channels import channel_numbers, check_channels, draw_channels
from ._checks import StructureError, check_sheet, check_sheet_cell, check_species
from ._gaussian import GAMMA, RasterGrid
from ._grid import sheet_grid
from ._register import Registration, registration

__all__ = ["AtomsArrays", "check_sheet_atoms", "grid_for_atoms", "raster_from_atoms"]


class AtomsArrays:
    """Compact atoms of an orthorhombic periodic sheet: what the grid, registration and binning read.

    Parameters
    ----------
    positions : (N, 2 or 3) float array, Å
        Only x and y are kept (float64, ``positions``).
    numbers : (N,) int array
        Atomic numbers (kept as int16).
    lengths_xy : (L_x, L_y) in Å
        The periodic in-plane cell.

    Raises :class:`StructureError` for mismatched lengths, no atoms or
    coordinates that are not finite; the sheet checks are
    :func:`~ednn_dask.raster._checks.check_sheet`, run by :meth:`from_ase`
    and :func:`ednn_dask.systems.large.load_atoms`.
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

    @classmethod
    def from_ase(cls, atoms, what: str | None = None, check: bool = True) -> "AtomsArrays":
        """The atoms of an ASE ``Atoms``, after :func:`check_sheet_atoms` (``check``) or its cell checks alone.

        ``what`` names the structure in messages (e.g. its file).
        """
        cell = check_sheet_atoms(atoms, what) if check else check_sheet_cell(atoms, what)
        return cls(atoms.positions, atoms.numbers, (cell[0, 0], cell[1, 1]))

    def registration(self, lattice: dict, what: str = "the sheet") -> Registration:
        """The :class:`~ednn_dask.raster._register.Registration` that puts these atoms on ``lattice``.

        ``what`` names the atoms in the error when they are not on it.
        """
        return registration(self.positions, self.numbers, lattice, what, self.lengths_xy)

    def grid(self, spacing_yx: Sequence[float], tolerance: float = 1e-3, lattice: dict | None = None) -> RasterGrid:
        """The pixel grid of the cell at ``spacing_yx`` (Å); a model's ``lattice`` makes a misfit's error specific.

        Raises :class:`StructureError` when the cell is not a whole number of
        pixels (see :func:`~ednn_dask.raster._grid.sheet_grid`).
        """
        return sheet_grid(self.lengths_xy, spacing_yx, tolerance, lattice, self.positions)

    def bin(self, grid: RasterGrid, chunks_yx, registration: Registration | None = None) -> BinnedAtoms:
        """Sort atoms into bins of one output chunk each (:class:`~ednn_dask.raster._binning.BinnedAtoms`).

        ``chunks_yx`` is ``(chunk_y, chunk_x)`` or Dask-style ``((rows...), (cols...))``;
        ``registration`` moves the atoms first, block by block, without a full copy of the positions.
        """
        return BinnedAtoms(self, grid, chunks_yx, registration=registration)


def check_sheet_atoms(atoms, what: str | None = None) -> np.ndarray:
    """:func:`~ednn_dask.raster._checks.check_sheet_cell`, then ``check_sheet`` on an ASE ``Atoms``; return the cell.

    Raises :class:`StructureError` for what is not a physical sheet and warns
    (:class:`~ednn_dask.raster._checks.SheetWarning`) when atoms leave the plane.
    """
    cell = check_sheet_cell(atoms, what)
    pos = atoms.positions
    z_period = float(cell[2, 2]) if atoms.pbc[2] and cell[2, 2] > 0 else None
    check_sheet(pos, atoms.numbers, (cell[0, 0], cell[1, 1]), z=pos[:, 2], z_period=z_period, what=what)
    return cell


def grid_for_atoms(atoms, spacing_yx: Sequence[float], tolerance: float = 1e-3,
                   lattice: dict | None = None) -> RasterGrid:
    """Pixel grid of a periodic orthorhombic sheet (ASE ``Atoms``) at a fixed spacing, after :func:`check_sheet_atoms`.

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
    return AtomsArrays.from_ase(atoms).grid(spacing_yx, tolerance, lattice)


def raster_from_atoms(
    atoms,
    spacing_yx: Sequence[float],
    species: Sequence[str] = ("B", "C", "N"),
    channels: str = "species",
    gamma: float = GAMMA,
    tolerance: float = 1e-3,
    lattice: dict | None = None,
) -> np.ndarray:
    """Rasterize a sheet in memory: ``(C, ny, nx)`` float32.

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
    check_channels(channels)
    arrays = AtomsArrays.from_ase(atoms)
    grid = arrays.grid(spacing_yx, tolerance, lattice)
    check_species(arrays.numbers, species)
    xy = arrays.positions
    if lattice:
        xy = arrays.registration(lattice, "structure").apply(xy, grid.lengths_xy)
    return draw_channels(xy, arrays.numbers, grid, channel_numbers(species, channels), gamma)
