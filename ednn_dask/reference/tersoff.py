"""Tersoff-type B/C/N potential of Matsunaga, Fisher and Matsubara (Jpn. J. Appl. Phys. 39, L48, 2000).

Evaluated with ``matscipy``'s many-body calculator. The potential is a sum of
short-ranged (cutoff ≤ 2.3 Å) bond-order terms and hence exactly extensive: an
``n × m`` supercell has exactly ``n m`` times the cell's energy.
"""
from __future__ import annotations

from functools import lru_cache

from ase import Atoms

__all__ = ["REFERENCE_NAME", "tersoff_energy", "tersoff_calculator"]

REFERENCE_NAME = "Tersoff B/C/N, Matsunaga et al. JJAP 39, L48 (2000), via matscipy Manybody"


@lru_cache(maxsize=1)
def tersoff_calculator():
    """The (cached) matscipy calculator."""
    import warnings

    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms import TersoffBrenner
    from matscipy.calculators.manybody.explicit_forms.tersoff_brenner import (
        Matsunaga_Fisher_Matsubara_Jpn_J_Appl_Phys_39_48_B_C_N as params,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Manybody(**TersoffBrenner(params))


def tersoff_energy(atoms: Atoms) -> float:
    """Total potential energy of ``atoms`` in eV."""
    import warnings

    at = atoms.copy()
    at.calc = tersoff_calculator()
    with warnings.catch_warnings():
        # matscipy's np.power(where=...) warns about uninitialised output it then masks
        warnings.simplefilter("ignore", UserWarning)
        return float(at.get_potential_energy())
