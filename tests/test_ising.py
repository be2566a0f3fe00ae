"""Ising energies and sampling against exact results."""
import itertools

import numpy as np
import pytest
from scipy.special import ellipk

from ednn_dask.systems.ising import T_CRITICAL, IsingDataset, ising_energy, sample_ising


def loop_energy(s):
    L, M = s.shape
    e = 0
    for i in range(L):
        for j in range(M):
            e -= s[i, j] * s[(i + 1) % L, j] + s[i, j] * s[i, (j + 1) % M]
    return e


def test_energy_matches_loops_and_ground_state():
    rng = np.random.default_rng(0)
    s = rng.choice([-1, 1], size=(5, 6, 4))
    np.testing.assert_array_equal(ising_energy(s), [loop_energy(x) for x in s])
    assert ising_energy(np.ones((8, 8))) == -128  # 2 L^2 bonds
    checker = np.indices((8, 8)).sum(0) % 2 * 2 - 1
    assert ising_energy(checker) == 128


def test_critical_temperature():
    assert T_CRITICAL == pytest.approx(2.269185, abs=1e-6)


def test_swendsen_wang_samples_boltzmann_distribution_on_3x3():
    """Exact enumeration of all 512 states of a periodic 3x3 lattice."""
    T = 2.5
    states = np.array(list(itertools.product([-1, 1], repeat=9))).reshape(-1, 3, 3)
    e_all = ising_energy(states)
    w = np.exp(-e_all / T)
    levels = np.unique(e_all)
    exact = np.array([w[e_all == e].sum() for e in levels]) / w.sum()
    spins, _ = sample_ising(40000, 3, [T], seed=5, n_equilibrate=20, interval=2)
    e = ising_energy(spins)
    observed = np.array([(e == lv).mean() for lv in levels])
    # 40000 samples from 2000 chains: allow ~5 standard errors
    err = np.sqrt(exact * (1 - exact) / 40000) * 5 + 2e-3
    assert np.all(np.abs(observed - exact) < err), (observed, exact)


def onsager_energy_per_site(T):
    b = 1.0 / T
    k = 2 * np.sinh(2 * b) / np.cosh(2 * b) ** 2
    return -1 / np.tanh(2 * b) * (1 + 2 / np.pi * (2 * np.tanh(2 * b) ** 2 - 1) * ellipk(k**2))


@pytest.mark.parametrize("T", [1.8, 3.0])
def test_energy_per_site_matches_onsager(T):
    spins, _ = sample_ising(300, 32, [T], seed=7)
    u = ising_energy(spins) / 32**2
    assert abs(u.mean() - onsager_energy_per_site(T)) < 5 * u.std() / np.sqrt(u.size) + 2e-3


def test_dataset_is_reproducible_and_roundtrips(tmp_path):
    a = IsingDataset.generate(300, 8, seed=3)
    b = IsingDataset.generate(300, 8, seed=3)
    np.testing.assert_array_equal(a.spins, b.spins)
    np.testing.assert_array_equal(a.energies, ising_energy(a.spins))
    assert set(np.unique(a.spins)) == {-1, 1}
    assert (np.abs(a.temperatures - T_CRITICAL) < 0.1 * T_CRITICAL).mean() > 0.15
    a.save(tmp_path / "d.npz")
    c = IsingDataset.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(a.spins, c.spins)
