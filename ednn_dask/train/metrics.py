"""Error metrics for extensive predictions."""
from __future__ import annotations

import numpy as np

__all__ = ["error_metrics"]


def error_metrics(pred, true, n_sites=None) -> dict[str, float]:
    """Absolute-error statistics of totals.

    Parameters
    ----------
    pred, true : array_like
        Predicted and reference totals, shape ``(N,)``, same units.
    n_sites : array_like or int, optional
        Number of sites (spins, atoms) of each example; adds per-site errors.

    Returns
    -------
    dict
        ``mae``, ``median_ae``, ``rmse``, ``max_ae`` (units of the target),
        ``median_rel`` (relative to ``|true|``), and with ``n_sites`` also
        ``mae_per_site`` and ``median_ae_per_site``.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"pred and true must be equal non-empty 1-D arrays, got {p.shape} and {t.shape}")
    err = np.abs(p - t)
    out = {
        "n": int(p.size),
        "mae": float(err.mean()),
        "median_ae": float(np.median(err)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "max_ae": float(err.max()),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = err / np.abs(t)
    rel = rel[np.isfinite(rel)]
    out["median_rel"] = float(np.median(rel)) if rel.size else float("nan")
    if n_sites is not None:
        per = err / np.broadcast_to(np.asarray(n_sites, dtype=np.float64), err.shape)
        out["mae_per_site"] = float(per.mean())
        out["median_ae_per_site"] = float(np.median(per))
    return out
