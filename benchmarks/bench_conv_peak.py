"""How close the halo-shared conv stack comes to this CPU's measured matmul peak, in one run.

    python benchmarks/bench_conv_peak.py [--subnet sheet|paper] [--size 1024] [--threads 2] [--repeats 5]

Peak: median FLOP/s of a float32 ``torch.mm`` of two 2048² matrices. Network:
the halo-shared pass over one ``size``² field (``n f + 2c`` pixels) — the conv
stack alone, and the whole subnet (stack + dense head run as a strided
convolution) — with FLOPs counted from the layer shapes (2 per multiply-add),
timed in the default NCHW layout and in channels_last. ``--subnet sheet`` is
the bundled sheet models' VALID stack and head (``SHEET_LAYERS``, dense 128,
f=8, c=24; ``--focus 40`` for a 40-px focus); ``--subnet paper`` the
paper-size reference: the paper's 13 convolutions in VALID form
without the last two 3×3 convs, dense 1024, f=64, c=32 (final tile map 32×2×2).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import median_time

from ednn_dask.nn import PAPER_CONV_LAYERS, ConvSubnet
from ednn_dask.train.sheets import SHEET_LAYERS


def conv_flops(layers, channels: int, size: int) -> float:
    flops, ch = 0.0, channels
    for filters, k, s in layers:
        size = (size - k) // s + 1
        flops += 2.0 * size * size * filters * ch * k * k
        ch = filters
    return flops


def head_flops(sub: ConvSubnet, side: int, focus: int, c: int) -> float:
    """FLOPs of the dense head run once per tile (``(side - 2c) / f`` tiles per axis)."""
    n_tiles = ((side - 2 * c) // focus) ** 2
    dims = [int(np.prod(sub.feature_shape))] + [m.out_features for m in sub.head if isinstance(m, torch.nn.Linear)]
    return 2.0 * n_tiles * sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subnet", choices=["sheet", "paper"], default="sheet")
    p.add_argument("--size", type=int, default=1024, help="field edge in focus multiples, before the 2c border")
    p.add_argument("--focus", type=int, default=None, help="sheet focus in px (default 8, the bundled models')")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.subnet == "sheet":
        f, c, ch, layers, dense = args.focus or 8, 24, 3, SHEET_LAYERS, (128,)
    else:
        f, c, ch, layers, dense = args.focus or 64, 32, 1, PAPER_CONV_LAYERS[:-2], (1024,)
    sub = ConvSubnet(ch, f + 2 * c, layers, dense=dense, padding="valid").eval()
    side = args.size // f * f + 2 * c
    x = torch.rand(1, ch, side, side)
    n = 2048
    a, b = torch.rand(n, n), torch.rand(n, n)
    t_mm, _ = median_time(lambda: torch.mm(a, b), args.repeats)
    peak = 2.0 * n**3 / t_mm
    print(f"matmul peak ({n}^2 fp32, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s")
    g_stack = conv_flops(layers, ch, side) / 1e9
    g_all = g_stack + head_flops(sub, side, f, c) / 1e9
    print(f"{args.subnet} subnet, f={f}, c={c}, {side}x{side} px: conv stack {g_stack:.2f} GFLOP, "
          f"stack + head {g_all:.2f} GFLOP")
    with torch.no_grad():
        for layout in (torch.contiguous_format, torch.channels_last):
            net, inp = sub.to(memory_format=layout), x.contiguous(memory_format=layout)
            name = "channels_last" if layout is torch.channels_last else "NCHW"
            for what, gflop, fn in (("conv stack", g_stack, lambda: net.features(inp)),
                                    ("stack + head", g_all, lambda: net.forward_shared(inp, f))):
                t, _ = median_time(fn, args.repeats)
                print(f"  {what:12s} ({name:13s}): {t:.3f} s = {gflop / t:6.1f} GFLOP/s, "
                      f"fraction of matmul peak: {gflop * 1e9 / t / peak:.2f}")


if __name__ == "__main__":
    main()
