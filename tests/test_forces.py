"""Forces through the raster and the ASE calculator: finite differences of the model's own energy, predict's energies."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from ednn_dask.forces import energy_and_forces
from ednn_dask.models import get_model
from ednn_dask.raster import RasterGrid, rasterize, rasterize_adjoint
from ednn_dask.raster._register import honeycomb_offset, offset_jacobian
from ednn_dask.systems import sheets as S


def test_rasterize_adjoint_is_the_gradient_of_the_raster():
    rng = np.random.default_rng(0)
    grid = RasterGrid((48, 40), (0.1, 0.12))
    pos = rng.uniform(0, 1, (9, 2)) * grid.lengths_xy
    pos[0] = (0.05, 0.02)  # at the corner: its stencil wraps around both edges
    pos[1] = (-0.3123, 5.1234)  # outside the cell: drawn as its periodic image
    w = rng.uniform(1, 7, 9)
    G = rng.normal(size=grid.shape)
    grad = rasterize_adjoint(pos, w, grid, G)
    eps, fd = 1e-5, np.zeros_like(pos)
    for a in range(len(pos)):
        for k in range(2):
            p, q = pos.copy(), pos.copy()
            p[a, k] += eps
            q[a, k] -= eps
            fd[a, k] = ((rasterize(p, w, grid, dtype=np.float64) - rasterize(q, w, grid, dtype=np.float64)) * G).sum()
    np.testing.assert_allclose(grad, fd / (2 * eps), rtol=0, atol=1e-6 * np.abs(fd / (2 * eps)).max())


def test_offset_jacobian_is_the_derivative_of_the_registration_offset():
    rng = np.random.default_rng(1)
    xy = S.thermal_displacements(S.hexagonal_sheet(species=("B", "N")), 800.0, rng).positions[:, :2]
    for mirror in (False, True):
        jac = offset_jacobian(xy, 2.5, mirror_y=mirror)
        for a in (0, 11, 37):
            for k in range(2):
                p, q = xy.copy(), xy.copy()
                eps = 1e-6
                sign = -1.0 if (mirror and k == 1) else 1.0  # the derivative is in the mirrored frame
                p[a, k] += sign * eps
                q[a, k] -= sign * eps
                fd = (honeycomb_offset(p, 2.5, mirror_y=mirror)[0] - honeycomb_offset(q, 2.5, mirror_y=mirror)[0]) / (2 * eps)
                np.testing.assert_allclose(jac[a, :, k], fd, atol=1e-8)
    assert np.allclose(offset_jacobian(S.hexagonal_sheet().positions, 2.5), np.eye(2) / 60, atol=1e-12)


def _structures(name: str):
    rng = np.random.default_rng(5)
    if name == "porous-graphene":
        return [S.thermal_displacements(S.porous_graphene(rng=rng), 1000.0, rng)]
    hbn = S.hexagonal_sheet(species=("N", "B"))  # the other orientation: registered with a mirror in y
    vac = S.add_vacancies(S.hexagonal_sheet(), 2, rng)
    return [S.thermal_displacements(a, 900.0, rng) for a in (hbn, vac)]


@pytest.mark.parametrize("name", ["hexagonal-sheet", "porous-graphene"])
def test_forces_are_minus_the_gradient_of_the_model_energy(name):
    from ednn_dask.predict import predict_frames

    model = get_model(name)
    for atoms in _structures(name):
        res32 = energy_and_forces(model, atoms)
        assert res32.energy == predict_frames(model, [atoms]).energies[0]  # predict's energy, bit for bit
        res = energy_and_forces(model, atoms, torch.float64)
        scale = np.abs(res.forces).max()
        assert scale > 0.1 and np.abs(res.forces.sum(0)).max() < 1e-9 * scale  # no net force
        np.testing.assert_allclose(res32.forces, res.forces, rtol=0, atol=1e-4 * scale)
        rng = np.random.default_rng(2)
        for a in rng.choice(len(atoms), 3, replace=False):
            for k in range(2):
                eps = 1e-4
                p, q = atoms.copy(), atoms.copy()
                p.positions[a, k] += eps
                q.positions[a, k] -= eps
                fd = -(energy_and_forces(model, p, torch.float64).energy
                       - energy_and_forces(model, q, torch.float64).energy) / (2 * eps)
                assert abs(fd - res.forces[a, k]) <= 1e-6 * scale + 1e-6 * abs(fd), (a, k, fd, res.forces[a, k])


def test_forces_move_with_the_structure():
    model = get_model("hexagonal-sheet")
    atoms = _structures("hexagonal-sheet")[1]
    moved = atoms.copy()
    # a lattice vector that is whole focus regions (a1 + 2 a2 = 48 x 40 px of 8): the registered raster moves
    # by whole tiles, so the energy and forces are the same (other lattice vectors shift the tiling by 4 px)
    moved.positions[:, :2] += (2 * 2.5, 2.5 * np.sqrt(3.0))
    a, b = energy_and_forces(model, atoms, torch.float64), energy_and_forces(model, moved, torch.float64)
    assert abs(a.energy - b.energy) < 1e-9 * abs(a.energy)
    np.testing.assert_allclose(a.forces, b.forces, atol=1e-9)


def test_ase_calculator_gives_energy_forces_tiles_and_the_domain(tmp_path):
    from ase.calculators.calculator import PropertyNotImplementedError

    from ednn_dask.ase import DomainWarning, EDNNCalculator
    from ednn_dask.errors import DomainError, InputError
    from ednn_dask.predict import predict_frames
    from ednn_dask.raster import StructureError

    model = get_model("hexagonal-sheet")
    atoms = _structures("hexagonal-sheet")[1]
    atoms.calc = EDNNCalculator("hexagonal-sheet")
    pred = predict_frames(model, [atoms])
    assert atoms.get_potential_energy() == pred.energies[0]
    assert atoms.get_potential_energy(force_consistent=True) == pred.energies[0]
    np.testing.assert_array_equal(atoms.get_forces(), energy_and_forces(model, atoms).forces)
    tiles = atoms.calc.get_property("tile_energies")
    assert tiles.shape == (15, 15) and abs(tiles.sum() - pred.energies[0]) < 1e-9 * abs(pred.energies[0])
    assert atoms.calc.results["uncertainty"] == pred.uncertainty[0] and not atoms.calc.results["out_of_domain"]
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()
    # the same refusal as predict: a cell that is not whole pixels
    bad = atoms.copy()
    bad.set_cell(bad.cell.array * (1.01, 1.0, 1.0), scale_atoms=True)
    bad.calc = EDNNCalculator(model)
    with pytest.raises(StructureError) as refused:
        bad.get_potential_energy()
    with pytest.raises(StructureError) as by_predict:
        predict_frames(model, [bad])
    assert str(refused.value).split(": ", 1)[1] == str(by_predict.value).split(": ", 1)[1]
    # outside the domain: a warning, or with strict=True the error and no results
    mix = S.substitute(S.supercell(S.hexagonal_sheet(), 2, 2), 0.3, np.random.default_rng(1))
    mix.calc = EDNNCalculator(model)
    with pytest.warns(DomainWarning, match="outside the domain"):
        mix.get_potential_energy()
    moved = mix.copy()  # still outside: no second warning, the result says it
    moved.positions[0, 0] += 0.01
    moved.calc = mix.calc
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved.get_potential_energy()
    assert moved.calc.results["out_of_domain"]
    mix.calc = EDNNCalculator(model, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DomainError, match="atomic environments"):
            mix.get_forces()
    assert mix.calc.results == {}
    with pytest.raises(InputError, match="sheet model"):
        EDNNCalculator("ising")
