"""The measurements behind the thresholds of ``ednn_dask/raster/_checks.py``, and the checks' cost.

    python scripts/structure_checks.py [--cells 1000] [--size-um 0.1]

For training-like cells (``sample_structure``: 100-1000 K, vacancies, holes) and a make-sheet porous
sheet: the closest pair of atoms, the median nearest-neighbour distance and the areal density
relative to the honeycomb with a = 2.5 Å (independently, with a k-d tree), and the lattice constant
that :func:`~ednn_dask.raster._checks.bond_lengths` estimates. Then the Tersoff energy of atoms out of
the plane (what a model that sees only x and y misses) and the time of :func:`check_sheet` on the sheet.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial import cKDTree

from ednn_dask.data.sheets import sample_structure
from ednn_dask.raster._checks import HONEYCOMB_DENSITY, bond_lengths, check_sheet, closest_pair
from ednn_dask.reference import tersoff_energy
from ednn_dask.systems import sheets as S
from ednn_dask.systems.large import porous_graphene_arrays


def _neighbours(xy: np.ndarray, lengths) -> tuple[float, float, float]:
    """Closest pair, median nearest-neighbour distance (Å) and density relative to the honeycomb."""
    L = np.asarray(lengths, float)
    d, _ = cKDTree(np.mod(xy, L), boxsize=L).query(np.mod(xy, L), k=2)
    return float(d[:, 1].min()), float(np.median(d[:, 1])), len(xy) / (L[0] * L[1]) / HONEYCOMB_DENSITY


def training_cells(n: int) -> None:
    for kind in ("hexagonal", "hexagonal-alloy", "porous-graphene"):
        rng = np.random.default_rng(5)
        rows = []
        for _ in range(n):
            atoms = sample_structure(kind, rng)
            xy, L = atoms.positions[:, :2], atoms.cell.lengths()[:2]
            rows.append((*_neighbours(xy, L), np.sqrt(3.0) * bond_lengths(xy, L)[1]))
        closest, median, density, a = np.array(rows).T
        print(f"{kind}, {n} cells: closest pair {closest.min():.3f} Å, median nearest neighbour "
              f"{median.min():.3f}-{median.max():.3f} Å, density {density.min():.3f}-{density.max():.3f}, "
              f"estimated a {a.min():.4f}-{a.max():.4f} Å")


def out_of_plane() -> None:
    rng = np.random.default_rng(0)
    flat = S.hexagonal_sheet()
    e0 = tersoff_energy(flat)
    for h in (0.01, 0.1, 0.3, 1.0):
        lifted = flat.copy()
        lifted.positions[5, 2] = h
        print(f"one atom of the 60-atom cell lifted by {h} Å: +{(tersoff_energy(lifted) - e0) * 1e3:.1f} meV")
    for sigma in (0.02, 0.1):
        noisy = flat.copy()
        noisy.positions[:, 2] = rng.normal(0, sigma, len(noisy))
        print(f"random z, rms {sigma} Å: +{(tersoff_energy(noisy) - e0) / len(noisy) * 1e3:.1f} meV/atom")


def sheet(size_um: float) -> None:
    atoms = porous_graphene_arrays((size_um * 1e4, size_um * 1e4), seed=0)
    xy, L = atoms.positions, atoms.lengths_xy
    closest, median, density = _neighbours(xy, L)
    print(f"make-sheet {size_um} µm, {len(xy):,} atoms: closest pair {closest:.3f} Å, median nearest neighbour "
          f"{median:.4f} Å, density {density:.3f}, estimated a {np.sqrt(3.0) * bond_lengths(xy, L)[1]:.4f} Å")
    for name, fn in (("closest_pair", lambda: closest_pair(xy, L, 0.7)), ("bond_lengths", lambda: bond_lengths(xy, L)),
                     ("check_sheet", lambda: check_sheet(xy, atoms.numbers, L))):
        best = min(_seconds(fn) for _ in range(3))
        print(f"  {name}: {best:.3f} s (best of 3)")


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1000, help="training-like cells per kind")
    p.add_argument("--size-um", type=float, default=0.1, help="edge of the make-sheet sheet")
    args = p.parse_args()
    training_cells(args.cells)
    out_of_plane()
    sheet(args.size_um)


if __name__ == "__main__":
    main()
