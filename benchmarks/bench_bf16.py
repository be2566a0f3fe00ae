"""bfloat16 autocast vs float32 for a trained sheet model: accuracy cost and speed, in one run.

    python benchmarks/bench_bf16.py [--model hexagonal-sheet] [--test runs/hex_test.zarr] [--n 500] [--size 1200]

Accuracy: the held-out cells (``ednn-dask dataset sheets`` format) are predicted
with halo sharing in float32 and in bf16; prints both MAEs against the
reference (meV/atom) and the bf16-vs-fp32 difference. Speed: the median of
``--repeats`` evaluations of one ``--size``² random raster with each precision,
in the default NCHW layout and in channels_last (``halo_shared(channels_last=)``),
with each total's relative difference from fp32 NCHW.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import median_time

from ednn_dask.data.sheets import open_dataset
from ednn_dask.models import get_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="hexagonal-sheet")
    p.add_argument("--test", default="runs/hex_test.zarr")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--size", type=int, default=1200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loaded = get_model(args.model)
    species = loaded.metadata["input"].get("species")
    data = open_dataset(args.test, species)
    x = torch.from_numpy(np.ascontiguousarray(data["rasters"][: args.n]))
    ref, n_at = data["energies"][: args.n], data["n_atoms"][: args.n]
    fp32, bf16 = loaded.halo_shared(channels_last=False), loaded.halo_shared(bf16=True, channels_last=False)
    with torch.no_grad():
        e32 = np.concatenate([fp32(x[i : i + 50]).double().numpy() for i in range(0, len(x), 50)])
        e16 = np.concatenate([bf16(x[i : i + 50]).double().numpy() for i in range(0, len(x), 50)])
    mae = lambda e: float(np.mean(np.abs(e - ref) / n_at) * 1000)  # noqa: E731
    diff = np.abs(e16 - e32) / n_at * 1000
    print(f"{args.model} on {len(x)} held-out cells: MAE fp32 {mae(e32):.3f}, bf16 {mae(e16):.3f} meV/atom; "
          f"|bf16 - fp32| mean {diff.mean():.3f}, max {diff.max():.3f} meV/atom")
    c, f = loaded.metadata["context"], loaded.metadata["focus"]
    side = args.size // f * f
    field = torch.rand(1, x.shape[1], side + 2 * c, side + 2 * c) * float(x.max())
    times = {}
    outs = {}
    for nhwc in (False, True):  # the layouts as `ednn.predict.channels-last` selects them
        for name, low in (("fp32", False), ("bf16", True)):
            model = loaded.halo_shared(bf16=low, channels_last=nhwc)
            with torch.no_grad():
                times[name, nhwc], outs[name, nhwc] = median_time(
                    lambda: model.contributions_from_padded(field), args.repeats)
    base = times["fp32", False]
    print(f"{side}x{side} px, halo-shared, {args.threads} threads, median of {args.repeats}; speed-up over fp32 NCHW:")
    ref_total = float(outs["fp32", False].double().sum())
    for (name, cl), t in times.items():
        rel = abs(float(outs[name, cl].double().sum()) - ref_total) / abs(ref_total)
        print(f"  {name} {'channels_last' if cl else 'NCHW':13s}: {t:.3f} s  {base / t:.2f}x   "
              f"total rel. diff vs fp32 NCHW {rel:.1e}")


if __name__ == "__main__":
    main()
