"""Simulations with an EDNN: Metropolis Monte Carlo that re-evaluates only the tiles a move reaches."""
from ._metropolis import Metropolis, tile_range

__all__ = ["Metropolis", "tile_range"]
