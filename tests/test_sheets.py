"""Structures, the Tersoff reference and sheet datasets."""
import numpy as np
import pytest
from ase import Atoms

from ednn_dask.data.sheets import SHEET_SPACING, generate_dataset, open_dataset, sample_structure
from ednn_dask.reference import tersoff_energy
from ednn_dask.systems import sheets as S


def test_paper_cell_geometry():
    g = S.hexagonal_sheet()
    assert len(g) == 60
    np.testing.assert_allclose(g.cell.lengths()[:2], [12.5, 12.990381], atol=1e-5)
    d = g.get_all_distances(mic=True)
    np.fill_diagonal(d, 10)
    np.testing.assert_allclose(d.min(1), 2.5 / np.sqrt(3), atol=1e-9)  # every atom at bond length
    assert (np.isclose(d, 2.5 / np.sqrt(3)).sum(1) == 3).all()  # three neighbours each
    assert np.all(g.positions[:, 2] == 0)
    hbn = S.hexagonal_sheet(species=("B", "N"))
    assert hbn.get_chemical_symbols().count("B") == 30


def test_random_hexagonal_covers_the_paper_set_on_supercells():
    rng = np.random.default_rng(0)
    kinds, vacancies = set(), []
    for _ in range(60):
        a = S.random_hexagonal(rng, 2, 3, max_vacancies=4)
        np.testing.assert_allclose(a.cell.lengths()[:2], [25.0, 3 * 12.990381], atol=1e-5)
        vacancies.append(360 - len(a))
        sym = set(a.get_chemical_symbols())
        kinds.add("graphene" if sym == {"C"} else "hBN" if sym == {"B", "N"} else "stripes")
        n_b, n_n = a.get_chemical_symbols().count("B"), a.get_chemical_symbols().count("N")
        assert abs(n_b - n_n) <= 4  # B and N come in pairs (up to the removed atoms)
    assert kinds == {"graphene", "hBN", "stripes"}
    assert 0 <= min(vacancies) and max(vacancies) <= 4
    assert 0.15 < np.mean(np.array(vacancies) > 0) < 0.55  # a third of the cells lose atoms


def test_tersoff_is_extensive_and_graphene_is_stable():
    g = S.hexagonal_sheet()
    e1 = tersoff_energy(g)
    assert e1 / 60 == pytest.approx(-7.3869, abs=1e-3)
    rng = np.random.default_rng(1)
    hot = S.thermal_displacements(g, 1000, rng)
    assert tersoff_energy(hot) > e1
    assert tersoff_energy(S.supercell(hot, 2, 3)) == pytest.approx(6 * tersoff_energy(hot), rel=1e-12)


def test_modifiers_keep_plane_and_counts():
    rng = np.random.default_rng(2)
    g = S.hexagonal_sheet()
    assert len(S.add_vacancies(g, 2, rng)) == 58
    sub = S.substitute(g, 0.5, rng)
    syms = sub.get_chemical_symbols()
    assert syms.count("B") + syms.count("N") == 30
    stripes = S.heterostructure_stripes(S.supercell(g, 2, 1), width=6.25)
    assert 0 < stripes.get_chemical_symbols().count("C") < 120
    hot = S.thermal_displacements(g, 1000, rng)
    assert np.all(hot.positions[:, 2] == 0)
    delta = hot.positions - g.positions
    L = g.cell.lengths()
    delta -= L * np.round(delta / L)  # wrapped atoms: minimum image
    rms = np.sqrt(np.mean(np.sum(delta**2, 1)))
    assert 0.03 < rms < 0.042  # sqrt(2 kT / 137 eV/Å²) = 0.0355 Å at 1000 K


@pytest.mark.parametrize("species", [("C", "C"), ("B", "N")])
def test_einstein_constants_are_the_potentials_curvature(species):
    g = S.hexagonal_sheet(species=species)
    e0, u = tersoff_energy(g), 0.01
    for i in (0, 1):
        moved = g.copy()
        moved.positions[i, 0] += u
        k = 2 * (tersoff_energy(moved) - e0) / u**2
        assert k == pytest.approx(S.EINSTEIN_K[g.get_chemical_symbols()[i]], rel=0.03)


def test_thermal_energy_is_near_equipartition():
    # uncorrelated displacements with the single-atom curvature: mean excess energy ~ kT per atom
    g, rng = S.supercell(S.hexagonal_sheet(), 2, 2), np.random.default_rng(5)
    e0, kT = tersoff_energy(g), 8.617333262e-5 * 1000
    excess = np.mean([tersoff_energy(S.thermal_displacements(g, 1000, rng)) - e0 for _ in range(5)]) / len(g)
    assert 0.8 * kT < excess < 1.3 * kT
    with pytest.raises(ValueError, match="Einstein"):
        S.thermal_displacements(Atoms("Si", cell=[3, 3, 20], pbc=True), 300, rng)


