"""A model's domain of validity: where its answers can be trusted, and how uncertain they are.

Fitted once on the training cells (:func:`fit_domain`) and carried in the
model file: the feature statistics inside the exported program (each tile's
``d2``), the limits and the uncertainty calibration in the card's
``domain``. :func:`assess` judges a structure, :func:`tile_flags` the
tiles of a sheet.
"""
from ._atoms import BOND_VARIANCE_PER_K, bond_deviations, bond_temperature, environments, site_offsets
from ._check import DomainSpec, Verdict, assess, atom_scores, tile_flags, tile_sigma
from ._fit import METHOD, fit_domain

__all__ = ["DomainSpec", "Verdict", "assess", "atom_scores", "tile_flags", "tile_sigma", "fit_domain", "METHOD",
           "environments", "site_offsets", "bond_deviations", "bond_temperature", "BOND_VARIANCE_PER_K"]
