"""Where tiles are cut: periodic focus/context decomposition."""
from ._tiling import check_tiling, extract_tiles, n_tiles, periodic_pad, tile_field

__all__ = ["check_tiling", "extract_tiles", "n_tiles", "periodic_pad", "tile_field"]
