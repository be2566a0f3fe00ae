"""Reference energies and forces for training labels."""
from .tersoff import REFERENCE_NAME, tersoff_calculator, tersoff_energy

__all__ = ["REFERENCE_NAME", "tersoff_calculator", "tersoff_energy"]
