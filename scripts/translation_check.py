"""Held-out error of a sheet model on cells moved as a whole: is the prediction translation invariant?

    python scripts/translation_check.py MODEL TEST.zarr [--n 10] [--shifts 0,0 0.1,0 0.3,0.17 0.417,0.433 1.25,2.165]
        [--force-register] [--mirrors]

Each of the first ``n`` cells of ``TEST.zarr`` is moved by every shift (Å, x,y), wrapped into its cell and
predicted with :func:`ednn_dask.train.sheets.predict_structures` (which registers the atoms when the model
declares ``input.lattice``); prints the per-atom MAE per shift. ``--force-register`` registers the atoms onto
the honeycomb even for a model that does not declare it (models trained on unregistered cells).
``--mirrors`` also predicts the cells mirrored in x, in y and in both (the energy is the same): the y-mirror is
not among the training transforms of a lattice-trained model (see ``LatticeSymmetries``), so it tests
generalisation.
"""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import zarr
from ase import Atoms

from ednn_dask.models import get_model
from ednn_dask.raster._register import HONEYCOMB
from ednn_dask.train.sheets import predict_structures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("test")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--shifts", nargs="+", default=["0,0", "0.1,0", "0.3,0.17", "0.417,0.433", "1.25,2.165"])
    p.add_argument("--force-register", action="store_true")
    p.add_argument("--mirrors", action="store_true", help="also the cells mirrored in x, y and both")
    args = p.parse_args()
    loaded = get_model(args.model)
    model = loaded
    if args.force_register:
        meta = {**loaded.metadata, "input": {**loaded.metadata["input"], "lattice": dict(HONEYCOMB)}}
        model = SimpleNamespace(metadata=meta, predict=loaded.predict)
    root = zarr.open_group(args.test, mode="r")
    cells, energies = [], root["energies"][: args.n]
    for i in range(args.n):
        k = int(root["n_atoms"][i])
        cells.append(Atoms(numbers=root["numbers"][i][:k], positions=root["positions"][i][:k].astype(float),
                           cell=root["cells"][i], pbc=True))
    natoms = np.array([len(a) for a in cells])

    def report(label, structures):
        err = np.abs(predict_structures(model, structures) - energies) / natoms * 1e3
        print(f"{label}: MAE {err.mean():.3f} median {np.median(err):.3f} meV/atom ({args.n} cells)")

    for text in args.shifts:
        t = [float(v) for v in text.split(",")]
        report(f"shift ({t[0]:g}, {t[1]:g}) A", [_transformed(a, shift=t) for a in cells])
    if args.mirrors:
        for label, axes in [("mirror x", (0,)), ("mirror y", (1,)), ("mirror x and y", (0, 1))]:
            report(label, [_transformed(a, mirror=axes) for a in cells])


def _transformed(atoms: Atoms, shift=(0.0, 0.0), mirror=()) -> Atoms:
    b = atoms.copy()
    pos = b.positions.copy()
    pos[:, :2] += np.asarray(shift, dtype=float)
    for axis in mirror:
        pos[:, axis] *= -1
    b.positions = pos
    b.wrap()
    return b


if __name__ == "__main__":
    main()
