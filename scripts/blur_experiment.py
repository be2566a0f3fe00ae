"""Paper Fig. 6: blur equal areas of the context (outer band) or of the focus (central square).

If the network has learned to ignore the context, blurring the outer band of
every tile should hurt far less than blurring an equal area at the centre of
the focus. When the focus is small against the tile (f = 8 in a 56-px tile),
equal-area centre squares soon cover context too, so a second panel blurs
equal squares at the centre (containing the focus) and in a corner (context
only), from f/2 to 2f px.

    python scripts/blur_experiment.py --model hexagonal-sheet --test runs/hex_test.zarr \
        --out docs/blur_context_vs_focus.png [--n 300] [--sigma 3]

Writes the figure and a JSON file of the numbers next to it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from ednn_dask.data.sheets import open_dataset
from ednn_dask.models import get_model
from ednn_dask.tiles import extract_tiles, periodic_pad


def band_mask(t: int, width: int) -> np.ndarray:
    m = np.ones((t, t), bool)
    if width * 2 < t:
        m[width : t - width, width : t - width] = False
    return m


def centre_mask(t: int, side: int) -> np.ndarray:
    m = np.zeros((t, t), bool)
    lo = (t - side) // 2
    m[lo : lo + side, lo : lo + side] = True
    return m


def corner_mask(t: int, side: int) -> np.ndarray:
    m = np.zeros((t, t), bool)
    m[:side, :side] = True
    return m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="hexagonal-sheet")
    p.add_argument("--test", required=True)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--sigma", type=float, default=3.0, help="blur width in pixels")
    p.add_argument("--out", default="docs/blur_context_vs_focus.png")
    args = p.parse_args()
    model = get_model(args.model)
    f, c = model.metadata["focus"], model.metadata["context"]
    t = f + 2 * c
    data = open_dataset(args.test)
    x = torch.from_numpy(data["rasters"][: args.n])
    e_ref = data["energies"][: args.n]
    n_atoms = data["n_atoms"][: args.n]
    tiles = extract_tiles(periodic_pad(x, c), f, c).numpy()  # (N, ny, nx, C, t, t)
    shape = tiles.shape
    flat = tiles.reshape(-1, shape[3], t, t)
    blurred = gaussian_filter(flat, sigma=(0, 0, args.sigma, args.sigma), mode="nearest")
    net = model.ednn.tile_net

    def energies(mask: np.ndarray | None) -> np.ndarray:
        inp = flat if mask is None else np.where(mask, blurred, flat)
        with torch.no_grad():
            out = torch.cat([net(torch.from_numpy(inp[i : i + 512]).float()) for i in range(0, len(inp), 512)])
        return out.double().numpy().reshape(shape[0], -1).sum(1)

    base = np.abs(energies(None) - e_ref) / n_atoms * 1e3
    rows = []
    for width in range(2, c + 1, 2):
        area = int(band_mask(t, width).sum())
        side = int(round(np.sqrt(area)))
        if side > t:
            break
        err_ctx = np.abs(energies(band_mask(t, width)) - e_ref) / n_atoms * 1e3
        err_foc = np.abs(energies(centre_mask(t, side)) - e_ref) / n_atoms * 1e3
        rows.append({"area_fraction": area / t**2, "context_band_px": width, "focus_square_px": side,
                     "mae_context_blur": float(err_ctx.mean()), "mae_focus_blur": float(err_foc.mean())})
        print(f"blurred {area / t**2:5.1%} of each tile: context band {width:2d} px -> MAE {err_ctx.mean():7.3f} "
              f"meV/atom; focus square {side:2d} px -> {err_foc.mean():7.3f} meV/atom")
    # equal squares at the tile's centre (the focus and the context next to it) or in a corner (context
    # only): the test that still works when the focus is a small part of the tile (f = 8 of 56 px)
    squares = []
    for side in range(f // 2, min(2 * f + 1, c + 1), max(1, f // 4)) if f <= c else ():
        err_ctr = np.abs(energies(centre_mask(t, side)) - e_ref) / n_atoms * 1e3
        err_cor = np.abs(energies(corner_mask(t, side)) - e_ref) / n_atoms * 1e3
        squares.append({"square_px": side, "area_fraction": side**2 / t**2,
                        "mae_centre_blur": float(err_ctr.mean()), "mae_corner_blur": float(err_cor.mean())})
        print(f"blurred a {side:2d} px square ({side**2 / t**2:5.1%}): at the centre -> MAE {err_ctr.mean():7.3f} "
              f"meV/atom; in a corner (context) -> {err_cor.mean():7.3f} meV/atom")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if squares else 1, figsize=(11 if squares else 5.5, 4), squeeze=False)
    ax = axes[0, 0]
    frac = [r["area_fraction"] * 100 for r in rows]
    ax.plot(frac, [r["mae_context_blur"] for r in rows], "o-", label="blur in context (outer band)")
    ax.plot(frac, [r["mae_focus_blur"] for r in rows], "s-", label="blur in focus (centre square)")
    ax.axhline(base.mean(), color="k", lw=0.8, ls="--", label="no blur")
    ax.axvline(100 * f**2 / t**2, color="grey", lw=0.8, ls=":", label=f"focus area ({f}² px)")
    ax.set_xlabel("blurred area [% of tile]")
    ax.set_ylabel("MAE [meV/atom]")
    ax.set_yscale("log")
    ax.set_title(f"{model.name}: f={f}, c={c}, Gaussian blur sigma={args.sigma:g} px")
    ax.legend()
    if squares:
        ax2 = axes[0, 1]
        side = [r["square_px"] for r in squares]
        ax2.plot(side, [r["mae_centre_blur"] for r in squares], "s-", label="square at the centre (focus)")
        ax2.plot(side, [r["mae_corner_blur"] for r in squares], "o-", label="square in a corner (context)")
        ax2.axhline(base.mean(), color="k", lw=0.8, ls="--", label="no blur")
        ax2.axvline(f, color="grey", lw=0.8, ls=":", label=f"focus edge ({f} px)")
        ax2.set_xlabel("blurred square edge [px]")
        ax2.set_ylabel("MAE [meV/atom]")
        ax2.set_yscale("log")
        ax2.set_title("equal squares: centre vs corner")
        ax2.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    Path(args.out).with_suffix(".json").write_text(
        json.dumps({"model": model.name, "focus": f, "context": c, "baseline_mae": float(base.mean()), "n": int(args.n), "sigma_px": args.sigma, "rows": rows,
                    "squares": squares}, indent=1)
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
