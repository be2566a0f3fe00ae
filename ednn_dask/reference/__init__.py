"""Reference energies for training labels."""
from .tersoff import REFERENCE_NAME, tersoff_energy

__all__ = ["REFERENCE_NAME", "tersoff_energy"]
