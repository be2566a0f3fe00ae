"""Figures: parity and error plots (matplotlib, Agg backend)."""
from __future__ import annotations

import numpy as np

__all__ = ["parity_plot"]


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
