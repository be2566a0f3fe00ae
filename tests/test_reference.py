"""The reference potential against LAMMPS ``pair_style tersoff``, an independent implementation."""
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from ednn_dask.reference import tersoff_calculator, tersoff_energy
from ednn_dask.reference._lammps import lammps_binary, lammps_energy_forces
from ednn_dask.reference.tersoff import mixed_parameters
from ednn_dask.systems import md
from ednn_dask.systems import sheets as S

FIXTURE = Path(__file__).parent / "data" / "lammps_reference.json"


def _energy_forces(atoms):
    at = atoms.copy()
    at.calc = tersoff_calculator()
    return at.get_potential_energy(), at.get_forces()


def _fixture():
    rows = json.loads(FIXTURE.read_text())["structures"]
    return [(r["name"], Atoms(r["symbols"], positions=r["positions"], cell=r["cell"], pbc=True), r) for r in rows]


@pytest.mark.parametrize("name,atoms,row", _fixture(), ids=[r[0] for r in _fixture()])
def test_reference_matches_recorded_lammps(name, atoms, row):
    """Every sampler class (MD snapshots, strained, edges, holes, 540-site cells) as LAMMPS computed it."""
    e, f = _energy_forces(atoms)
    assert abs(e - row["energy"]) / len(atoms) < 1e-9
    np.testing.assert_allclose(f, np.array(row["forces"]), atol=1e-8)


@pytest.mark.skipif(lammps_binary() is None, reason="no LAMMPS executable (apt-get install lammps)")
def test_reference_matches_live_lammps():
    """Fresh structures of every class (and a C-N-rich alloy with B-B and N-N bonds) through a live LAMMPS."""
    rng = np.random.default_rng(123)
    cells = [md.sample(c, rng, temperature=1200.0, strain_xy=md.random_strain(rng), steps=30)[0] for c in md.CLASSES]
    cells.append(S.substitute(S.hexagonal_sheet(), 0.5, rng))
    for atoms in cells:
        e, f = _energy_forces(atoms)
        el, fl = lammps_energy_forces(atoms)
        assert abs(e - el) / len(atoms) < 1e-9
        np.testing.assert_allclose(f, fl, atol=1e-8)


def test_omega_weakens_only_cn_neighbourhoods():
    """ω_CN = 0.6381 lowers the energy of a cell with C-N bonds; pure graphene and hBN are as without it."""
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms import TersoffBrenner

    p = mixed_parameters()
    assert p["omega"].tolist() == [1.0, 0.6381, 1.0, 1.0, 1.0, 1.0]
    table = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in p.items() if k != "omega"}
    no_omega = Manybody(**TersoffBrenner(table))

    def plain(atoms):
        at = atoms.copy()
        at.calc = no_omega
        return at.get_potential_energy()

    for atoms in (S.hexagonal_sheet(), S.hexagonal_sheet(species=("B", "N"))):
        assert tersoff_energy(atoms) == pytest.approx(plain(atoms), abs=1e-10)
    stripes = S.heterostructure_stripes(S.hexagonal_sheet(), width=3.0)
    assert (tersoff_energy(stripes) - plain(stripes)) / len(stripes) < -0.05


def test_isolated_bond_is_finite():
    """ζ = 0 with n < 1 (an atom with a single neighbour) gives finite energies and forces."""
    atoms = Atoms("CC", positions=[[5, 5, 0], [6.4, 5, 0]], cell=[20, 20, 20], pbc=True)
    e, f = _energy_forces(atoms)
    assert np.isfinite(e) and np.isfinite(f).all() and e < 0
    np.testing.assert_allclose(f[0], -f[1], atol=1e-12)
