"""Import path kept for callers of ``ednn_dask.raster._zarr``: the names live in the modules named for them."""
from ._atoms import AtomsArrays
from ._binning import BinnedAtoms, raster_chunk
from ._store import RASTER_KIND, rasterize_to_zarr

__all__ = ["AtomsArrays", "BinnedAtoms", "RASTER_KIND", "raster_chunk", "rasterize_to_zarr"]
