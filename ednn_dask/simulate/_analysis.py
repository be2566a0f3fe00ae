"""Analysis of simulated sheets."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["radial_distribution"]


def radial_distribution(frames: Sequence[np.ndarray], lengths_xy: Sequence[float], rmax: float,
                        bins: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """In-plane g(r) of periodic sheets: bin centres (Å) and g, normalised by the 2-D ideal gas.

    ``frames`` are ``(N, 2)`` positions of the same ``N`` atoms in an orthorhombic cell of
    ``lengths_xy``; distances are minimum-image, up to ``rmax`` (at most half the shorter cell edge).
    """
    L = np.asarray(lengths_xy, dtype=np.float64)
    if rmax > L.min() / 2 + 1e-9:
        raise ValueError(f"rmax {rmax} Å is beyond half the cell ({L.min() / 2:.4g} Å)")
    edges = np.linspace(0.0, rmax, bins + 1)
    hist = np.zeros(bins)
    n = np.asarray(frames[0]).shape[0]
    upper = np.triu_indices(n, 1)
    for xy in frames:
        xy = np.asarray(xy, dtype=np.float64)[:, :2]
        d = xy[:, None, :] - xy[None, :, :]
        d -= np.round(d / L) * L
        hist += np.histogram(np.hypot(d[..., 0], d[..., 1])[upper], edges)[0]
    shell = np.pi * (edges[1:] ** 2 - edges[:-1] ** 2)
    g = hist / (len(frames) * n / 2 * (n / (L[0] * L[1])) * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g
