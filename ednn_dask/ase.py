"""An ASE calculator for the sheet models: energies, forces, per-tile energies and the domain check.

    >>> from ednn_dask.ase import EDNNCalculator
    >>> atoms.calc = EDNNCalculator("hexagonal-sheet")
    >>> atoms.get_potential_energy(), atoms.get_forces()

Energies and forces come from :func:`ednn_dask.forces.energy_and_forces`
(the checks, rasterization and network of ``ednn-dask predict``); the domain
check and the uncertainty from :func:`ednn_dask.domain.assess`, as ``predict``
does. A structure the model refuses raises the error ``predict`` prints; one
outside the model's domain warns (:class:`DomainWarning`, once each time the
structures leave the domain: a relaxation or MD run is not flooded with one
warning per step; ``results["out_of_domain"]`` says it for every step) or,
with ``strict=True``, raises :class:`~ednn_dask.errors.DomainError`.
"""
from __future__ import annotations

import os
import warnings

import torch
from ase.calculators.calculator import Calculator, all_changes

__all__ = ["EDNNCalculator", "DomainWarning"]


class DomainWarning(UserWarning):
    """A structure is outside the model's domain: its energy is an extrapolation."""


class EDNNCalculator(Calculator):
    """ASE calculator of a sheet model (bundled name, path of a model file, or a loaded model).

    Parameters
    ----------
    model : str, os.PathLike or LoadedModel
        ``"hexagonal-sheet"``, ``"porous-graphene"``, a ``.pt2`` file, or
        the result of :func:`ednn_dask.models.get_model`.
    strict : bool
        Raise :class:`~ednn_dask.errors.DomainError` for a structure outside
        the model's domain instead of warning.
    dtype : torch.dtype
        ``torch.float32`` (the model file's program, as ``predict``) or
        ``torch.float64`` (its weights in double precision: smooth to finite
        differences, e.g. for tight relaxations).

    Notes
    -----
    ``implemented_properties`` are ``energy``, ``free_energy`` (the same:
    the models have no electronic entropy), ``forces`` and ``tile_energies``
    (the ``(n_y, n_x)`` contributions of the focus regions, eV). Stress is
    not implemented (:mod:`ednn_dask.forces` says why). ``results`` also
    holds ``uncertainty`` (σ of the energy, eV), ``out_of_domain`` and
    ``domain_reasons`` for models with a domain.
    """

    default_parameters: dict = {}

    def __init__(self, model="hexagonal-sheet", strict: bool = False, dtype: torch.dtype = torch.float32,
                 **kwargs):
        super().__init__(**kwargs)
        from .errors import InputError
        from .models import get_model

        self.model = get_model(model) if isinstance(model, (str, os.PathLike)) else model
        card = self.model.card
        if not card.takes_atoms:
            raise InputError(f"model {self.model.name!r} does not take structures of atoms (input "
                             f"{card.input_kind!r}); the ASE calculator needs a sheet model")
        self.strict = bool(strict)
        self.dtype = dtype
        self.implemented_properties = ["energy", "free_energy", "forces", "tile_energies"]
        self._was_out = False  # the last structure was outside the domain: warn again only after a return

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        from .domain import DomainSpec, assess
        from .errors import DomainError
        from .forces import energy_and_forces

        res = energy_and_forces(self.model, self.atoms, self.dtype)
        self.results = {"energy": res.energy, "free_energy": res.energy, "forces": res.forces,
                        "tile_energies": res.maps[0]}
        spec = DomainSpec.from_card(self.model.card)
        if spec is None:
            return
        a = self.atoms
        verdict = assess(spec, res.maps[1], a.positions, a.numbers, a.cell.lengths()[:2])
        self.results.update(uncertainty=verdict.sigma, out_of_domain=verdict.out_of_domain,
                            domain_reasons=list(verdict.reasons))
        if verdict.out_of_domain:
            line = (f"the structure is outside the domain of model {self.model.name!r}: "
                    f"{'; '.join(verdict.reasons)}; its energy is an extrapolation, not to be trusted")
            if self.strict:
                self.results = {}
                raise DomainError(line)
            if not self._was_out:
                warnings.warn(line, DomainWarning, stacklevel=2)
        self._was_out = verdict.out_of_domain
