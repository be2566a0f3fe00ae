"""Lattice registration: move a honeycomb sheet onto the pixel alignment the sheet models were trained on.

A sheet EDNN with a small focus learns the energy of atoms *at the positions
relative to the pixel grid that it saw in training*. All training cells are
built on one honeycomb lattice with a fixed origin (thermal displacements
average out), so the network never sees the same sheet shifted by a fraction
of a bond: translated by 0.1 Å, a held-out cell is off by ~66 meV/atom
without registration (``docs/sheets.md``, "Lattice registration"). The energy
itself is translation invariant, so the cure is exact: translate every
structure so that its lattice has the training origin before rasterizing it.

The lattice origin is read from the structure factor at the two shortest
reciprocal vectors ``b1``, ``b2`` of the triangular Bravais lattice
(``a1 = (a, 0)``, ``a2 = (a/2, a√3/2)``): for the honeycomb with basis
``{0, δ}``, ``δ = (a/2, a/(2√3))``, ``S(b)/N = e^{-i b·t} (1 + e^{-2πi/3}) / 2``
for a sheet translated by ``t``, whatever its species, vacancies, holes or
thermal noise. Its magnitude (0.5 for an ideal honeycomb) tells whether the
atoms sit on this lattice at all.

A translation cannot undo a mirror y (or a 180° rotation): it swaps the two
sublattices. For graphene that changes nothing, but the training cells of the
sheet models always carry B on the origin's sublattice (A) and N on the other
(B), so an hBN cell built the other way round (N at the origin, as other tools
may do) would be a chemistry the network never saw: without the mirror a
lattice-trained hexagonal network is off by ~200 meV/atom on y-mirrored
held-out cells (``docs/sheets.md``). Registration therefore also fixes the
orientation (exact, the energy is mirror invariant): with sublattice signs
``s = +1`` (A) / ``-1`` (B) and weights ``Z - 6`` (B -1, C 0, N +1), a sheet
with ``D = sum (Z - 6) s > 0`` is mirrored in y before it is translated. Pure
carbon has ``D = 0`` and is never mirrored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import StructureError
from ._grid import lattice_hint

__all__ = ["HONEYCOMB", "Registration", "honeycomb_offset", "offset_jacobian", "sublattice_imbalance",
           "register_honeycomb", "registration"]

#: Lattice spec stored in sheet model metadata (``metadata["input"]["lattice"]``).
HONEYCOMB = {"kind": "honeycomb", "a": 2.5, "zigzag_axis": "x", "origin": [0.0, 0.0]}

#: A sheet whose ``|S(b)| / N`` falls below this (ideal 0.5) is not on the model's lattice.
MIN_ORDER = 0.25


def _reciprocal(a: float) -> np.ndarray:
    return 2 * np.pi / a * np.array([[1.0, -1.0 / np.sqrt(3.0)], [0.0, 2.0 / np.sqrt(3.0)]])


@dataclass(frozen=True)
class Registration:
    """How a sheet is moved onto the model's lattice: mirror y (if ``mirror_y``), then translate by ``(dx, dy)`` Å."""

    dx: float = 0.0
    dy: float = 0.0
    mirror_y: bool = False

    def apply(self, xy: np.ndarray, lengths_xy) -> np.ndarray:
        """New ``(N, 2)`` float64 positions, moved and wrapped into ``[0, L_x) × [0, L_y)``."""
        xy = np.asarray(xy, dtype=np.float64)
        out = np.empty((xy.shape[0], 2))
        out[:, 0] = np.mod(xy[:, 0] + self.dx, float(lengths_xy[0]))
        out[:, 1] = np.mod((-xy[:, 1] if self.mirror_y else xy[:, 1]) + self.dy, float(lengths_xy[1]))
        return out

    def pull_back(self, xy: np.ndarray, grad: np.ndarray, lattice: dict) -> np.ndarray:
        """``∂E/∂r`` of the user's positions ``xy`` from ``grad = ∂E/∂y`` of the registered ones ``y``.

        ``y_a = M r_a + origin - t(M r)`` (``M`` the mirror, ``t`` of
        :func:`honeycomb_offset`), so ``∂E/∂r_a = Mᵀ (g_a - J_aᵀ Σ_b g_b)``
        with ``J_a`` of :func:`offset_jacobian`: the translation the
        registration takes from the atoms is differentiated too, and the
        gradients sum to zero as those of a translation-invariant energy do.
        """
        g = np.asarray(grad, dtype=np.float64)
        jac = offset_jacobian(xy, float(lattice["a"]), mirror_y=self.mirror_y)
        out = g - np.einsum("nji,j->ni", jac, g.sum(0))
        if self.mirror_y:
            out[:, 1] *= -1
        return out

    def as_attrs(self) -> dict:
        """The attrs written with a registered raster."""
        return {"registration_shift": [self.dx, self.dy], "registration_mirror_y": self.mirror_y}


