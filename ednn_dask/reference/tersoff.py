"""Tersoff-type B/C/N potential of Matsunaga, Fisher and Matsubara (Jpn. J. Appl. Phys. 39, L48, 2000).

The potential is Tersoff's multicomponent form (Phys. Rev. B 39, 5566, 1989)

.. math::

    E = \\tfrac12 \\sum_{i \\ne j} f_c(r_{ij}) [f_R(r_{ij}) + b_{ij} f_A(r_{ij})],\\quad
    b_{ij} = \\chi_{ij} (1 + \\beta_i^{n_i} \\zeta_{ij}^{n_i})^{-1/2n_i},\\quad
    \\zeta_{ij} = \\sum_{k \\ne i,j} f_c(r_{ik})\\, \\omega_{ik}\\, g_i(\\theta_{ijk}),

with the parameters of :data:`MATSUNAGA_BCN` (single-element values from the paper's table, pair values by
Tersoff's mixing rules: ``A``, ``B``, ``R``, ``S`` geometric, ``λ``, ``μ`` arithmetic). The only
``ω_ik ≠ 1`` is C–N (0.6381): it weakens the bond order of every bond of a C or N atom that has an N or C
neighbour.

Evaluated with ``matscipy``'s many-body calculator, whose Tersoff form has no ``ω``: :func:`tersoff_form`
multiplies its three-body term ``G`` (and the derivatives of ``G``) by ``ω_ik``, which is exactly the
``ω`` of the formula above, since ``G = f_c(r_ik) g(θ_ijk)`` for this potential (``λ3 = 0``). The same
table written as a LAMMPS ``pair_style tersoff`` file (:func:`lammps_tersoff_file`, ``ω_ik`` as
``γ_ijk``) is the independent check (``tests/test_reference.py``).

The potential is a sum of short-ranged (cutoff ≤ 2.3 Å) bond-order terms and hence exactly extensive: an
``n × m`` supercell has exactly ``n m`` times the cell's energy.
"""
from __future__ import annotations

import copy
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from ase import Atoms

__all__ = ["REFERENCE_NAME", "MATSUNAGA_BCN", "tersoff_form", "tersoff_energy", "tersoff_calculator",
           "lammps_tersoff_file"]

# matscipy's Tersoff bond order uses np.power(..., where=...) without out= and masks the result itself
warnings.filterwarnings("ignore", message="'where' used without 'out'", category=UserWarning,
                        module="matscipy")

REFERENCE_NAME = ("Tersoff B/C/N, Matsunaga et al. JJAP 39, L48 (2000), with omega(C-N) = 0.6381, "
                  "via matscipy Manybody")

#: Elements in the order of the pair arrays of :data:`MATSUNAGA_BCN`.
_ELEMENTS = ("C", "N", "B")

#: The parameter table. Element arrays are in the order C, N, B; pair arrays CC, CN, CB, NN, NB, BB
#: (``-1`` marks a mixed value filled in by the mixing rules). ``omega`` is per pair ``(i, k)``.
MATSUNAGA_BCN = {
    "__ref__": "Matsunaga K., Fisher C., Matsubara H., Jpn. J. Appl. Phys. 39, L48 (2000)",
    "el": list(_ELEMENTS),
    "style": "Tersoff",
    "A": [1.3936e3, -1.0, -1.0, 1.1e4, -1.0, 2.7702e2],
    "B": [3.4674e2, -1.0, -1.0, 2.1945e2, -1.0, 1.8349e2],
    "chi": [1.0, 0.9685, 1.0025, 1.0, 1.1593, 1.0],
    "lambda": [3.4879, -1.0, -1.0, 5.7708, -1.0, 1.9922],
    "mu": [2.2119, -1.0, -1.0, 2.5115, -1.0, 1.5856],
    "omega": [1.0, 0.6381, 1.0, 1.0, 1.0, 1.0],
    "lambda3": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    "r1": [1.80, -1.0, -1.0, 2.0, -1.0, 1.8],
    "r2": [2.10, -1.0, -1.0, 2.3, -1.0, 2.1],
    "beta": [1.5724e-7, 1.0562e-1, 1.6e-6],
    "n": [7.2751e-1, 12.4498, 3.9929],
    "c": [3.8049e4, 7.9934e4, 5.2629e-1],
    "d": [4.3484e0, 1.3432e2, 1.5870e-3],
    "h": [-5.7058e-1, -0.9973, 0.5],
}

