"""The stretch of a sheet's lattice along x and y (structure-factor peaks), and the words it gives refusals."""
import numpy as np
import pytest
from ase.build import graphene, make_supercell

from ednn_dask.data.sheets import SHEET_SPACING, SPECIES
from ednn_dask.raster import HONEYCOMB, StructureError, raster_from_atoms
from ednn_dask.raster._strain import lattice_stretch
from ednn_dask.systems import md


@pytest.mark.parametrize("cls", ["graphene", "hbn", "stripes", "vacancies", "ribbon-zigzag", "ribbon-armchair",
                                 "porous"])
def test_md_snapshots_strained_or_not_give_their_exact_strain(cls):
    """MD snapshots of every class, 300-1500 K, unstrained and under random uniaxial/biaxial/shear strain up to 3 %."""
    rng = np.random.default_rng(7)
    for temperature, strain in [(300.0, (0.0, 0.0)), (1500.0, (0.0, 0.0)), (1000.0, md.random_strain(rng)),
                                (1500.0, md.random_strain(rng))]:
        atoms = md.sample(cls, rng, temperature, strain_xy=strain, steps=40, snapshots=1, every=20)[0]
        fit = lattice_stretch(atoms.positions, atoms.cell.lengths()[:2], 2.5)
        assert fit is not None and fit.periods_x is not None and fit.periods_y is not None, (cls, temperature, fit)
        np.testing.assert_allclose(fit.strain, strain, atol=1e-12)


def test_another_lattice_constant_and_atoms_off_any_lattice():
    sheet = make_supercell(graphene(a=2.46, vacuum=10.0), [[1, 0, 0], [1, 2, 0], [0, 0, 1]]).repeat((6, 3, 1))
    fit = lattice_stretch(sheet.positions, sheet.cell.lengths()[:2], 2.5)
    assert fit.isotropic and (fit.periods_x, fit.periods_y) == (6, 3)
    assert fit.s_x == pytest.approx(2.46 / 2.5, abs=1e-12) and fit.s_y == pytest.approx(2.46 / 2.5, abs=1e-12)
    rng = np.random.default_rng(0)
    assert lattice_stretch(rng.uniform(0, 20, (200, 2)), (20.0, 20.0), 2.5) is None


def test_a_strained_sheet_is_refused_with_its_strain_per_axis():
    rng = np.random.default_rng(3)
    atoms = md.strain(md.build("graphene", rng), 0.03, -0.01)
    with pytest.raises(StructureError, match=r"strained relative to the model's honeycomb by \+3\.00% along x and "
                                             r"-1\.00% along y, a strain the model was not trained on"):
        raster_from_atoms(atoms, SHEET_SPACING, SPECIES, lattice=HONEYCOMB)
    # biaxial strain below the lattice-constant threshold is still named as a strain
    small = md.strain(md.build("graphene", rng), 0.005, 0.005)
    with pytest.raises(StructureError, match=r"\+0\.50% along x and \+0\.50% along y"):
        raster_from_atoms(small, SHEET_SPACING, SPECIES, lattice=HONEYCOMB)
