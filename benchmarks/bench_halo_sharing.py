"""Per-tile vs halo-shared evaluation of the sheet CNN: throughput ratio and identical totals.

    python benchmarks/bench_halo_sharing.py [--size 1200] [--repeats 5] [--threads 2] [--focus 8] [--context 24]

Evaluates one random (size × size) 3-channel raster with the sheet
architecture (VALID CNN; default f = 8, c = 24 as in the bundled models;
``--focus 40`` for a 40-px focus), both ways, in one run; prints the
median times, the ratio, and the largest relative difference of the totals.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ednn_dask.nn import EDNN
from ednn_dask.train.sheets import build_sheet_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1200, help="raster edge in pixels (multiple of the focus)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--focus", type=int, default=8)
    p.add_argument("--context", type=int, default=24)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    f, c = args.focus, args.context
    shared = build_sheet_model(f, c).eval()
    per_tile = EDNN(shared.tile_net, f, c, halo_sharing=False, tile_batch=64).eval()
    x = torch.rand(1, 3, args.size, args.size) * 6
    times = {"per-tile": [], "shared": []}
    totals = {}
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, model in (("per-tile", per_tile), ("shared", shared)):
                t0 = time.perf_counter()
                totals[name] = model(x)
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    pixels = args.size**2
    rel = float(((totals["shared"] - totals["per-tile"]).abs() / totals["per-tile"].abs()).max())
    for k in med:
        print(f"{k:>9}: {med[k]:.3f} s median of {args.repeats} ({pixels / med[k] / 1e6:.2f} Mpx/s)")
    print(f"ratio per-tile / shared time: {med['per-tile'] / med['shared']:.2f}x")
    print(f"max relative difference of totals: {rel:.2e}")


if __name__ == "__main__":
    main()