_GEOMETRIC = ("A", "B", "r1", "r2")
_ARITHMETIC = ("lambda", "mu")


def _pair(i: int, j: int, n: int = len(_ELEMENTS)) -> int:
    """Index of the unordered pair ``(i, j)`` in the pair arrays (CC, CN, CB, NN, NB, BB)."""
    i, j = min(i, j), max(i, j)
    return i * n - i * (i - 1) // 2 + (j - i)


def mixed_parameters() -> dict:
    """:data:`MATSUNAGA_BCN` with the mixed pair values filled in (numpy arrays)."""
    p = copy.deepcopy(MATSUNAGA_BCN)
    n = len(_ELEMENTS)
    for key in _GEOMETRIC + _ARITHMETIC:
        values = np.array(p[key], dtype=np.float64)
        for i in range(n):
            for j in range(i + 1, n):
                a, b = values[_pair(i, i)], values[_pair(j, j)]
                if values[_pair(i, j)] < 0:
                    values[_pair(i, j)] = np.sqrt(a * b) if key in _GEOMETRIC else (a + b) / 2
        p[key] = values
    for key in ("chi", "omega", "lambda3", "beta", "n", "c", "d", "h"):
        p[key] = np.array(p[key], dtype=np.float64)
    return p


def _scaled(fn, omega: np.ndarray):
    """``fn(rij, rik, i, ij, ik)`` times ``omega[ik]``, for values of any trailing shape."""

    def out(rij, rik, i, ij, ik):
        value = fn(rij, rik, i, ij, ik)
        w = omega[ik]
        return value * np.reshape(w, np.shape(w) + (1,) * (np.ndim(value) - np.ndim(w)))

    return out


def tersoff_form() -> dict:
    """matscipy's Tersoff functional form for :data:`MATSUNAGA_BCN`, with ``ω_ik`` in the three-body term."""
    from matscipy.calculators.manybody.explicit_forms import TersoffBrenner

    p = mixed_parameters()
    if np.any(p["lambda3"] != 0):
        raise ValueError("omega is applied as a factor of G, exact only for lambda3 = 0")
    table = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in p.items() if k != "omega"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        form = TersoffBrenner(table)
    for key in ("G", "d1G", "d2G", "d11G", "d22G", "d12G"):
        form[key] = _scaled(form[key], p["omega"])
    return form


@lru_cache(maxsize=1)
def tersoff_calculator():
    """The (cached) ASE calculator of the reference: energies, forces and stresses."""
    from matscipy.calculators.manybody import Manybody

    return Manybody(**tersoff_form())


def tersoff_energy(atoms: Atoms) -> float:
    """Total potential energy of ``atoms`` in eV."""
    at = atoms.copy()
    at.calc = tersoff_calculator()
    return float(at.get_potential_energy())


def lammps_tersoff_file(path: str | os.PathLike) -> Path:
    """Write :data:`MATSUNAGA_BCN` as a LAMMPS ``pair_style tersoff`` file (metal units) and return its path.

    Entry ``(i, j, k)``: ``γ = ω_ik``, ``c, d, cos θ0 = h, n, β`` of ``i``; ``λ2 = μ_ij``,
    ``B = χ_ij B_ij``, ``λ1 = λ_ij``, ``A = A_ij`` (LAMMPS reads these from the ``(i, j, j)`` entries);
    ``R = (r1 + r2) / 2`` and ``D = (r2 - r1) / 2`` of the pair ``(i, k)``; ``m = 3``, ``λ3 = 0``.
    """
    p = mixed_parameters()
    lines = [f"# {MATSUNAGA_BCN['__ref__']}, omega_ik written as gamma_ijk; generated by ednn_dask",
             "# e1 e2 e3 m gamma lambda3 c d costheta0 n beta lambda2 B R D lambda1 A"]
    n = len(_ELEMENTS)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                ij, ik = _pair(i, j), _pair(i, k)
                R = (p["r1"][ik] + p["r2"][ik]) / 2
                D = (p["r2"][ik] - p["r1"][ik]) / 2
                values = [3.0, p["omega"][ik], 0.0, p["c"][i], p["d"][i], p["h"][i], p["n"][i], p["beta"][i],
                          p["mu"][ij], p["chi"][ij] * p["B"][ij], R, D, p["lambda"][ij], p["A"][ij]]
                lines.append(" ".join([_ELEMENTS[i], _ELEMENTS[j], _ELEMENTS[k], *(repr(float(v)) for v in values)]))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
