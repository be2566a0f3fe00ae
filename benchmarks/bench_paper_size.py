"""Evaluation cost of a paper-size subnet, measured on a fraction of a 1 µm² sheet and extrapolated.

    python benchmarks/bench_paper_size.py [--pixels 1e8] [--workers 2] [--per-tile]

The paper-size reference of issue 6: the paper's 13 convolutions in VALID form
without the last two 3×3 convs (final tile map 32×2×2) and its 1024-wide dense
head, f = 64, c = 32, one channel. Weights are random (timing only). A square
random raster of about ``--pixels`` pixels is evaluated on a warmed-up
LocalCluster (``--workers`` × 1 thread) with halo sharing (or ``--per-tile``);
prints seconds, pixels/s and the extrapolation to the 1 µm² sheet at the
bundled models' spacing (8.87e9 pixels), clearly marked as an extrapolation.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np

from ednn_dask.cluster import local_cluster
from ednn_dask.evaluate import evaluate
from ednn_dask.models import save_model
from ednn_dask.nn import EDNN, PAPER_CONV_LAYERS, ConvSubnet, TileNet
from ednn_dask.train import TrainConfig

F, C = 64, 32
PIXELS_1UM2 = 8.87e9  # 1 µm² at (0.1083, 0.1042) Å per pixel, as measured for make-sheet --size-um 1.0


def paper_size_model(path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    sub = ConvSubnet(1, F + 2 * C, PAPER_CONV_LAYERS[:-2], dense=(1024,), padding="valid")
    meta = {"name": "paper-size-valid (random weights)", "channels": 1, "input": {"kind": "raster"},
            "target": {"name": "energy", "units": "eV"}, "halo_shared_ok": True,
            "training": {"config": TrainConfig().as_metadata()}}
    return save_model(EDNN(TileNet(sub), F, C), path, meta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=float, default=1e8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--per-tile", action="store_true")
    args = p.parse_args()
    side = int(np.sqrt(args.pixels)) // F * F
    with tempfile.TemporaryDirectory() as tmp:
        model = paper_size_model(Path(tmp) / "paper-size.pt2")
        field = da.random.default_rng(0).random((1, side, side), chunks=(1, args.chunk, args.chunk)).astype(np.float32)
        warm = np.random.default_rng(1).random((1, 4 * F, 4 * F)).astype(np.float32)
        kw = {"halo_sharing": not args.per_tile, "chunk": args.chunk}
        with local_cluster(args.workers, 1) as client:
            evaluate(warm, model, client=client, **kw)
            t0 = time.perf_counter()
            res = evaluate(field, model, client=client, **kw)
            wall = time.perf_counter() - t0
    rate = res.pixels / wall
    mode = "per-tile" if args.per_tile else "halo-shared"
    print(f"paper-size VALID subnet (f={F}, c={C}), {mode}, {args.workers} workers x 1 thread: "
          f"{res.pixels:,} px ({res.tiles:,} tiles) in {wall:.1f} s = {rate / 1e6:.2f} M px/s")
    print(f"EXTRAPOLATION to the 1 um^2 sheet ({PIXELS_1UM2:.3g} px): {PIXELS_1UM2 / rate / 60:.1f} min of network "
          f"evaluation on these {args.workers} cores (raster generation not included; paper: 24.7 min on 448 cores)")


if __name__ == "__main__":
    main()
