"""O(N) check of `evaluate`: seconds per pixel for growing porous sheets, atoms rasterized on the fly.

    python benchmarks/bench_evaluate_scaling.py [--pixels 1e6 4e6 1.6e7] [--model hexagonal-sheet] [--workers 2]

Each size is a fresh square porous graphene sheet evaluated on a LocalCluster
(``--workers`` processes x 1 thread); prints wall time, seconds per pixel,
its ratio to the smallest size (flat = O(N)), atoms/s, and the peak resident
memory of the worker processes (ru_maxrss, so it only grows across sizes).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ednn_dask.data.sheets import SHEET_SPACING
from ednn_dask.evaluate import evaluate
from ednn_dask.systems.large import porous_graphene_arrays, save_atoms_npz


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=float, nargs="+", default=[1e6, 4e6, 1.6e7])
    p.add_argument("--model", default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=1000)
    args = p.parse_args()
    from distributed import Client, LocalCluster

    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as tmp:
        for n_px in args.pixels:
            side = np.sqrt(n_px * SHEET_SPACING[0] * SHEET_SPACING[1])
            # whole multiples of the 60-atom cell (120 x 120 px), so the size is a multiple of f = 40 px
            cell_x, cell_y = 5 * 2.5, 3 * 2.5 * np.sqrt(3)
            size = (cell_x * max(1, round(side / cell_x)), cell_y * max(1, round(side / cell_y)))
            atoms = porous_graphene_arrays(size, seed=1)
            path = save_atoms_npz(atoms, Path(tmp) / f"s{int(n_px)}.npz")
            if not rows:  # warm-up: model load and worker start-up are not per-pixel costs
                evaluate(path, args.model, client=client, chunk=args.chunk)
            client.run(lambda: __import__("gc").collect())
            t0 = time.perf_counter()
            res = evaluate(path, args.model, client=client, chunk=args.chunk)
            wall = time.perf_counter() - t0
            rss = max(client.run(lambda: __import__("resource").getrusage(0).ru_maxrss * 1024).values())
            rows.append((res.pixels, res.n_atoms, wall, rss))
    base = rows[0][2] / rows[0][0]
    print(f"{'pixels':>12} {'atoms':>10} {'wall [s]':>9} {'us/pixel':>9} {'ratio':>6} {'atoms/s':>10} {'peak RSS':>11}")
    for px, n, wall, rss in rows:
        print(f"{px:>12,} {n:>10,} {wall:>9.1f} {wall / px * 1e6:>9.3f} {wall / px / base:>6.2f} "
              f"{n / wall:>10,.0f} {rss / 2**20:>8.0f} MiB")


if __name__ == "__main__":
    main()
