"""The rasterizer: atoms -> Gaussian images on periodic pixel grids."""
from ._atoms import CHANNEL_MODES, StructureError, grid_for_atoms, raster_from_atoms
from ._gaussian import CUTOFF_SIGMAS, GAMMA, RasterGrid, rasterize

__all__ = [
    "CHANNEL_MODES",
    "CUTOFF_SIGMAS",
    "GAMMA",
    "RasterGrid",
    "StructureError",
    "grid_for_atoms",
    "raster_from_atoms",
    "rasterize",
]
