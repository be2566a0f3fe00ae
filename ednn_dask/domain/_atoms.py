"""What a sheet's atoms say about whether a lattice-registered model has seen their like.

Three descriptors, all measured on the training cells when the domain is
fitted (:mod:`._fit`) and on every structure a user brings (:mod:`._check`):

* how far the atoms sit from the sites of the model's honeycomb once the
  sheet is registered onto it (:func:`site_offsets`). The models learn
  the energy of atoms at the places relative to the pixel grid that training
  showed them: thermal motion up to the training temperature. A strained
  sheet drifts off the sites across the cell (0.33 % strain over 25 nm is
  0.4 Å at the ends), a hotter one spreads wider;
* how much the bonds stretch and compress (:func:`bond_deviations`, read as a temperature by
  :func:`bond_temperature`): local, so it does not see the long-wavelength motion that carries atoms
  far from their sites in molecular dynamics (soft ribbons above all), and it sees heat the
  training never showed wherever it is;
* which atomic environments occur (:func:`environments`: an atom's species
  and those of its bonded neighbours): a C atom between a B and an N, common
  in randomly substituted graphene, never occurs in a model trained on
  graphene, hBN and their straight interfaces.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["site_offsets", "environments", "bond_deviations", "bond_temperature", "BOND", "BOND_VARIANCE_PER_K"]

#: Distance (Å) within which two atoms of a honeycomb sheet count as bonded (first neighbours at
#: a / sqrt(3) = 1.44 Å for a = 2.5 Å, second at 2.5 Å).
BOND = 1.8
#: Mean square bond-length deviation per kelvin (Å²/K) of a sheet in thermal equilibrium: the least-squares
#: slope through the origin of ``mean(bond_deviations**2)`` against T for in-plane Langevin MD with the
#: Tersoff B/C/N reference, 60-atom graphene, hBN and graphene/hBN stripe cells at 300–1500 K
#: (``python scripts/bond_temperature.py``: 1.47e-6 for graphene alone, 1.63e-6 for hBN).
BOND_VARIANCE_PER_K = 1.56e-6
#: Fewest bonds of one kind (species and coordinations of both ends) whose median length is its reference.
_MIN_KIND = 4


def site_offsets(xy: np.ndarray, a: float, origin: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """``(N, 2)`` offset (Å) of each registered atom from the nearest site of the honeycomb ``(a, origin)``.

    The honeycomb's Bravais vectors are ``(a, 0)`` and ``(a/2, a sqrt(3)/2)``,
    its basis ``{0, (a/2, a/(2 sqrt(3)))}`` from ``origin`` (the lattice spec
    of :data:`ednn_dask.raster.HONEYCOMB`).
    """
    xy = np.asarray(xy, dtype=np.float64)[:, :2] - np.asarray(origin, dtype=np.float64)
    basis = np.array([[a, a / 2], [0.0, a * np.sqrt(3) / 2]])  # columns a1, a2
    inv = np.linalg.inv(basis)
    best = np.full(xy.shape[0], np.inf)
    out = np.zeros_like(xy)
    for shift in (np.zeros(2), np.array([a / 2, a / (2 * np.sqrt(3))])):
        p = xy - shift
        base = np.floor(p @ inv.T)
        for d1 in (0.0, 1.0):
            for d2 in (0.0, 1.0):
                off = p - (base + (d1, d2)) @ basis.T
                dist = np.hypot(off[:, 0], off[:, 1])
                closer = dist < best
                best[closer], out[closer] = dist[closer], off[closer]
    return out


def environments(xy: np.ndarray, numbers: np.ndarray, lengths_xy: Sequence[float]) -> dict[str, int]:
    """Counts of atomic environments in a periodic sheet: ``"C:BCN"`` is a C atom bonded to one B, one C and one N.

    An atom's environment is its species and the sorted species of the atoms
    within :data:`BOND` of it (so an atom next to a vacancy, ``"C:CC"``, is
    its own environment).
    """
    from ase.data import chemical_symbols

    z = np.asarray(numbers, dtype=np.int64)
    pairs, _ = _bonds(xy, lengths_xy)
    names = {int(k): chemical_symbols[int(k)] for k in np.unique(z)}
    neighbours: list[list[str]] = [[] for _ in range(len(z))]
    for i, j in pairs:
        neighbours[i].append(names[z[j]])
        neighbours[j].append(names[z[i]])
    keys, counts = np.unique([f"{names[zi]}:{''.join(sorted(nb))}" for zi, nb in zip(z, neighbours)],
                             return_counts=True)
    return {str(k): int(n) for k, n in zip(keys, counts)}


def _bonds(xy: np.ndarray, lengths_xy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Bonded pairs ``(M, 2)`` of a periodic sheet and their bond vectors ``(M, 2)`` (minimum image)."""
    L = np.asarray(lengths_xy, dtype=np.float64)
    xy = np.mod(np.asarray(xy, dtype=np.float64)[:, :2], L)
    pairs = cKDTree(xy, boxsize=L).query_pairs(BOND, output_type="ndarray")
    d = xy[pairs[:, 0]] - xy[pairs[:, 1]]
    d -= np.round(d / L) * L
    return pairs, d


