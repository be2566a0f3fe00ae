"""Figures: parity and error plots (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["parity_plot", "energy_map", "uncertainty_map", "uncertainty_png"]


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
    da = _coarse(ds["tiles"], max_pixels)
    area = float(ds["x"][1] - ds["x"][0]) * float(ds["y"][1] - ds["y"][0]) if ds.sizes["x"] > 1 else 1.0
    dens = da / area
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(dens.values, origin="lower", cmap="viridis", extent=_extent_nm(ds))
    fig.colorbar(im, ax=ax, label=f"energy density [{ds['tiles'].attrs.get('units', '')}/Å²]")
    ax.set_xlabel("x [nm]")
    ax.set_ylabel("y [nm]")
    ax.set_title(f"EDNN energy density ({ds.attrs.get('model', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _coarse(da, max_pixels: int):
    """``da`` averaged over blocks of tiles so that neither edge exceeds ``max_pixels``."""
    step = max(1, int(np.ceil(max(da.shape) / max_pixels)))
    return da.coarsen(y=step, x=step, boundary="trim").mean() if step > 1 else da


def _extent_nm(ds) -> list[float]:
    return [float(ds["x"][0]) / 10, float(ds["x"][-1]) / 10, float(ds["y"][0]) / 10, float(ds["y"][-1]) / 10]


def uncertainty_png(path) -> Path:
    """Where :func:`uncertainty_map` goes beside the energy map ``path``: ``NAME-uncertainty.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-uncertainty{path.suffix}")


def uncertainty_map(tiles_store, path, max_pixels: int = 1024) -> None:
    """PNG of a tile map's per-tile uncertainty (left) and out-of-domain tiles (right), for a model with a domain.

    Coarsened to fit: a pixel shows the mean uncertainty of its tiles and the fraction of them that are out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    ds = xr.open_zarr(tiles_store, consolidated=False)
    units = ds["uncertainty"].attrs.get("units", "")
    sigma = _coarse(ds["uncertainty"], max_pixels) * (1e3 if units == "eV" else 1.0)
    out = _coarse(ds["out_of_domain"].astype(np.float32), max_pixels)
    fig, ax = plt.subplots(1, 2, figsize=(11, 5))
    im = ax[0].imshow(sigma.values, origin="lower", cmap="magma", extent=_extent_nm(ds))
    fig.colorbar(im, ax=ax[0], label=f"uncertainty per tile [{'meV' if units == 'eV' else units}]")
    im = ax[1].imshow(out.values, origin="lower", cmap="Reds", vmin=0, vmax=1, extent=_extent_nm(ds))
    fig.colorbar(im, ax=ax[1], label="fraction of tiles out of the domain")
    n, total = int(ds.attrs.get("out_of_domain_tiles", 0)), ds["out_of_domain"].size
    ax[0].set_title(f"total uncertainty {float(ds.attrs.get('uncertainty', np.nan)):.3g} {units}")
    ax[1].set_title(f"out of the domain: {n:,} of {total:,} tiles")
    for a in ax:
        a.set_xlabel("x [nm]")
        a.set_ylabel("y [nm]")
    fig.suptitle(f"EDNN domain of validity ({ds.attrs.get('model', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