def _subset(xy: np.ndarray, max_atoms: int) -> slice:
    return slice(None, None, -(-xy.shape[0] // max_atoms) if xy.shape[0] > max_atoms else 1)


def honeycomb_offset(xy: np.ndarray, a: float, max_atoms: int = 1_000_000,
                     mirror_y: bool = False) -> tuple[np.ndarray, float]:
    """Translation ``t`` (Å, modulo the lattice) of a honeycomb sheet from the reference origin, and its order.

    Parameters
    ----------
    xy : (N, 2 or 3) array
        Atom positions in Å.
    a : float
        Lattice constant (Å).
    max_atoms : int
        Use an evenly strided subset of at most this many atoms (the phase is
        a global property; 1 M atoms fix it to ~1e-5 Å).
    mirror_y : bool
        The offset of the sheet mirrored in y (``y -> -y``).

    Returns
    -------
    t : (2,) array
        The structure is the reference honeycomb moved by ``t``.
    order : float
        ``min |S(b_k)| / N``; 0.5 for an ideal honeycomb, ~0 for atoms off it.
    """
    xy = np.asarray(xy)[_subset(xy, max_atoms), :2].astype(np.float64)
    if mirror_y:
        xy[:, 1] *= -1
    B = _reciprocal(a)
    S = np.exp(-1j * (xy @ B.T)).mean(0)  # (2,)
    ref = (1 + np.exp(-2j * np.pi / 3)) / 2  # the reference lattice's S(b)/N at t = 0
    phase = -np.angle(S / ref)  # = b_k . t  (mod 2 pi)
    t = np.linalg.solve(B, phase)
    return t, float(np.abs(S).min())


def offset_jacobian(xy: np.ndarray, a: float, max_atoms: int = 1_000_000, mirror_y: bool = False) -> np.ndarray:
    """``(N, 2, 2)``: ``∂t/∂r_a`` of the offset ``t`` of :func:`honeycomb_offset` (same arguments).

    ``t = B⁻¹ φ`` with ``φ_k = -arg S(b_k)`` + const and ``S(b) = mean exp(-i b·r)``,
    so ``∂φ_k/∂r_a = b_k Re(exp(-i b_k·r_a) / (N S(b_k)))`` and
    ``∂t/∂r_a = B⁻¹ diag(c_a) B``. About ``I / N`` for every atom of a sheet
    near its lattice; 0 for the atoms the strided subset leaves out. With
    ``mirror_y`` the derivative is with respect to the mirrored positions.
    """
    xy = np.asarray(xy, dtype=np.float64)[:, :2]
    sel = _subset(xy, max_atoms)
    p = xy[sel].copy()
    if mirror_y:
        p[:, 1] *= -1
    B = _reciprocal(a)
    e = np.exp(-1j * (p @ B.T))  # (n, 2)
    S = e.mean(0)
    c = np.real(e / (len(p) * S))  # (n, 2)
    jac = np.zeros((xy.shape[0], 2, 2))
    jac[sel] = np.einsum("ij,nj,jk->nik", np.linalg.inv(B), c, B)
    return jac


def sublattice_imbalance(xy: np.ndarray, numbers: np.ndarray, a: float, t: np.ndarray,
                         max_atoms: int = 1_000_000) -> float:
    """``D = sum (Z - 6) s`` over the atoms, ``s = +1`` on the origin's sublattice and ``-1`` on the other.

    ``t`` is the sheet's offset from :func:`honeycomb_offset`. Negative for
    the builders' hBN (B on the origin's sublattice), zero for carbon.
    """
    sel = _subset(xy, max_atoms)
    w = np.asarray(numbers)[sel].astype(np.float64) - 6.0
    if not w.any():
        return 0.0
    phase = (np.asarray(xy)[sel, :2] - np.asarray(t)) @ _reciprocal(a).T  # 0 on A sites, 2 pi / 3 on B sites
    s = np.where(np.cos(phase).mean(1) > 0.25, 1.0, -1.0)  # mean cos: 1 on A, -0.5 on B
    return float(w @ s)


def registration(xy: np.ndarray, numbers: np.ndarray, lattice: dict, what: str = "structure",
                 lengths_xy=None) -> Registration:
    """The move that puts ``xy`` on ``lattice`` (a ``HONEYCOMB``-like spec) at its origin and orientation.

    ``lengths_xy`` (the periodic cell, Å), when given, lets the error name
    the sheet's own lattice constant if it is not the model's.

    Raises
    ------
    StructureError
        If the atoms are not on that lattice (wrong lattice constant or
        orientation, or no lattice at all).
    """
    if lattice.get("kind") != "honeycomb":
        raise ValueError(f"unknown lattice kind {lattice.get('kind')!r}")
    a = float(lattice["a"])
    t, order = honeycomb_offset(xy, a)
    if order < MIN_ORDER:
        hint = lattice_hint(xy, lengths_xy, lattice, lead=False) if lengths_xy is not None else ""
        raise StructureError(
            f"{what} is not a honeycomb sheet with a = {lattice['a']} Å and a zigzag direction along "
            f"{lattice.get('zigzag_axis', 'x')} (lattice order {order:.2f}, ideal 0.50), the only sheets the model "
            f"was trained on" + (f"; {hint}" if hint else "")
        )
    mirror = sublattice_imbalance(xy, numbers, a, t) > 0
    if mirror:
        t, _ = honeycomb_offset(xy, a, mirror_y=True)
    dx, dy = np.asarray(lattice.get("origin", (0.0, 0.0)), dtype=np.float64) - t
    return Registration(float(dx), float(dy), bool(mirror))


def register_honeycomb(xy: np.ndarray, numbers: np.ndarray, lengths_xy, lattice: dict,
                       what: str = "structure") -> np.ndarray:
    """``xy`` (N, 2 or 3) moved onto ``lattice`` (see :func:`registration`), wrapped into the cell; z kept."""
    out = np.array(xy, dtype=np.float64)
    out[:, :2] = registration(out, numbers, lattice, what, lengths_xy).apply(out, lengths_xy)
    return out
