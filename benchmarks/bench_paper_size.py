"""Evaluation cost of a paper-size subnet, measured on a fraction of a 1 µm² sheet and extrapolated.

    python benchmarks/bench_paper_size.py [--pixels 1e8] [--workers 2] [--per-tile] [--random-raster]

The paper-size reference: the paper's 13 convolutions in VALID form
without the last two 3×3 convs (final tile map 32×2×2) and its 1024-wide dense
head, f = 64, c = 32, one carbon channel at the bundled models' pixel spacing.
Weights are random (timing only). By default a square porous graphene sheet of
about ``--pixels`` pixels (whole multiples of 8 × 8 60-atom cells, so its
raster is a whole number of 64-px focus regions) is evaluated end to end —
atoms rasterized on the fly by the workers, then the network, then the float64
total — on a warmed-up LocalCluster (``--workers`` × 1 thread) with halo
sharing (or ``--per-tile``); ``--random-raster`` times the network alone on a
random Dask raster. Prints seconds, pixels/s, atoms/s and the extrapolation
to the 1 µm² sheet (8.87e9 pixels, 34.6 M atoms), clearly marked as one.
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
from ednn_dask.models import get_model, save_model
from ednn_dask.nn import EDNN, PAPER_CONV_LAYERS, ConvSubnet, TileNet
from ednn_dask.systems.large import porous_graphene_arrays, save_atoms_npz
from ednn_dask.systems.sheets import A_LATTICE
from ednn_dask.train import TrainConfig

F, C = 64, 32
PIXELS_1UM2 = 8.87e9  # 1 µm² at (0.1083, 0.1042) Å per pixel, as measured for make-sheet --size-um 1.0
CELL_PX = 120  # the 60-atom cell (12.5 Å × 12.99 Å) at the bundled models' pixel spacing
ATOMS_1UM2 = 34_602_972  # atoms of make-sheet --size-um 1.0 (seed 0), as measured


def paper_size_model(path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    sub = ConvSubnet(1, F + 2 * C, PAPER_CONV_LAYERS[:-2], dense=(1024,), padding="valid")
    bundled = get_model("porous-graphene").metadata  # same raster definition and pixel spacing
    meta = {"name": "paper-size-valid (random weights)", "channels": 1, "input": bundled["input"],
            "pixel_spacing": bundled["pixel_spacing"], "subnet": sub.spec,
            "target": {"name": "energy", "units": "eV"}, "halo_shared_ok": True,
            "training": {"config": TrainConfig().as_metadata()}}
    return save_model(EDNN(TileNet(sub), F, C), path, meta)


def aligned_sheet(pixels: float, path: Path) -> Path:
    """A porous sheet of about ``pixels`` px whose raster is a whole number of ``F``-px focus regions.

    Sheets are whole 60-atom cells of ``CELL_PX`` px; ``lcm(CELL_PX, F)`` px (8 cells for F = 64) tile both.
    """
    block = int(np.lcm(CELL_PX, F))
    cells = max(1, int(round(np.sqrt(pixels) / block))) * (block // CELL_PX)
    return save_atoms_npz(porous_graphene_arrays((cells * 5 * A_LATTICE, cells * 3 * A_LATTICE * np.sqrt(3))), path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pixels", type=float, default=1e8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--per-tile", action="store_true")
    p.add_argument("--random-raster", action="store_true", help="network only, on a random raster")
    args = p.parse_args()
    side = int(np.sqrt(args.pixels)) // F * F
    with tempfile.TemporaryDirectory() as tmp:
        model = paper_size_model(Path(tmp) / "paper-size.pt2")
        if args.random_raster:
            field = da.random.default_rng(0).random((1, side, side), chunks=(1, args.chunk, args.chunk))
            field = field.astype(np.float32)
        else:
            field = aligned_sheet(args.pixels, Path(tmp) / "sheet.npz")
        warm = np.random.default_rng(1).random((1, 4 * F, 4 * F)).astype(np.float32)
        kw = {"halo_sharing": not args.per_tile, "chunk": args.chunk}
        with local_cluster(args.workers, 1) as client:
            evaluate(warm, model, client=client, **kw)
            t0 = time.perf_counter()
            res = evaluate(field, model, client=client, **kw)
            wall = time.perf_counter() - t0
    rate = res.pixels / wall
    mode = "per-tile" if args.per_tile else "halo-shared"
    what = ("random raster, network only" if args.random_raster
            else f"porous sheet, {res.n_atoms:,} atoms rasterized on the fly")
    print(f"paper-size VALID subnet (f={F}, c={C}), {mode}, {args.workers} workers x 1 thread, {what}: "
          f"{res.pixels:,} px ({res.tiles:,} tiles) in {wall:.1f} s = {rate / 1e6:.2f} M px/s")
    if res.n_atoms:
        print(f"  {res.n_atoms / wall:,.0f} atoms/s")
    included = "network only, raster generation not included" if args.random_raster else "atoms -> raster -> total"
    print(f"EXTRAPOLATION to the 1 um^2 sheet ({PIXELS_1UM2:.3g} px, {ATOMS_1UM2:,} atoms): "
          f"{PIXELS_1UM2 / rate / 60:.1f} min on these {args.workers} cores ({included}; "
          f"paper: 24.7 min on 448 cores)")


if __name__ == "__main__":
    main()
