"""Energies and forces of structures with a sheet model: ``F = -∂E/∂r`` through the raster.

The energy is the network's sum over the tiles of the raster ``V`` of the
atoms, and ``V`` is a sum of Gaussians of the positions, so

    ∂E/∂r_a = Σ_p (∂E/∂V[p]) (∂V[p]/∂r_a).

The first factor is torch's gradient of the network with respect to its
input raster, the second the derivative of the atom's own stencils
(:func:`~ednn_dask.raster.rasterize_adjoint`, the stencils
:func:`~ednn_dask.raster.rasterize` draws), and the registration onto the
model's lattice is differentiated as well
(:meth:`~ednn_dask.raster.Registration.pull_back`). The structure is
checked and rasterized exactly as :func:`ednn_dask.predict.predict_frames`
does, so the energy is the one ``predict`` gives.

Stress is not computed: the pixel grid is fixed in Å by the model, so a
homogeneous strain of the cell changes the number of pixels, and the energy
is not a differentiable function of the cell.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ForcesResult", "SheetInput", "energy_and_forces", "energy_network", "sheet_input"]


@dataclass
class ForcesResult:
    """What :func:`energy_and_forces` returns for one structure.

    Attributes
    ----------
    energy : float
        Total energy (model units, eV for the sheet models).
    forces : numpy.ndarray
        ``(N, 3)`` float64, ``-∂E/∂r`` in the atoms' order (eV/Å); the z column is 0.
    maps : numpy.ndarray
        ``(n_maps, n_y, n_x)`` float64 per-tile maps: contributions, and ``d2``
        where the model has a domain.
    """

    energy: float
    forces: np.ndarray
    maps: np.ndarray


@dataclass
class SheetInput:
    """A structure as a sheet model takes it (:func:`sheet_input`).

    Attributes
    ----------
    grid : RasterGrid
    arrays : AtomsArrays
        The user's atoms, in their order.
    registration : Registration or None
        The move onto the model's lattice (``None`` for models without one).
    xy : numpy.ndarray
        ``(N, 2)`` registered positions, wrapped into the cell.
    channel_z : list of int or None
        Atomic number of each raster channel (``None``: one Z-weighted channel).
    gamma : float
        Gaussian width (Å).
    """

    grid: object
    arrays: object
    registration: object
    xy: np.ndarray
    channel_z: list | None
    gamma: float


def sheet_input(model, atoms) -> SheetInput:
    """Check ``atoms`` as ``predict`` does and register them as the model's rasters are drawn."""
    from .predict import _check_frame
    from .raster import GAMMA, AtomsArrays, channel_numbers, check_species

    card = model.card
    how = card.raster_settings()
    grid = _check_frame(card, atoms, 0)
    arrays = AtomsArrays.from_ase(atoms)
    check_species(arrays.numbers, how.species)
    reg = arrays.registration(how.lattice, "structure") if how.lattice else None
    xy = reg.apply(arrays.positions, grid.lengths_xy) if reg is not None else arrays.positions
    return SheetInput(grid, arrays, reg, np.asarray(xy, dtype=np.float64), channel_numbers(how.species, how.channels),
                      card.gamma if card.gamma is not None else GAMMA)


def energy_network(model, dtype: torch.dtype = torch.float32):
    """The EDNN that gives a sheet model's energy in ``dtype``: the model file's own program (float32, what
    ``predict`` runs), or its weights in float64 (built once per model)."""
    if dtype == torch.float32:
        return model.default_ednn()
    if dtype != torch.float64:
        raise ValueError(f"forces in float32 or float64, not {dtype}")
    cache = model.__dict__.setdefault("_float64_ednn", [])
    if not cache:
        from .nn import EDNN

        card = model.card
        cache.append(EDNN(model.tile_net().double(), card.focus, card.context).eval())
    return cache[0]


def energy_and_forces(model, atoms, dtype: torch.dtype = torch.float32) -> ForcesResult:
    """Energy, forces and per-tile maps of one ASE structure with a sheet model.

    Parameters
    ----------
    model : LoadedModel
        A sheet model (input of rasters of atoms).
    atoms : ase.Atoms
        A periodic orthorhombic sheet the model accepts (the checks and errors
        of ``ednn-dask predict``).
    dtype : torch.dtype
        ``torch.float32`` runs the model file's exported program (what
        ``predict`` runs); ``torch.float64`` its weights in double precision
        (for finite-difference checks; the energy differs at float32 round-off).

    Raises
    ------
    StructureError, InputError
        As :func:`ednn_dask.predict.predict_frames` does for a structure it refuses.
    """
    from .raster import rasterize_adjoint
    from .raster._channels import draw_channels

    sheet = sheet_input(model, atoms)
    grid, arrays, reg, xy, channel_z, gamma = (sheet.grid, sheet.arrays, sheet.registration, sheet.xy,
                                               sheet.channel_z, sheet.gamma)
    raster = draw_channels(xy, arrays.numbers, grid, channel_z, gamma, dtype=np.float64 if dtype == torch.float64 else np.float32)
    field = torch.from_numpy(raster)[None].requires_grad_(True)
    with torch.enable_grad():
        maps = energy_network(model, dtype).tile_maps(field)
        energy = maps[:, 0].sum(dtype=torch.float64)
        (image_grad,) = torch.autograd.grad(energy, field)
    image_grad = image_grad[0].double().numpy()
    z = arrays.numbers.astype(np.float64)
    grad = np.zeros_like(xy)
    for c, species in enumerate(channel_z if channel_z is not None else [None]):
        sel = np.ones(len(z), bool) if species is None else z == species
        grad[sel] = rasterize_adjoint(xy[sel], z[sel], grid, image_grad[c], gamma=gamma)
    if reg is not None:
        grad = reg.pull_back(arrays.positions, grad, model.card.lattice)
    forces = np.zeros((len(z), 3))
    forces[:, :2] = -grad
    return ForcesResult(float(energy.detach()), forces, maps[0].detach().double().numpy())
