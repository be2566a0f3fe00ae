"""The pixel grid of a sheet at a model's spacing, with errors that say how to make the cell fit.

The sheet's own lattice in messages is its stretch along x and y from the
honeycomb's structure-factor peaks (:func:`~ednn_dask.raster._strain.lattice_stretch`;
exact for a periodic cell), else the median bond length × √3. A stretch that
differs between x and y is named as a strain; an isotropic one as a lattice
constant when it differs from the model's by more than :data:`LATTICE_RTOL`, 1 %
(2.46 Å, graphene's, is 1.6 % off).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ._checks import StructureError
from ._gaussian import RasterGrid
from ._neighbours import bond_geometry
from ._strain import lattice_stretch

__all__ = ["LATTICE_RTOL", "ROTATION_TOL", "lattice_hint", "sheet_grid"]

#: Relative difference of lattice constants reported as "another lattice constant".
LATTICE_RTOL = 0.01
#: Bond rotation (degrees) reported as "rotated": thermal noise at 1500 K moves the estimate by < 0.3°.
ROTATION_TOL = 1.0


def lattice_hint(xy: np.ndarray, lengths_xy: Sequence[float], lattice: dict, lead: bool = True) -> str:
    """Words on the sheet's own lattice constant when it differs from ``lattice["a"]``; "" otherwise.

    ``lead`` starts them with the model's own lattice constant (for messages that do not name it).
    """
    if lattice.get("kind") != "honeycomb":
        return ""
    a = float(lattice["a"])
    _, bond, rotation = bond_geometry(xy, lengths_xy)
    if not np.isfinite(bond):
        return ""
    words = []
    if np.isfinite(rotation) and abs(rotation) > ROTATION_TOL:
        axis = lattice.get("zigzag_axis", "x")
        turn = (f"this sheet is rotated by {rotation:+.1f}° from the model's honeycomb (zigzag along {axis}), "
                "an orientation the model was not trained on")
        if abs(abs(rotation) - 30.0) <= ROTATION_TOL:
            turn += (f": it has its armchair direction along {axis}; swap x and y (positions and cell; the energy "
                     f"is unchanged) to put its zigzag direction along {axis}")
        words.append(turn)
    fit = lattice_stretch(xy, lengths_xy, a) if not words else None  # a rotated sheet has no such peaks
    have = a * fit.s_x if fit is not None else bond * np.sqrt(3.0)
    if fit is not None and max(abs(e) for e in fit.strain) > 1e-3 and not (
            fit.isotropic and abs(have / a - 1) > LATTICE_RTOL):
        ex, ey = fit.strain
        words.append(f"this sheet is strained relative to the model's honeycomb by {ex:+.2%} along x and "
                     f"{ey:+.2%} along y, a strain the model was not trained on (x scaled by {1 / fit.s_x:.4f} and "
                     f"y by {1 / fit.s_y:.4f} would be the unstrained sheet, a different structure)")
    elif abs(have / a - 1) > LATTICE_RTOL:
        words.append(f"this sheet's bonds are {have / np.sqrt(3.0):.3f} Å long (a = {have:.3f} Å): scale the cell "
                     f"and positions by {a:g}/{have:.3f} = {a / have:.4f} (energies at another lattice constant are "
                     f"outside what the model learned)")
    if not words:
        return ""
    return (f"the model was trained on a honeycomb with a = {a:g} Å, and " if lead else "") + "; ".join(words)


def sheet_grid(lengths_xy: Sequence[float], spacing_yx: Sequence[float], tolerance: float = 1e-3,
               lattice: dict | None = None, xy: np.ndarray | None = None) -> RasterGrid:
    """The pixel grid of a cell at a model's spacing, or a :class:`StructureError` the user can act on.

    With a model's ``lattice`` and the positions ``xy``, a cell that is not a
    whole number of pixels is explained by the sheet's lattice constant when
    it differs from the model's, or by the cell sizes that fit the model's
    honeycomb when it does not.
    """
    try:
        return RasterGrid.for_cell(lengths_xy, spacing_yx, tolerance)
    except ValueError as exc:
        if not lattice or xy is None or lattice.get("kind") != "honeycomb":
            raise StructureError(str(exc)) from None
    (Lx, Ly), (hy, hx) = lengths_xy, spacing_yx
    head = (f"the cell ({Lx:.4g} x {Ly:.4g} Å) is {Lx / hx:.2f} x {Ly / hy:.2f} pixels at the model's spacing "
            f"({hx:.4g} x {hy:.4g} Å), not a whole number")
    hint = lattice_hint(xy, lengths_xy, lattice)
    if not hint:
        a = float(lattice["a"])
        axis = lattice.get("zigzag_axis", "x")
        hint = (f"a sheet on the model's honeycomb (a = {a:g} Å, zigzag along {axis}) has an orthogonal cell of "
                f"whole multiples of {a:g} x {a * np.sqrt(3.0):.4g} Å")
    raise StructureError(f"{head}; {hint}")
