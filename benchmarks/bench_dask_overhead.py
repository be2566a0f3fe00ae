"""Dask overhead: a 2-worker LocalCluster against half the single-process time, in one run.

    python benchmarks/bench_dask_overhead.py [--size-um 0.05] [--repeats 3] [--no-halo-sharing]

The same porous sheet (atoms rasterized on the fly) is evaluated (a) in this
process with the synchronous scheduler and 1 torch thread, (b) on a warmed-up
LocalCluster of 2 worker processes × 1 thread. Prints the medians and
``t_cluster / (t_single / 2)`` (1.0 = no overhead; goal ≤ 1.1) and checks the
totals agree.
"""
from __future__ import annotations

import argparse
import tempfile

import torch
from _timing import median_time

from ednn_dask.cluster import local_cluster
from ednn_dask.evaluate import evaluate
from ednn_dask.scaling import sheet_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-um", type=float, default=0.05)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default=None)
    p.add_argument("--halo-sharing", action=argparse.BooleanOptionalAction, default=None,
                   help="default: automatic (on for VALID conv models)")
    args = p.parse_args()
    kw = {"halo_sharing": args.halo_sharing}
    with tempfile.TemporaryDirectory() as tmp:
        sheet = sheet_file(args.size_um, tmp)
        torch.set_num_threads(1)
        # the untimed first call warms up: model load, atoms cache, worker start
        t1, r1 = median_time(lambda: evaluate(sheet, args.model, scheduler="synchronous", **kw), args.repeats)
        with local_cluster(2, 1) as client:
            t2, r2 = median_time(lambda: evaluate(sheet, args.model, client=client, **kw), args.repeats)
    print(f"{r1.pixels:,} px, {r1.n_atoms:,} atoms: single process {t1:.2f} s, 2-worker LocalCluster {t2:.2f} s "
          f"(medians of {args.repeats})")
    print(f"overhead ratio t_cluster / (t_single / 2) = {t2 / (t1 / 2):.3f}; totals equal: {r1.total == r2.total}")


if __name__ == "__main__":
    main()
