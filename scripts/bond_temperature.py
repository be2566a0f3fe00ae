"""The bond-length variance per kelvin of sheets in thermal equilibrium (``ednn_dask.domain.BOND_VARIANCE_PER_K``).

    PYTHONPATH=$PWD python scripts/bond_temperature.py [--trajectories 8] [--seed 0]

Runs in-plane Langevin MD with the Tersoff B/C/N reference (:func:`ednn_dask.systems.md.sample`: 150 fs, then
4 frames 50 fs apart) of 60-atom graphene, hBN and graphene/hBN stripe cells at 300, 700, 1000 and 1500 K and
prints, per class, the least-squares slope through the origin of ``mean(δ²)`` (the bond deviations of
:func:`ednn_dask.domain.bond_deviations`) against T, the slope of all classes together, and the temperature
that :func:`ednn_dask.domain.bond_temperature` reads for each class and temperature (median over frames).
One process, one thread; about a minute.
"""
from __future__ import annotations

import argparse

import numpy as np

from ednn_dask.domain import BOND_VARIANCE_PER_K, bond_deviations, bond_temperature
from ednn_dask.systems import md

TEMPERATURES = (300.0, 700.0, 1000.0, 1500.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trajectories", type=int, default=8, help="trajectories per class and temperature")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    for cls in ("graphene", "hbn", "stripes"):
        for T in TEMPERATURES:
            for _ in range(args.trajectories):
                for f in md.sample(cls, rng, T, steps=150, snapshots=4, every=50):
                    L = f.cell.lengths()[:2]
                    dev = bond_deviations(f.positions, f.numbers, L)
                    rows.append((cls, T, float(np.mean(dev * dev)), bond_temperature(f.positions, f.numbers, L)))
    T_all = np.array([r[1] for r in rows])
    v_all = np.array([r[2] for r in rows])
    print(f"all classes: {float(T_all @ v_all / (T_all @ T_all)):.3e} A^2/K (in the package: {BOND_VARIANCE_PER_K:.3e})")
    for cls in ("graphene", "hbn", "stripes"):
        sel = [r for r in rows if r[0] == cls]
        T = np.array([r[1] for r in sel])
        v = np.array([r[2] for r in sel])
        reads = ", ".join(f"{t:.0f} K reads {np.median([r[3] for r in sel if r[1] == t]):.0f} K" for t in TEMPERATURES)
        print(f"{cls}: {float(T @ v / (T @ T)):.3e} A^2/K; {reads}")


if __name__ == "__main__":
    main()
