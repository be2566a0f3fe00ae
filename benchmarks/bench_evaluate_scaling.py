"""O(N) check of `evaluate`: seconds per pixel and peak memory for growing porous sheets.

    python benchmarks/bench_evaluate_scaling.py [--pixels 1e7 1e8 1e9] [--model NAME] [--workers 2] [--no-halo-sharing]

Each size is a fresh square porous graphene sheet (atoms rasterized on the fly)
evaluated on its own LocalCluster (``--workers`` processes x 1 thread), after a
warm-up evaluation of a small sheet (worker start-up and model load are not
per-pixel costs). Prints wall time, µs per pixel, its ratio to the smallest
size (flat = O(N)), atoms/s, and the peak resident memory of the client and of
all processes together (sampled every 0.1 s with psutil).
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from ednn_dask.cluster import local_cluster
from ednn_dask.data.sheets import SHEET_SPACING
from ednn_dask.evaluate import evaluate
from ednn_dask.scaling import sheet_file


class PeakMemory:
    """Peak RSS of this process and of this process plus its children, sampled in a thread."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.own, self.total = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                own = me.memory_info().rss
                kids = sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                continue
            self.own, self.total = max(self.own, own), max(self.total, own + kids)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def size_um(n_px: float) -> float:
    """Edge in µm of a square sheet of about ``n_px`` pixels at the bundled models' spacing."""
    return float(np.sqrt(n_px * SHEET_SPACING[0] * SHEET_SPACING[1])) / 1e4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=float, nargs="+", default=[1e7, 1e8, 1e9])
    p.add_argument("--model", default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--halo-sharing", action=argparse.BooleanOptionalAction, default=None,
                   help="default: automatic (on for VALID conv models)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "warm").mkdir()
        warm = sheet_file(size_um(1e6), Path(tmp) / "warm", seed=2)
        for n_px in args.pixels:
            path = sheet_file(size_um(n_px), tmp, seed=1)
            with local_cluster(args.workers, 1) as client:
                evaluate(warm, args.model, client=client, chunk=args.chunk, halo_sharing=args.halo_sharing)
                with PeakMemory() as mem:
                    t0 = time.perf_counter()
                    res = evaluate(path, args.model, client=client, chunk=args.chunk,
                                   halo_sharing=args.halo_sharing)
                    wall = time.perf_counter() - t0
            rows.append((res.pixels, res.n_atoms, wall, mem.own, mem.total))
            path.unlink()
    base = rows[0][2] / rows[0][0]
    print(f"{'pixels':>14} {'atoms':>11} {'wall [s]':>9} {'us/pixel':>9} {'ratio':>6} {'atoms/s':>9} "
          f"{'client peak':>12} {'all peak':>10}")
    for px, n, wall, own, total in rows:
        print(f"{px:>14,} {n:>11,} {wall:>9.1f} {wall / px * 1e6:>9.4f} {wall / px / base:>6.2f} "
              f"{n / wall:>9,.0f} {own / 2**20:>8.0f} MiB {total / 2**20:>6.0f} MiB")


if __name__ == "__main__":
    main()
