"""What a sheet's atoms say about whether a lattice-registered model has seen their like.

Two descriptors, both measured on the training cells when the domain is
fitted (:mod:`._fit`) and on every structure a user brings (:mod:`._check`):

* how far the atoms sit from the sites of the model's honeycomb once the
  sheet is registered onto it (:func:`site_offsets`). The models learn
  the energy of atoms at the places relative to the pixel grid that training
  showed them: thermal motion up to the training temperature. A strained
  sheet drifts off the sites across the cell (0.33 % strain over 25 nm is
  0.4 Å at the ends), a hotter one spreads wider;
* which atomic environments occur (:func:`environments`: an atom's species
  and those of its bonded neighbours): a C atom between a B and an N, common
  in randomly substituted graphene, never occurs in a model trained on
  graphene, hBN and their straight interfaces.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["site_offsets", "environments", "BOND"]

#: Distance (Å) within which two atoms of a honeycomb sheet count as bonded (first neighbours at
#: a / sqrt(3) = 1.44 Å for a = 2.5 Å, second at 2.5 Å).
BOND = 1.8


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

    L = np.asarray(lengths_xy, dtype=np.float64)
    z = np.asarray(numbers, dtype=np.int64)
    tree = cKDTree(np.mod(np.asarray(xy, dtype=np.float64)[:, :2], L), boxsize=L)
    pairs = tree.query_pairs(BOND, output_type="ndarray")
    names = {int(k): chemical_symbols[int(k)] for k in np.unique(z)}
    neighbours: list[list[str]] = [[] for _ in range(len(z))]
    for i, j in pairs:
        neighbours[i].append(names[z[j]])
        neighbours[j].append(names[z[i]])
    keys, counts = np.unique([f"{names[zi]}:{''.join(sorted(nb))}" for zi, nb in zip(z, neighbours)],
                             return_counts=True)
    return {str(k): int(n) for k, n in zip(keys, counts)}
