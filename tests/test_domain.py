"""The domain of validity: feature distances, atom descriptors, and what predict says about structures."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ednn_dask.cli import main
from ednn_dask.domain import (DomainSpec, assess, bond_deviations, bond_temperature, environments, site_offsets,
                              tile_flags)
from ednn_dask.models import get_model
from ednn_dask.nn.domain import fit_feature_domain
from ednn_dask.predict import predict_frames
from ednn_dask.systems import sheets as S


def test_feature_distance_is_the_mahalanobis_distance():
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(size=(5000, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6))
    domain = fit_feature_domain(z, ridge=0.0)
    mean, cov = z.mean(0), torch.cov(z.T)
    probe = z[:10] + torch.from_numpy(rng.normal(size=(10, 6)))
    want = torch.einsum("ni,ij,nj->n", probe - mean, torch.linalg.inv(cov), probe - mean) / 6
    torch.testing.assert_close(domain(probe.float()).double(), want, rtol=1e-3, atol=1e-4)
    assert abs(float(domain(z.float()).mean()) - 1.0) < 0.01  # training points: d2 about 1 on average
    maps = domain(probe.float().T.reshape(1, 6, 2, 5))  # the per-position form (feature maps) gives the same
    torch.testing.assert_close(maps[0].reshape(-1), domain(probe.float()), rtol=1e-5, atol=1e-5)


def test_site_offsets_and_environments_of_a_sheet():
    g = S.hexagonal_sheet()
    off = site_offsets(g.positions, 2.5)
    assert np.abs(off).max() < 1e-9
    moved = g.positions.copy()
    moved[7, :2] += (0.1, -0.05)
    np.testing.assert_allclose(site_offsets(moved, 2.5)[7], (0.1, -0.05), atol=1e-9)
    L = g.cell.lengths()[:2]
    assert environments(g.positions, g.numbers, L) == {"C:CCC": 60}
    hbn = S.hexagonal_sheet(species=("B", "N"))
    assert environments(hbn.positions, hbn.numbers, L) == {"B:NNN": 30, "N:BBB": 30}
    vac = S.add_vacancies(g, 1, np.random.default_rng(0))
    assert environments(vac.positions, vac.numbers, L) == {"C:CCC": 56, "C:CC": 3}


def test_bond_temperature_reads_heat_not_strain_or_collective_motion():
    from ednn_dask.systems import md

    g = S.supercell(S.hexagonal_sheet(), 3, 3)
    L = g.cell.lengths()[:2]
    assert bond_temperature(g.positions, g.numbers, L) < 1e-6  # the perfect lattice
    stretched = g.positions * (1.03, 1.0, 1.0)  # 3 % along x: each bond direction its own length
    assert bond_temperature(stretched, g.numbers, L * (1.03, 1.0)) < 1e-6
    wave = g.positions.copy()  # a long wave moves atoms 0.3 Å off their sites (70 000 K as site offsets)
    wave[:, 1] += 0.3 * np.sin(2 * np.pi * wave[:, 0] / L[0])
    assert bond_temperature(wave, g.numbers, L) < 300.0
    rng = np.random.default_rng(3)
    hot = S.thermal_displacements(g, 3000.0, rng)
    assert 1800.0 < bond_temperature(hot.positions, hot.numbers, L) < 3500.0  # independent displacements
    frames = md.sample("graphene", rng, 1000.0, steps=150, snapshots=4, every=50)
    reads = [bond_temperature(f.positions, f.numbers, f.cell.lengths()[:2]) for f in frames]
    assert 600.0 < np.median(reads) < 1400.0
    ribbon = md.build("ribbon-zigzag", rng)  # edge bonds are their own kind: a relaxed ribbon reads cold
    ribbon = md.relax(ribbon)
    dev = bond_deviations(ribbon.positions, ribbon.numbers, ribbon.cell.lengths()[:2])
    assert np.sqrt(np.mean(dev**2)) < 0.01


def _strained(nx: int = 11, ny: int = 3):
    """Graphene stretched along x by one focus region (8 px of 0.104 Å): 3 % for 11 units, accepted by predict."""
    atoms = S.hexagonal_sheet(nx, ny)
    cell = atoms.cell.array.copy()
    factor = (cell[0, 0] + 8 * 2.5 / 24) / cell[0, 0]
    atoms.positions[:, 0] *= factor
    cell[0, 0] *= factor
    atoms.set_cell(cell)
    return atoms


@pytest.fixture(scope="module")
def sheet_model():
    model = get_model("hexagonal-sheet")
    assert model.card.domain is not None and model.card.n_maps == 2
    return model


def test_training_like_cells_are_in_the_domain_with_calibrated_uncertainty(sheet_model):
    from ednn_dask.data.sheets import sample_md
    from ednn_dask.reference import tersoff_energy

    rng = np.random.default_rng(4242)  # MD snapshots as the training cells were drawn (those used seed 1)
    frames = [f for T in (300.0, 600.0, 900.0, 1200.0) for f in sample_md("hexagonal", rng, T, frames=3)]
    res = predict_frames(sheet_model, frames)
    assert not res.out_of_domain.any() and res.domain_warning is None
    err = res.energies - np.array([tersoff_energy(a) for a in frames])
    assert np.all(res.uncertainty > 0) and np.median(np.abs(err) / res.uncertainty) < 2.0


def test_strain_species_mixtures_and_holes_are_flagged(sheet_model):
    rng = np.random.default_rng(1)
    mix = S.substitute(S.supercell(S.hexagonal_sheet(), 2, 2), 0.3, rng)
    hot = S.thermal_displacements(S.supercell(S.hexagonal_sheet(), 3, 3), 4000.0, rng)  # beyond training heat
    res = predict_frames(sheet_model, [_strained(), mix, hot])
    assert res.out_of_domain.tolist() == [True, True, True]
    assert "displaced from the lattice sites" in " ".join(res.reasons[0])
    assert "atomic environments" in " ".join(res.reasons[1])
    assert "bonds stretch and compress as at" in " ".join(res.reasons[2])
    line = res.domain_warning
    assert "3 of 3 structures are outside the domain" in line and "\n" not in line


def test_predict_cli_warns_or_fails_with_strict(tmp_path, sheet_model, capsys):
    import ase.io

    path = tmp_path / "strained.extxyz"
    ase.io.write(path, [_strained()], format="extxyz")
    assert main(["predict", "hexagonal-sheet", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["out_of_domain"] is True and out["out_of_domain_structures"] == [0]
    assert len(out["uncertainties"]) == 1 and out["uncertainties_per_atom"][0] > 0
    assert captured.err.count("\n") == 1 and "warning: structure 0 is outside the domain" in captured.err
    proc = subprocess.run([sys.executable, "-m", "ednn_dask.cli", "predict", "hexagonal-sheet", str(path), "--strict"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("ednn-dask: error: structure 0 is outside")


def test_models_without_a_domain_say_so():
    ising = get_model("ising")
    assert ising.card.domain is None and DomainSpec.from_card(ising.card) is None
    from ednn_dask.predict import predict_spins

    res = predict_spins(ising, np.ones((2, 8, 8), np.int8))
    assert res.uncertainty is None and res.out_of_domain is None and "out_of_domain" not in res.as_json()


def test_tile_flags_find_the_region_and_the_single_tile():
    spec = DomainSpec(mean_d2_max=3.0, top_d2_max=15.0, tile_d2_max=70.0, window_tiles=5)
    d2 = np.ones((40, 60))
    d2[10:20, 30:40] = 5.0  # a region a little off: only its neighbourhood mean says so
    d2[35, 5] = 100.0  # one tile far off
    flags = tile_flags(spec, d2)
    assert flags[12:18, 32:38].all() and flags[35, 5]  # the core of the region, and the single tile
    assert not flags[0, 0] and not flags[30, 50] and not flags[25:, 20:28].any()
    # a structure: the one far tile is enough; the region alone is not (its mean and top tenth are in the domain)
    verdict = assess(spec, d2)
    assert verdict.out_of_domain and "one of its tiles" in verdict.reasons[0]
    d2[35, 5] = 1.0
    assert not assess(spec, d2).out_of_domain
    d2[:20] = 6.0  # half the structure off: its mean says so
    assert "mean feature distance" in assess(spec, d2).reasons[0]
