"""The 2-D ferromagnetic Ising model (paper §3.1): exact energies and sampling.

Configurations are sampled with the Swendsen–Wang cluster algorithm, run on
many independent chains at once: the bond graph of every chain goes into one
sparse graph whose connected components are the clusters. Cluster updates do
not suffer the critical slowing-down of single-spin Metropolis near
``Tc = 2 / ln(1 + sqrt 2) ≈ 2.269 J/k_B``, which matters for the 128×128
transfer test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import InputError

__all__ = ["T_CRITICAL", "ising_energy", "SwendsenWang", "sample_ising", "IsingDataset"]

#: Onsager's critical temperature of the square-lattice Ising model, in J/k_B.
T_CRITICAL = 2.0 / np.log1p(np.sqrt(2.0))


def ising_energy(spins: np.ndarray, J: float = 1.0) -> np.ndarray:
    """Exact energy ``H = -J Σ_<ij> σ_i σ_j`` of periodic configurations.

    Parameters
    ----------
    spins : numpy.ndarray
        Shape ``(..., L, M)`` with values ±1.
    J : float
        Coupling, in units of J (default 1).

    Returns
    -------
    numpy.ndarray
        Energies in J, shape ``spins.shape[:-2]``; each nearest-neighbour bond
        of the periodic lattice is counted once (right and down neighbours).
    """
    s = np.asarray(spins, dtype=np.int64)
    bonds = s * np.roll(s, -1, axis=-1) + s * np.roll(s, -1, axis=-2)
    return -J * bonds.sum(axis=(-1, -2)).astype(np.float64)


class SwendsenWang:
    """Independent Swendsen–Wang chains on periodic ``L × L`` lattices.

    Parameters
    ----------
    n_chains : int
        Number of chains advanced together.
    L : int
        Lattice edge in sites.
    temperatures : array_like
        Temperature of each chain in J/k_B, shape ``(n_chains,)``; ``inf``
        gives uncorrelated random spins.
    rng : numpy.random.Generator
        Source of randomness (chains start from random spins).
    """

    def __init__(self, n_chains: int, L: int, temperatures, rng: np.random.Generator):
        self.L = int(L)
        self.n = int(n_chains)
        self.T = np.broadcast_to(np.asarray(temperatures, dtype=np.float64), (self.n,)).copy()
        if np.any(self.T <= 0):
            raise ValueError("temperatures must be positive")
        self.rng = rng
        self.spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(self.n, L, L))
        # bond activation probability p = 1 - exp(-2J/T) for aligned neighbours
        with np.errstate(divide="ignore"):
            self._p = -np.expm1(-2.0 / self.T)[:, None, None]
        idx = np.arange(self.n * L * L).reshape(self.n, L, L)
        self._idx = idx
        self._right = np.roll(idx, -1, axis=2)
        self._down = np.roll(idx, -1, axis=1)

    def sweep(self, n: int = 1) -> None:
        """Apply ``n`` Swendsen–Wang updates to every chain."""
        nodes = self.n * self.L * self.L
        for _ in range(n):
            s = self.spins
            edges_a, edges_b = [], []
            for nb_idx, shift_axis in ((self._right, 2), (self._down, 1)):
                aligned = s == np.roll(s, -1, axis=shift_axis)
                active = aligned & (self.rng.random(s.shape) < self._p)
                edges_a.append(self._idx[active])
                edges_b.append(nb_idx[active])
            a = np.concatenate(edges_a)
            b = np.concatenate(edges_b)
            graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(nodes, nodes))
            n_comp, labels = connected_components(graph, directed=False)
            flip = np.where(self.rng.random(n_comp) < 0.5, -1, 1).astype(np.int8)
            self.spins = s * flip[labels].reshape(s.shape)


def sample_ising(
    n: int,
    L: int,
    temperatures,
    seed: int | None = 0,
    n_equilibrate: int = 100,
    interval: int = 5,
    max_chains: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` equilibrium configurations.

    Chain ``k`` runs at ``temperatures[k % len(temperatures)]``; each chain is
    equilibrated with ``n_equilibrate`` cluster updates and then yields one
    configuration every ``interval`` updates.

    Parameters
    ----------
    n : int
        Number of configurations.
    L : int
        Lattice edge.
    temperatures : array_like
        Temperatures in J/k_B, cycled over the chains.
    seed : int or None
        Seed of the generator; equal seeds give equal samples.
    n_equilibrate, interval, max_chains : int
        Sampler settings.

    Returns
    -------
    spins : numpy.ndarray of int8, shape (n, L, L)
    T : numpy.ndarray of float64, shape (n,)
        Temperature at which each configuration was sampled.
    """
    temps = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
    rng = np.random.default_rng(seed)
    n_chains = int(min(n, max_chains))
    per_chain = -(-n // n_chains)
    chain_T = temps[np.arange(n_chains) % temps.size]
    sampler = SwendsenWang(n_chains, L, chain_T, rng)
    sampler.sweep(n_equilibrate)
    out = np.empty((per_chain, n_chains, L, L), dtype=np.int8)
    for k in range(per_chain):
        if k:
            sampler.sweep(interval)
        out[k] = sampler.spins
    spins = out.reshape(-1, L, L)[:n]
    T = np.tile(chain_T, per_chain)[:n]
    return spins, T


@dataclass
class IsingDataset:
    """Ising configurations with exact energies.

    Attributes
    ----------
    spins : numpy.ndarray, int8, shape (N, L, L)
    energies : numpy.ndarray, float64, shape (N,), in J
    temperatures : numpy.ndarray, float64, shape (N,), in J/k_B
    """

    spins: np.ndarray
    energies: np.ndarray
    temperatures: np.ndarray

    @classmethod
    def generate(
        cls,
        n: int,
        L: int = 8,
        t_min: float = 1.0,
        t_max: float = 5.0,
        critical_fraction: float = 0.25,
        random_fraction: float = 0.05,
        seed: int = 0,
    ) -> "IsingDataset":
        """Sample configurations across temperatures, with extra weight near Tc.

        A ``critical_fraction`` of the chains runs in ``[0.9 Tc, 1.1 Tc]``, a
        ``random_fraction`` at infinite temperature (uncorrelated spins, so
        that every local pattern appears), the rest uniformly in
        ``[t_min, t_max]``; the order is shuffled.
        """
        rng = np.random.default_rng(seed)
        n_chains = int(min(n, 2000))
        n_crit = int(round(critical_fraction * n_chains))
        n_rand = int(round(random_fraction * n_chains))
        temps = np.concatenate(
            [
                rng.uniform(0.9 * T_CRITICAL, 1.1 * T_CRITICAL, n_crit),
                np.full(n_rand, np.inf),
                rng.uniform(t_min, t_max, n_chains - n_crit - n_rand),
            ]
        )
        spins, T = sample_ising(n, L, temps, seed=int(rng.integers(2**31)), max_chains=n_chains)
        order = rng.permutation(n)
        spins, T = spins[order], T[order]
        return cls(spins=spins, energies=ising_energy(spins), temperatures=T)

    def save(self, path) -> None:
        """Write the dataset to an ``.npz`` file (spins, energies, temperatures)."""
        np.savez_compressed(path, spins=self.spins, energies=self.energies, temperatures=self.temperatures)

    @classmethod
    def load(cls, path) -> "IsingDataset":
        """Read a dataset written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not such a dataset, including object arrays:
            ``allow_pickle=False`` keeps a data file from running code.
        """
        try:
            with np.load(path, allow_pickle=False) as d:
                return cls(spins=d["spins"], energies=d["energies"], temperatures=d["temperatures"])
        except (KeyError, ValueError, EOFError) as exc:
            raise InputError(f"{path} is not an ednn-dask Ising dataset .npz ({exc})") from None
