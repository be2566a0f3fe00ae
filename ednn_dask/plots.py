"""Figures: parity and error plots (matplotlib, Agg backend)."""
from __future__ import annotations

import numpy as np

__all__ = ["parity_plot", "energy_map"]


def parity_plot(true, pred, path, title: str = "", units: str = "") -> None:
    """Predicted vs reference (left) and error vs reference (right), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, p = np.asarray(true, float), np.asarray(pred, float)
    err = p - t
    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
    ax[0].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax[0].scatter(t, p, s=3, alpha=0.5)
    ax[0].set_xlabel(f"reference [{units}]")
    ax[0].set_ylabel(f"EDNN [{units}]")
    ax[1].scatter(t, err, s=3, alpha=0.5)
    ax[1].axhline(0, color="k", lw=0.8)
    ax[1].set_xlabel(f"reference [{units}]")
    ax[1].set_ylabel(f"EDNN - reference [{units}]")
    ax[1].set_title(f"MAE {np.abs(err).mean():.3g}, median {np.median(np.abs(err)):.3g} {units}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def energy_map(tiles_store, path, max_pixels: int = 1024) -> None:
    """PNG of the tile-contribution map of an evaluation (energy per focus area), coarsened to fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    ds = xr.open_zarr(tiles_store, consolidated=False)
    da = ds["tiles"]
    step = max(1, int(np.ceil(max(da.shape) / max_pixels)))
    if step > 1:
        da = da.coarsen(y=step, x=step, boundary="trim").mean()
    area = float(ds["x"][1] - ds["x"][0]) * float(ds["y"][1] - ds["y"][0]) if ds.sizes["x"] > 1 else 1.0
    dens = da / area
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(dens.values, origin="lower", cmap="viridis",
                   extent=[float(ds["x"][0]) / 10, float(ds["x"][-1]) / 10, float(ds["y"][0]) / 10, float(ds["y"][-1]) / 10])
    fig.colorbar(im, ax=ax, label=f"energy density [{ds['tiles'].attrs.get('units', '')}/Å²]")
    ax.set_xlabel("x [nm]")
    ax.set_ylabel("y [nm]")
    ax.set_title(f"EDNN energy density ({ds.attrs.get('model', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