def _direction(bond: np.ndarray) -> np.ndarray:
    """Which of the honeycomb's three bond directions (0, 1, 2) each bond vector is closest to.

    The directions are those of the sheet itself (the six-fold average of
    the bond angles), 60° apart, so any orientation works.
    """
    angle = np.arctan2(bond[:, 1], bond[:, 0])
    first = np.angle(np.mean(np.exp(6j * angle))) / 6 if len(angle) else 0.0
    return np.mod(np.round((angle - first) / (np.pi / 3)), 3).astype(np.int64)


def bond_deviations(xy: np.ndarray, numbers: np.ndarray, lengths_xy: Sequence[float]) -> np.ndarray:
    """Each bond's length (Å) minus the median length of the structure's bonds of its kind.

    A bond's kind is the species and the number of bonded neighbours of both
    its atoms (a C–C bond at a zigzag edge is not a C–C bond inside the
    sheet) and which of the sheet's three bond directions it lies along;
    bonds of a kind with fewer than four members are measured against the
    median of their species pair along their direction, or else of their
    species pair. The structure's own medians make the measure blind to
    homogeneous strain (uniaxial, biaxial, shear: each direction stretches by
    its own amount) and thermal expansion; the site offsets see strain.
    """
    z = np.asarray(numbers, dtype=np.int64)
    pairs, bond = _bonds(xy, lengths_xy)
    r = np.hypot(bond[:, 0], bond[:, 1])
    if not len(r):
        return r
    coordination = np.bincount(pairs.ravel(), minlength=len(z))
    species = np.sort(z[pairs], axis=1)
    direction = _direction(bond)[:, None]
    fine = np.hstack([species, np.sort(coordination[pairs], axis=1), direction])
    ref = np.full_like(r, np.nan)
    for cols, least in ((fine, _MIN_KIND), (np.hstack([species, direction]), _MIN_KIND), (species, 1)):
        kind = np.unique(cols, axis=0, return_inverse=True)[1].ravel()
        counts = np.bincount(kind)
        todo = np.isnan(ref)
        for k in np.unique(kind[todo]):
            if counts[k] >= least:
                members = kind == k
                ref[members & todo] = np.median(r[members])
    return r - ref


def bond_temperature(xy: np.ndarray, numbers: np.ndarray, lengths_xy: Sequence[float]) -> float:
    """The temperature (K) at which a sheet's bonds fluctuate as much as these: ``mean(δ²) / BOND_VARIANCE_PER_K``.

    ``δ`` are the :func:`bond_deviations`; a sheet without bonds reads 0 K.
    """
    dev = bond_deviations(xy, numbers, lengths_xy)
    return float(np.mean(dev * dev) / BOND_VARIANCE_PER_K) if dev.size else 0.0
