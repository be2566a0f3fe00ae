"""How a honeycomb sheet is stretched along x and y relative to a model's lattice.

The honeycomb with its zigzag direction along x (lattice constant ``a``,
reciprocal vectors ``b1``, ``b2`` as in ``_register.py``) has
structure-factor peaks at every reciprocal lattice vector ``G = n1 b1 + n2 b2``,
whatever its species, vacancies or thermal noise. Where ``n1 + n2`` is a
multiple of 3 the two sublattices add in phase (``G·δ ≡ 0``), so the basis
does not pull the peak of a small cell off ``G``: ``3 b2 = (0, 4√3π/a)`` and
``b1 + 2 b2 = (2π/a)(1, √3)``. A sheet stretched by ``s_x`` along x and ``s_y``
along y has them at ``(G_x / s_x, G_y / s_y)``, so the stretches are where
``|S(k)|`` peaks: ``s_y`` from ``3 b2`` (y coordinates only), then ``s_x`` from
``b1 + 2 b2``. In a periodic cell that the
sheet fills, the peak sits on a wave vector of the cell (a whole number ``m``
of lattice periods ``P_x = a``, ``P_y = a√3``), and the stretch is then exact:
``s = L / (m P)``. Along an axis with vacuum (ribbons) it is the peak's own
position.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LatticeStretch", "lattice_stretch"]

#: Stretches searched (relative to the model's lattice) and the step of the coarse search.
STRETCH_RANGE = (0.85, 1.15)
_STEP = 5e-4
#: A peak within this many lattice periods (over the cell) of a wave vector of the cell is taken as that one:
#: a small cell's peak is broad (relaxed vacancies move it by ~1 % in a 5-period cell).
SNAP_PERIODS = 0.25
#: ``|S| / N`` at the peak below this: the atoms do not form a honeycomb along that axis (ideal 0.5).
MIN_PEAK = 0.25


@dataclass(frozen=True)
class LatticeStretch:
    """A sheet's lattice relative to the model's: ``x_sheet = s_x x_model``, ``y_sheet = s_y y_model``.

    Attributes
    ----------
    s_x, s_y : float
        Stretch along x and y (1 on the model's lattice).
    periods_x, periods_y : int or None
        Whole lattice periods in the cell along the axis, where the sheet
        fills it periodically (``None`` where it does not, e.g. across a
        ribbon's vacuum).
    order : float
        The smaller ``|S| / N`` of the two peaks (0.5 for an ideal honeycomb).
    """

    s_x: float
    s_y: float
    periods_x: int | None
    periods_y: int | None
    order: float

    @property
    def strain(self) -> tuple[float, float]:
        """``(ε_x, ε_y) = (s_x - 1, s_y - 1)``."""
        return self.s_x - 1.0, self.s_y - 1.0

    @property
    def isotropic(self) -> bool:
        """The two stretches agree within 0.3 % (a lattice constant, no shape change)."""
        return abs(self.s_x - self.s_y) <= 3e-3


def _magnitude(xy: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """``|S(k)| / N`` for each wave vector ``(kx[j], ky[j])``."""
    out = np.empty(kx.size)
    for lo in range(0, kx.size, 64):
        phase = np.outer(xy[:, 0], kx[lo:lo + 64]) + np.outer(xy[:, 1], ky[lo:lo + 64])
        out[lo:lo + 64] = np.abs(np.exp(-1j * phase).mean(0))
    return out


def _peak(xy: np.ndarray, wave, length: float, period: float) -> tuple[float, int | None, float]:
    """``(s, m, |S|/N)`` of the peak of ``|S(wave(s))|`` over the stretches ``s`` (``m``: periods, or ``None``)."""
    s = np.arange(*STRETCH_RANGE, _STEP)
    mag = _magnitude(xy, *wave(s))
    j = int(np.argmax(mag))
    fine = np.linspace(s[max(j - 1, 0)], s[min(j + 1, s.size - 1)], 41)
    fmag = _magnitude(xy, *wave(fine))
    best, peak = float(fine[int(np.argmax(fmag))]), float(fmag.max())
    m = round(length / (best * period))
    if m >= 1 and abs(length / (best * period) - m) <= SNAP_PERIODS:
        snapped = length / (m * period)
        return snapped, m, float(_magnitude(xy, *wave(np.array([snapped])))[0])
    return best, None, peak


def lattice_stretch(xy: np.ndarray, lengths_xy, a: float, max_atoms: int = 20_000) -> LatticeStretch | None:
    """The stretch of a honeycomb sheet (zigzag along x) relative to the lattice constant ``a``, or ``None``.

    ``None`` when the atoms show no honeycomb peak within a 15 % stretch.
    An evenly strided subset of at most ``max_atoms`` atoms is used.
    """
    xy = np.asarray(xy, dtype=np.float64)[:, :2]
    if xy.shape[0] > max_atoms:
        xy = xy[:: -(-xy.shape[0] // max_atoms)]
    Lx, Ly = (float(v) for v in lengths_xy)
    gx, gy = 2 * np.pi / a, 4 * np.sqrt(3.0) * np.pi / a  # b1 + 2 b2 = (gx, gy / 2); 3 b2 = (0, gy)
    s_y, m_y, peak_y = _peak(xy, lambda s: (np.zeros_like(s), gy / s), Ly, a * np.sqrt(3.0))
    if peak_y < MIN_PEAK:
        return None
    s_x, m_x, peak_x = _peak(xy, lambda s: (gx / s, np.full_like(s, gy / (2 * s_y))), Lx, a)
    if peak_x < MIN_PEAK:
        return None
    return LatticeStretch(s_x, s_y, m_x, m_y, min(peak_x, peak_y))
