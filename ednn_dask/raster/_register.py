"""Lattice registration: move a honeycomb sheet onto the pixel alignment the sheet models were trained on.

A sheet EDNN with a small focus learns the energy of atoms *at the positions
relative to the pixel grid that it saw in training*. All training cells are
built on one honeycomb lattice with a fixed origin (thermal displacements
average out), so the network never sees the same sheet shifted by a fraction
of a bond: translated by 0.1 Å, a held-out cell is off by ~66 meV/atom
(session 8, ``docs/sheets.md``). The energy itself is translation invariant,
so the cure is exact: translate every structure so that its lattice has the
training origin before rasterizing it.

The lattice origin is read from the structure factor at the two shortest
reciprocal vectors ``b1``, ``b2`` of the triangular Bravais lattice
(``a1 = (a, 0)``, ``a2 = (a/2, a√3/2)``): for the honeycomb with basis
``{0, δ}``, ``δ = (a/2, a/(2√3))``, ``S(b)/N = e^{-i b·t} (1 + e^{-2πi/3}) / 2``
for a sheet translated by ``t``, whatever its species, vacancies, holes or
thermal noise. Its magnitude (0.5 for an ideal honeycomb) tells whether the
atoms sit on this lattice at all.
"""
from __future__ import annotations

import numpy as np

__all__ = ["HONEYCOMB", "honeycomb_offset", "register_honeycomb", "registration_shift"]

#: Lattice spec stored in sheet model metadata (``metadata["input"]["lattice"]``).
HONEYCOMB = {"kind": "honeycomb", "a": 2.5, "zigzag_axis": "x", "origin": [0.0, 0.0]}

#: A sheet whose ``|S(b)| / N`` falls below this (ideal 0.5) is not on the model's lattice.
MIN_ORDER = 0.25


def _reciprocal(a: float) -> np.ndarray:
    return 2 * np.pi / a * np.array([[1.0, -1.0 / np.sqrt(3.0)], [0.0, 2.0 / np.sqrt(3.0)]])


def honeycomb_offset(xy: np.ndarray, a: float, max_atoms: int = 1_000_000) -> tuple[np.ndarray, float]:
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

    Returns
    -------
    t : (2,) array
        The structure is the reference honeycomb moved by ``t``.
    order : float
        ``min |S(b_k)| / N``; 0.5 for an ideal honeycomb, ~0 for atoms off it.
    """
    xy = np.asarray(xy, dtype=np.float64)[:, :2]
    if xy.shape[0] > max_atoms:
        xy = xy[:: -(-xy.shape[0] // max_atoms)]
    B = _reciprocal(a)
    S = np.exp(-1j * (xy @ B.T)).mean(0)  # (2,)
    ref = (1 + np.exp(-2j * np.pi / 3)) / 2  # the reference lattice's S(b)/N at t = 0
    phase = -np.angle(S / ref)  # = b_k . t  (mod 2 pi)
    t = np.linalg.solve(B, phase)
    return t, float(np.abs(S).min())


def registration_shift(xy: np.ndarray, lattice: dict, what: str = "structure") -> np.ndarray:
    """The translation (Å) that puts ``xy`` on ``lattice`` (a ``HONEYCOMB``-like spec) at its origin.

    Raises
    ------
    StructureError
        If the atoms are not on that lattice (wrong lattice constant or
        orientation, or no lattice at all).
    """
    from ._atoms import StructureError

    if lattice.get("kind") != "honeycomb":
        raise ValueError(f"unknown lattice kind {lattice.get('kind')!r}")
    t, order = honeycomb_offset(xy, float(lattice["a"]))
    if order < MIN_ORDER:
        raise StructureError(
            f"{what} is not a honeycomb sheet with a = {lattice['a']} Å and a zigzag direction along "
            f"{lattice.get('zigzag_axis', 'x')} (lattice order {order:.2f}, ideal 0.50), the only sheets the model "
            f"was trained on"
        )
    return np.asarray(lattice.get("origin", (0.0, 0.0)), dtype=np.float64) - t


def register_honeycomb(xy: np.ndarray, lengths_xy, lattice: dict, what: str = "structure") -> np.ndarray:
    """``xy`` translated onto ``lattice``'s origin and wrapped into the cell ``[0, L_x) × [0, L_y)``."""
    shift = registration_shift(xy, lattice, what)
    out = np.array(xy, dtype=np.float64)
    out[:, :2] = np.mod(out[:, :2] + shift, np.asarray(lengths_xy, dtype=np.float64))
    return out
