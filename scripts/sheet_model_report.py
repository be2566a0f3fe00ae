"""Measure a saved sheet model on a held-out dataset (and supercells) and record it in the model file.

    python scripts/sheet_model_report.py MODEL.pt2 TEST.zarr [--plot parity.png] [--report report.json] [--no-record]

Runs :func:`ednn_dask.train.sheets.evaluate_sheet_model` (held-out per-atom errors;
for hexagonal kinds also unseen 1x1 ... 4x4 supercells against Tersoff), prints the
numbers, writes the parity plot / JSON on request, and stores ``accuracy`` in the
model's metadata (``ednn-dask models`` lists it).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ednn_dask.data.sheets import open_dataset
from ednn_dask.models import load_model, update_metadata
from ednn_dask.train.sheets import evaluate_sheet_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("test")
    p.add_argument("--plot")
    p.add_argument("--report")
    p.add_argument("--no-record", action="store_true", help="do not write the accuracy into the model file")
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    kind = open_dataset(args.test, model.metadata["input"]["species"])["attrs"]["kind"]
    report = evaluate_sheet_model(model, args.test, supercells=kind.startswith("hexagonal"))
    pred = np.asarray(report.pop("pred_test"))
    print(f"held-out: MAE {report['test']['mae_mev_per_atom']:.3f} meV/atom, "
          f"median {report['test']['median_mev_per_atom']:.3f} meV/atom ({report['test_set']})")
    if "supercells" in report:
        sc = report["supercells"]
        sizes = ", ".join(f"{k} {v['mae_mev_per_atom']:.2f}" for k, v in sc["by_size"].items())
        print(f"supercells: MAE {sc['mae_mev_per_atom']:.3f} meV/atom ({sizes})")
    if args.plot:
        from ednn_dask.plots import parity_plot

        test = open_dataset(args.test, model.metadata["input"]["species"])
        parity_plot(test["energies"] / test["n_atoms"], pred / test["n_atoms"], args.plot,
                    title=f"{model.metadata.get('name')}: held-out {kind} (f={model.metadata['focus']}, "
                          f"c={model.metadata['context']})", units="eV/atom")
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=1)
    if not args.no_record:
        update_metadata(args.model, {"accuracy": {k: v for k, v in report.items()
                                                  if k in ("test", "test_set", "supercells")}})


if __name__ == "__main__":
    main()
