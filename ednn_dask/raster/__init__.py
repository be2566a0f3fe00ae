"""The rasterizer: atoms -> Gaussian images on periodic pixel grids."""
from ._atoms import CHANNEL_MODES, check_sheet_atoms, grid_for_atoms, raster_from_atoms
from ._checks import SheetWarning, StructureError, check_sheet, check_species
from ._gaussian import CUTOFF_SIGMAS, GAMMA, RasterGrid, rasterize

__all__ = [
    "CHANNEL_MODES",
    "CUTOFF_SIGMAS",
    "GAMMA",
    "RasterGrid",
    "SheetWarning",
    "StructureError",
    "check_sheet",
    "check_sheet_atoms",
    "check_species",
    "grid_for_atoms",
    "raster_from_atoms",
    "rasterize",
]
