"""Write ``tests/data/lammps_reference.json``: LAMMPS energies and forces of the reference potential.

One structure per class of :mod:`ednn_dask.systems.md` (MD snapshots of graphene, hBN in both orientations,
stripes, alloys, vacancies, holes, ribbons, strained and 3×3 cells), evaluated by LAMMPS ``pair_style
tersoff`` with the file of :func:`ednn_dask.reference.tersoff.lammps_tersoff_file`. ``tests/test_reference.py``
compares the package's reference with these numbers on every machine, and with a live LAMMPS where one is
installed (Debian: ``apt-get install lammps``)::

    python scripts/lammps_reference.py            # about 30 s
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ednn_dask.reference._lammps import lammps_binary, lammps_energy_forces
from ednn_dask.systems import md


def structures(seed: int = 0):
    """``(name, Atoms)`` of every sampler class, one MD snapshot each."""
    rng = np.random.default_rng(seed)
    out = []
    for cls in md.CLASSES:
        eps = (0.0, 0.0) if cls in ("graphene", "hbn") else md.random_strain(rng)
        atoms = md.sample(cls, rng, temperature=float(rng.uniform(300, 1500)), strain_xy=eps, steps=60)[0]
        out.append((cls if eps == (0.0, 0.0) else f"{cls} strained {eps[0]:+.3f} {eps[1]:+.3f}", atoms))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parents[1] / "tests" / "data" / "lammps_reference.json"))
    args = ap.parse_args(argv)
    lmp = lammps_binary()
    if lmp is None:
        raise SystemExit("no LAMMPS executable (lmp) on PATH; apt-get install lammps")
    rows = []
    for name, atoms in structures():
        e, f = lammps_energy_forces(atoms, lmp)
        rows.append({"name": name, "symbols": atoms.get_chemical_symbols(), "cell": atoms.cell.lengths().tolist(),
                     "positions": atoms.positions.tolist(), "energy": e, "forces": f.tolist()})
        print(f"{name:24s} {len(atoms):4d} atoms  {e / len(atoms):.9f} eV/atom")
    Path(args.out).write_text(json.dumps({"lammps": lmp, "structures": rows}))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