def test_porous_graphene_has_holes_and_no_dangling_atoms():
    from ase.neighborlist import neighbor_list

    p = S.porous_graphene(rng=np.random.default_rng(3))
    assert 200 < len(p) < 540
    np.testing.assert_allclose(p.cell.lengths()[:2], [37.5, 38.971143], atol=1e-5)
    assert np.bincount(neighbor_list("i", p, 1.7), minlength=len(p)).min() >= 2


def test_dataset_generate_resume_and_reproducible(tmp_path):
    a = generate_dataset(tmp_path / "a.zarr", "hexagonal", n=20, seed=4, block=5, workers=1, progress=False)
    import zarr

    root = zarr.open_group(str(a), mode="r+")
    full = root["energies"][:].copy()
    # simulate an interrupted run: blocks 2 and 3 lost
    root["done"][2:4] = False
    root["energies"][10:20] = 0.0
    with pytest.raises(ValueError, match="incomplete"):
        open_dataset(a)
    generate_dataset(a, "hexagonal", n=20, seed=4, block=5, workers=2, progress=False)
    d = open_dataset(a)
    np.testing.assert_array_equal(d["energies"], full)
    assert d["rasters"].shape == (20, 3, 120, 120)
    assert d["attrs"]["spacing"] == list(SHEET_SPACING) and d["attrs"]["units"] == "eV"
    # energies really are the reference of the stored structures
    from ase import Atoms

    k = 7
    n = int(root["n_atoms"][k])
    atoms = Atoms(numbers=root["numbers"][k, :n], positions=root["positions"][k, :n],
                  cell=[*root["cells"][k][:2], 20.0], pbc=True)
    assert tersoff_energy(atoms) == pytest.approx(d["energies"][k], abs=1e-3)
    with pytest.raises(ValueError, match="different dataset"):
        generate_dataset(a, "hexagonal", n=20, seed=5, block=5, progress=False)
    with pytest.raises(ValueError, match="different dataset"):
        generate_dataset(a, "hexagonal", n=20, seed=4, block=5, progress=False, sampler="einstein")


def test_md_and_einstein_samplers_are_recorded_and_differ(tmp_path):
    """The MD sampler's classes (ribbons included) and schedule are in the attrs; the ladder schedule's
    temperatures show in the energies; the Einstein sampler stays available."""
    md = generate_dataset(tmp_path / "md.zarr", "hexagonal", n=16, seed=3, block=8, workers=1, progress=False,
                          schedule="ladder", frames=2)
    ein = generate_dataset(tmp_path / "e.zarr", "hexagonal", n=8, seed=3, block=8, workers=1, progress=False,
                           sampler="einstein")
    dm, de = open_dataset(md), open_dataset(ein)
    assert dm["attrs"]["sampler"] == "md" and dm["attrs"]["schedule"] == "ladder" and dm["attrs"]["frames"] == 2
    assert "ribbon-zigzag" in dm["attrs"]["classes"] and dm["attrs"]["temperature_range"] == [300.0, 1500.0]
    assert de["attrs"]["sampler"] == "einstein" and "classes" not in de["attrs"]
    assert dm["rasters"].shape[1:] == de["rasters"].shape[1:] == (3, 120, 120)


def test_sample_structure_kinds():
    rng = np.random.default_rng(0)
    kinds = {tuple(sorted(set(sample_structure("hexagonal", rng).get_chemical_symbols()))) for _ in range(30)}
    assert ("C",) in kinds and ("B", "N") in kinds and ("B", "C", "N") in kinds
    with pytest.raises(ValueError, match="unknown dataset kind"):
        sample_structure("diamond", rng)


def test_open_dataset_species_subset(tmp_path):
    p = generate_dataset(tmp_path / "p.zarr", "porous-graphene", n=4, seed=1, block=2, workers=1, progress=False,
                         sampler="einstein")  # what the species subset does is the same for both samplers
    full, carbon = open_dataset(p), open_dataset(p, ("C",))
    assert carbon["rasters"].shape == (4, 1, 360, 360) and carbon["attrs"]["species"] == ["C"]
    np.testing.assert_array_equal(carbon["rasters"][:, 0], full["rasters"][:, 1])
    h = generate_dataset(tmp_path / "h.zarr", "hexagonal", n=10, seed=3, block=10, workers=1, progress=False,
                         sampler="einstein")
    with pytest.raises(ValueError, match="contains species outside C"):
        open_dataset(h, ("C",))
