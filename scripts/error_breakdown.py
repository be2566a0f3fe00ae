"""Held-out per-atom error of a hexagonal sheet model by chemistry: graphene, hBN, stripes, each with/without vacancies.

    python scripts/error_breakdown.py MODEL TEST.zarr

The chemistry is read from the stored atomic numbers (no C: hBN; no B: graphene; else graphene/hBN stripes), a
vacancy from an atom count below 60.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import zarr

from ednn_dask.data.sheets import open_dataset
from ednn_dask.models import get_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("test")
    args = p.parse_args()
    model = get_model(args.model)
    test = open_dataset(args.test, model.metadata["input"]["species"])
    pred = model.predict(torch.from_numpy(test["rasters"])).numpy()
    n = test["n_atoms"]
    err = np.abs(pred - test["energies"]) / n * 1e3
    numbers = zarr.open_group(args.test, mode="r")["numbers"][:]
    n_b, n_c = (numbers == 5).sum(1), (numbers == 6).sum(1)
    kind = np.where(n_c == 0, "hBN", np.where(n_b == 0, "graphene", "stripes"))
    for k in ("graphene", "hBN", "stripes"):
        for vac in (False, True):
            sel = (kind == k) & ((n < 60) == vac)
            if sel.any():
                print(f"{k + (' + vacancies' if vac else ''):22s} n={sel.sum():5d}  MAE {err[sel].mean():.3f}  "
                      f"median {np.median(err[sel]):.3f}  max {err[sel].max():.2f} meV/atom")
    print(f"{'all':22s} n={err.size:5d}  MAE {err.mean():.3f}  median {np.median(err):.3f}  max {err.max():.2f} meV/atom")


if __name__ == "__main__":
    main()
