"""The rasterizer: atoms -> Gaussian images on periodic pixel grids.

Modules, each importing only those above it:

================ ================================================================================
``_gaussian``    the image of atoms on a pixel grid (:class:`RasterGrid`, :func:`rasterize`)
``_neighbours``  O(N) closest pair and bond lengths of a periodic sheet
``_checks``      what is refused or warned about: :class:`StructureError`, :func:`check_sheet`, ...
``_grid``        a sheet's pixel grid at a model's spacing, with errors that say how to fit it
``_register``    lattice registration: the move onto the models' training lattice
``_channels``    atoms -> channels (per species, or one Z channel)
``_binning``     atoms binned by output chunk; one chunk drawn from the atoms near it
``_atoms``       the atoms container :class:`AtomsArrays` (ASE ``Atoms`` enter at ``from_ase``)
``_store``       a large sheet into a Zarr store, chunk by chunk (:func:`rasterize_to_zarr`)
================ ================================================================================

Axis order: a name ending in ``_xy`` holds a pair in the order of positions
and cells, ``(x, y)`` (``lengths_xy = (L_x, L_y)``, ``size_xy``); one ending
in ``_yx`` a pair in the order of array axes, ``(y, x)`` (``spacing_yx =
(h_y, h_x)``, ``chunks_yx``). Rasters are indexed ``[channel, y, x]``, and the
attributes of :class:`RasterGrid` (``shape``, ``spacing``, ``lengths``) follow
the array axes, ``(y, x)``; ``RasterGrid.lengths_xy`` is the cell in ``(x, y)``.
"""
from ._atoms import AtomsArrays, check_sheet_atoms, grid_for_atoms, raster_from_atoms
from ._binning import BinnedAtoms, raster_chunk
from ._channels import CHANNEL_MODES, channel_numbers
from ._checks import SheetWarning, StructureError, check_sheet, check_species
from ._gaussian import CUTOFF_SIGMAS, GAMMA, RasterGrid, rasterize, rasterize_adjoint
from ._register import HONEYCOMB, Registration, register_honeycomb
from ._store import RASTER_KIND, rasterize_to_zarr

__all__ = [
    "AtomsArrays",
    "BinnedAtoms",
    "CHANNEL_MODES",
    "CUTOFF_SIGMAS",
    "GAMMA",
    "HONEYCOMB",
    "RASTER_KIND",
    "RasterGrid",
    "Registration",
    "SheetWarning",
    "StructureError",
    "channel_numbers",
    "check_sheet",
    "check_sheet_atoms",
    "check_species",
    "grid_for_atoms",
    "raster_chunk",
    "raster_from_atoms",
    "rasterize",
    "rasterize_adjoint",
    "rasterize_to_zarr",
    "register_honeycomb",
]
