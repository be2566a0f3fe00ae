"""How close the halo-shared conv stack comes to this CPU's measured matmul peak, in one run.

    python benchmarks/bench_conv_peak.py [--subnet sheet|paper] [--size 1024] [--threads 2] [--repeats 5]

Peak: median FLOP/s of a float32 ``torch.mm`` of two 2048² matrices. Conv
stack: the halo-shared features of one ``size``² field (``n f + 2c`` pixels),
FLOPs counted from the layer shapes (2 per multiply-add), timed in the default
NCHW layout and in channels_last. ``--subnet sheet``
is the bundled sheet model's VALID stack (f=40, c=24); ``--subnet paper`` the
paper-size reference of issue 6: the paper's 13 convolutions in VALID form
without the last two 3×3 convs, f=64, c=32 (final tile map 32×2×2).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ednn_dask.nn import PAPER_CONV_LAYERS, ConvSubnet
from ednn_dask.train.sheets import SHEET_LAYERS


def median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def conv_flops(layers, channels: int, size: int) -> float:
    flops, ch = 0.0, channels
    for filters, k, s in layers:
        size = (size - k) // s + 1
        flops += 2.0 * size * size * filters * ch * k * k
        ch = filters
    return flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subnet", choices=["sheet", "paper"], default="sheet")
    p.add_argument("--size", type=int, default=1024, help="field edge in focus multiples, before the 2c border")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.subnet == "sheet":
        f, c, ch, layers = 40, 24, 3, SHEET_LAYERS
    else:
        f, c, ch, layers = 64, 32, 1, PAPER_CONV_LAYERS[:-2]
    sub = ConvSubnet(ch, f + 2 * c, layers, dense=(128,), padding="valid").eval()
    side = args.size // f * f + 2 * c
    x = torch.rand(1, ch, side, side)
    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    t_mm = median_time(lambda: torch.mm(a, b), args.repeats)
    peak = 2.0 * n**3 / t_mm
    print(f"matmul peak ({n}^2 fp32, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s")
    gflop = conv_flops(layers, ch, side) / 1e9
    with torch.no_grad():
        for layout in (torch.contiguous_format, torch.channels_last):
            net, inp = sub.to(memory_format=layout), x.contiguous(memory_format=layout)
            t_conv = median_time(lambda: net.features(inp), args.repeats)
            name = "channels_last" if layout is torch.channels_last else "NCHW"
            print(f"{args.subnet} conv stack ({name}) on {side}x{side} px: {gflop:.2f} GFLOP in {t_conv:.3f} s = "
                  f"{gflop / t_conv:.1f} GFLOP/s, fraction of matmul peak: {gflop * 1e9 / t_conv / peak:.2f}")


if __name__ == "__main__":
    main()
