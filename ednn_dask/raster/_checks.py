"""Is a structure a physical sheet that the sheet models can take? One set of checks for every input path.

The sheet models were trained on flat (z = 0), periodic, orthorhombic cells of
a B/C/N honeycomb with a = 2.5 Å, holes and vacancies included
(``ednn_dask/systems/sheets.py``). A structure far from that is not a question
of accuracy: one carbon atom in a cell, two atoms on top of each other or a
NaN coordinate all rasterize into *some* image and get *some* energy. This
module refuses those with one :class:`StructureError` line each and warns
(:class:`SheetWarning`) about what is a matter of degree, atoms out of the
plane. ASE ``Atoms`` (``predict``'s frames, and ``evaluate`` / ``rasterize`` on
structure files) are checked where they become the rasterizer's atoms,
:meth:`~ednn_dask.raster.AtomsArrays.from_ase`, compact ``.npz`` atoms by
:func:`~ednn_dask.systems.large.load_atoms`; both call :func:`check_sheet`. The
species a model has channels for are checked by :func:`check_species`.

Thresholds (measured with ``scripts/structure_checks.py``):

* :data:`MIN_SEPARATION`, 0.7 Å: closer than the shortest bond of any two
  elements (H₂, 0.74 Å), so a pair closer than this is an overlap (a
  duplicated atom), never a bond. The closest pair in 3000 training-like
  cells at 100–1000 K is 1.25 Å apart, in a 0.1 µm porous sheet 1.28 Å.
* :data:`BOND_CUTOFF`, 2.3 Å: the longest cutoff of the reference Tersoff
  B/C/N potential (B–N); an atom with no neighbour within it has no bond.
  When most atoms have none (median nearest-neighbour distance above it),
  the structure is isolated atoms, not a sheet.
* :data:`MAX_DENSITY`, 1.5: areal density relative to the honeycomb with
  a = 2.5 Å (0.3695 atoms/Å²). Training cells span 0.82–1.00, the make-sheet
  porous sheets 0.94; a denser "sheet" is stacked layers or overlaps seen
  in projection. There is no lower bound: ribbons, flakes and holes leave
  vacuum that the models read as empty tiles; isolated atoms are caught by
  the bond check instead.
* :data:`MAX_HEIGHT`, 0.1 Å (warning): the rasters ignore z, and the training
  cells are exactly flat. In the reference potential one atom lifted by
  0.1 Å out of a flat sheet costs 64 meV (out-of-plane stiffness 12.6 eV/Å²),
  about four times the model's typical error on a whole 60-atom cell
  (0.25 meV/atom × 60), and random z displacements of 0.1 Å rms cost
  70–80 meV/atom; none of that is in the prediction.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ..errors import EDNNError, EDNNWarning
from ._neighbours import BLOCK, BOND_CUTOFF, MIN_SEPARATION, _Strips, _strips_for, bond_lengths, closest_pair

__all__ = [
    "StructureError",
    "SheetWarning",
    "MIN_SEPARATION",
    "BOND_CUTOFF",
    "MAX_DENSITY",
    "MAX_HEIGHT",
    "check_lengths",
    "check_sheet_cell",
    "check_sheet",
    "check_species",
    "closest_pair",
    "bond_lengths",
]

#: Largest areal density, relative to the honeycomb with a = 2.5 Å.
MAX_DENSITY = 1.5
#: Largest distance (Å) of an atom from the sheet's median plane without a warning.
MAX_HEIGHT = 0.1
#: Atoms per Å² of the honeycomb with a = 2.5 Å: 2 atoms per a²√3/2.
HONEYCOMB_DENSITY = 2.0 / (2.5**2 * np.sqrt(3.0) / 2.0)


class StructureError(EDNNError, ValueError):
    """A structure that the rasterizer or a model cannot represent."""


class SheetWarning(EDNNWarning):
    """A sheet the models take, but further from their training cells than its numbers suggest."""


def _named(what: str | None, text: str) -> str:
    return f"{what}: {text}" if what else text


def _count(n: int) -> str:
    return f"{n:,} atom" + ("" if n == 1 else "s")


def check_lengths(lengths_xy: Sequence[float], what: str | None = None) -> tuple[float, float]:
    """Refuse in-plane cell lengths that are not finite and positive; return ``(L_x, L_y)`` in Å.

    ``what`` names the structure in the message (e.g. its file).
    """
    out = []
    for L, axis in zip(lengths_xy, "xy"):
        L = float(L)
        if not np.isfinite(L):
            raise StructureError(_named(what, f"cell length along {axis} is {L}"))
        if L < 0:
            raise StructureError(_named(what, f"cell length along {axis} is negative ({L:.6g} Å); "
                                              f"the cell vectors must point along +x and +y"))
        if L == 0:
            raise StructureError(_named(what, f"cell length along {axis} is zero (a sheet needs a periodic "
                                              f"in-plane cell)"))
        out.append(L)
    return out[0], out[1]


def check_sheet_cell(atoms, what: str | None = None) -> np.ndarray:
    """Refuse empty structures and cells that are not finite, periodic in x, y or orthorhombic; return the cell.

    ``atoms`` is an ASE ``Atoms``. In-plane lengths must be positive (:func:`check_lengths`); ``what``
    names the structure in the message.
    """
    if len(atoms) == 0:
        raise StructureError("structure has no atoms")
    if not (atoms.pbc[0] and atoms.pbc[1]):
        raise StructureError(f"cell must be periodic in x and y (pbc={atoms.pbc.tolist()})")
    cell = np.asarray(atoms.cell)
    if not np.isfinite(cell).all():
        raise StructureError(f"cell contains NaN or infinite values: {cell.tolist()}")
    off = [cell[0, 1], cell[0, 2], cell[1, 0], cell[1, 2], cell[2, 0], cell[2, 1]]
    if np.max(np.abs(off)) > 1e-6 * max(1.0, np.abs(cell).max()):
        raise StructureError(
            "cell is not orthorhombic (the rasterizer needs a cell with axes along x, y, z; a hexagonal cell "
            "becomes one with ase.build.make_supercell(atoms, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])); "
            f"cell = {cell.round(4).tolist()}"
        )
    check_lengths((cell[0, 0], cell[1, 1]), what)
    return cell


def check_species(numbers: np.ndarray, species: Sequence[str]) -> None:
    """Refuse atoms of an element that is not in ``species`` (the elements a model has channels for)."""
    from ase.data import chemical_symbols

    unknown = sorted({chemical_symbols[z] for z in np.unique(numbers)} - set(species))
    if unknown:
        raise StructureError(f"species {', '.join(unknown)} not known to the model (known: {', '.join(species)})")


def check_sheet(
    xy: np.ndarray,
    numbers: np.ndarray,
    lengths_xy: Sequence[float],
    z: np.ndarray | None = None,
    z_period: float | None = None,
    what: str | None = None,
) -> None:
    """Refuse what is not a physical sheet; warn when atoms leave the plane.

    Parameters
    ----------
    xy : (N, 2 or 3) float array
        Positions in Å (only x and y are read).
    numbers : (N,) int array
        Atomic numbers.
    lengths_xy : (float, float)
        Orthorhombic in-plane cell ``(L_x, L_y)`` in Å, periodic.
    z : (N,) float array, optional
        Heights in Å, where the structure has them (compact ``.npz`` atoms do not).
    z_period : float, optional
        Cell length along z in Å when the cell is periodic along z (heights are then compared modulo it).
    what : str, optional
        How the structure is named in messages (e.g. its file); callers that
        number structures add their own prefix.

    Raises
    ------
    StructureError
        No atoms, bad atomic numbers, NaN or infinite coordinates, a cell that
        is not finite and positive, more atoms than a plane holds
        (:data:`MAX_DENSITY`), atoms closer than :data:`MIN_SEPARATION`, or
        atoms without bonds (:data:`BOND_CUTOFF`).

    Warns
    -----
    SheetWarning
        Atoms more than :data:`MAX_HEIGHT` above or below the sheet's median plane.
    """
    L = np.array(check_lengths(lengths_xy, what))
    n = int(np.shape(numbers)[0])
    if n == 0:
        raise StructureError(f"{what or 'structure'} has no atoms")
    numbers = np.asarray(numbers)
    if numbers.min() < 1 or numbers.max() > 118:
        bad = numbers[(numbers < 1) | (numbers > 118)][0]
        raise StructureError(_named(what, f"atomic number {bad} is not an element"))
    _check_finite(xy, z, what)
    density = n / (L[0] * L[1]) / HONEYCOMB_DENSITY
    if density > MAX_DENSITY:
        raise StructureError(_named(
            what, f"{_count(n)} in a {L[0]:.4g} x {L[1]:.4g} Å cell is {density:.2f} times the density of a "
            f"honeycomb sheet (a = 2.5 Å); more than one layer, or overlapping atoms, cannot be one sheet"
        ))
    strips = _Strips(xy, L[1], _strips_for(MIN_SEPARATION, L[1]))  # one sort for the next two checks
    pair = closest_pair(xy, L, MIN_SEPARATION, strips)
    if pair is not None:
        i, j, d = pair
        raise StructureError(_named(
            what, f"atoms {i} and {j} are {d:.3g} Å apart (in-plane, periodic), closer than any bond "
            f"({MIN_SEPARATION} Å); remove duplicated or overlapping atoms"
        ))
    nearest, _ = bond_lengths(xy, L, strips=strips)
    if not nearest <= BOND_CUTOFF:
        far = "more than 3" if np.isinf(nearest) else f"{nearest:.3g}"
        raise StructureError(_named(
            what, f"not a bonded sheet: the median distance from an atom to its nearest neighbour is {far} Å, "
            f"beyond the {BOND_CUTOFF} Å cutoff of the reference potential ({_count(n)} in a "
            f"{L[0]:.4g} x {L[1]:.4g} Å cell)"
        ))
    if z is not None:
        height = _height(np.asarray(z, dtype=np.float64), z_period)
        if height > MAX_HEIGHT:
            warnings.warn(SheetWarning(_named(
                what, f"atoms lie up to {height:.3g} Å out of the sheet's plane; the model sees only x and y and was "
                f"trained on flat sheets, so the energy of out-of-plane displacements (64 meV for one atom lifted by "
                f"0.1 Å) is not in its prediction"
            )), stacklevel=2)


def _check_finite(xy, z, what: str | None) -> None:
    first, total = None, 0
    for i in range(0, xy.shape[0], BLOCK):
        bad = ~np.isfinite(np.asarray(xy[i : i + BLOCK, :2])).all(1)
        if z is not None:
            bad |= ~np.isfinite(np.asarray(z[i : i + BLOCK]))
        total += int(bad.sum())
        if first is None and bad.any():
            first = i + int(np.flatnonzero(bad)[0])
    if total:
        which = "x, y or z" if z is not None else "x or y"
        raise StructureError(_named(what, f"atom positions contain NaN or infinite values ({which} of "
                                          f"{_count(total)}, the first is atom {first})"))


def _height(z: np.ndarray, period: float | None) -> float:
    """Largest distance (Å) of an atom from the median plane; heights modulo ``period`` when z is periodic."""
    dz = z - z[0]
    if period:
        dz -= period * np.round(dz / period)  # a sheet straddling z = 0 of a periodic cell is still one sheet
    return float(np.abs(dz - np.median(dz)).max())

