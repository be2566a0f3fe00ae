"""Simulations with an EDNN: Metropolis Monte Carlo that re-evaluates only the tiles a move reaches, and their analysis."""
from ._analysis import radial_distribution
from ._metropolis import Metropolis, tile_range

__all__ = ["Metropolis", "tile_range", "radial_distribution"]
