"""Is a structure a physical sheet that the sheet models can take? One set of checks for every input path.

The sheet models were trained on flat (z = 0), periodic, orthorhombic cells of
a B/C/N honeycomb with a = 2.5 Å, holes and vacancies included
(``ednn_dask/systems/sheets.py``). A structure far from that is not a question
of accuracy: one carbon atom in a cell, two atoms on top of each other or a
NaN coordinate all rasterize into *some* image and get *some* energy. This
module refuses those with one :class:`StructureError` line each and warns
(:class:`SheetWarning`) about what is a matter of degree, atoms out of the
plane. ``predict`` (ASE frames, through :func:`~ednn_dask.raster.grid_for_atoms`)
and ``evaluate`` / ``rasterize`` on files (through
:func:`~ednn_dask.systems.large.load_atoms`) all call :func:`check_sheet`.

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

The lattice constant in messages is the median bond length × √3
(:func:`bond_lengths`); it is named when it differs from the model's by more
than :data:`LATTICE_RTOL`, 1 %: thermal noise scatters the estimate of a
60-atom cell at 1000 K by up to 0.8 %, and 2.46 Å (graphene's) is 1.6 % off.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

from ._gaussian import RasterGrid
from ..errors import EDNNError, EDNNWarning

__all__ = [
    "StructureError",
    "SheetWarning",
    "MIN_SEPARATION",
    "BOND_CUTOFF",
    "MAX_DENSITY",
    "MAX_HEIGHT",
    "check_lengths",
    "check_sheet",
    "closest_pair",
    "bond_lengths",
    "sheet_grid",
    "lattice_hint",
]

#: Closest two atoms may be in-plane (Å).
MIN_SEPARATION = 0.7
#: Distance (Å) beyond which atoms are not bonded (the reference potential's longest cutoff).
BOND_CUTOFF = 2.3
#: Largest areal density, relative to the honeycomb with a = 2.5 Å.
MAX_DENSITY = 1.5
#: Largest distance (Å) of an atom from the sheet's median plane without a warning.
MAX_HEIGHT = 0.1
#: Atoms per Å² of the honeycomb with a = 2.5 Å: 2 atoms per a²√3/2.
HONEYCOMB_DENSITY = 2.0 / (2.5**2 * np.sqrt(3.0) / 2.0)
#: Relative difference of lattice constants reported as "another lattice constant".
LATTICE_RTOL = 0.01

_BLOCK = 1 << 22  # atoms per block of the O(N) passes: bounded temporaries for 35 M-atom sheets


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
    for i in range(0, xy.shape[0], _BLOCK):
        bad = ~np.isfinite(np.asarray(xy[i : i + _BLOCK, :2])).all(1)
        if z is not None:
            bad |= ~np.isfinite(np.asarray(z[i : i + _BLOCK]))
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


def _bins(p: np.ndarray, length: float, n: int) -> np.ndarray:
    """Indices (int32) of ``n`` equal bins over a periodic ``length`` (Å) of the coordinates ``p``, wrapped."""
    f = p * (n / length)
    b = f.astype(np.int32)  # floor for the coordinates inside the cell, the fast common case
    out = np.flatnonzero((f < 0) | (b >= n))
    if out.size:
        b[out] = np.minimum(np.floor(np.mod(p[out] / length, 1.0) * n), n - 1)
    return b


class _Strips:
    """Atoms ordered by ``n`` horizontal strips of the cell: ``atoms(r)`` are those with y in strip ``r``.

    One radix sort of 16-bit strip indices (sheets up to ~3 µm; a merge sort
    beyond), shared by :func:`closest_pair` and :func:`bond_lengths`.
    """

    def __init__(self, xy: np.ndarray, length_y: float, n: int):
        self.n, self.height = int(n), float(length_y) / int(n)
        rows = np.empty(xy.shape[0], np.uint16 if n < 2**16 else np.int32)
        for i in range(0, xy.shape[0], _BLOCK):
            rows[i : i + _BLOCK] = _bins(np.asarray(xy[i : i + _BLOCK, 1], np.float64), length_y, self.n)
        self.order = np.argsort(rows, kind="stable")
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.n))])

    def count(self, r: int) -> int:
        return int(self.starts[r + 1] - self.starts[r])

    def atoms(self, *rows: int) -> np.ndarray:
        """Indices of the atoms in strips ``rows``, strip by strip."""
        return np.concatenate([self.order[self.starts[r] : self.starts[r + 1]] for r in rows] or [np.zeros(0, int)])

    def span(self, r0: int, r1: int) -> np.ndarray:
        """Indices of the atoms in strips ``r0`` to ``r1 - 1``."""
        return self.order[self.starts[r0] : self.starts[r1]]


def _strips_for(within: float, length_y: float) -> int:
    """Strips (= bin rows of :func:`closest_pair`) at most ``within / √2`` high."""
    return int(np.ceil(length_y / (within / np.sqrt(2.0))))


def closest_pair(xy: np.ndarray, lengths_xy: Sequence[float], within: float,
                 strips: _Strips | None = None) -> tuple[int, int, float] | None:
    """A pair of atoms closer than ``within`` Å in-plane (minimum image), or None; O(N), no neighbour lists.

    The cell is divided into a whole number of bins per axis (so that they
    wrap periodically), at most ``within / √2`` wide: two atoms in one bin
    are always too close, so a sheet without overlaps has at most one atom
    per bin, and a dense table of bins gives each atom's few neighbours by
    index arithmetic. Atoms are ordered by bin row (a radix sort of 16-bit
    rows for sheets up to ~3 µm), and the table covers a band of rows at a
    time (a few MB), so memory stays a small multiple of the positions even
    for 35 M atoms. Each atom is compared with the bins after it up to
    ``within`` away (half of the neighbourhood: the other half compares with it).

    Parameters
    ----------
    xy : (N, 2 or 3) float array
        Positions in Å.
    lengths_xy : (float, float)
        Periodic in-plane cell in Å.
    within : float
        Distance in Å.
    strips : _Strips, optional
        The atoms already ordered by bin rows (``_Strips(xy, L_y, _strips_for(within, L_y))``).

    Returns
    -------
    (i, j, d) or None
        Indices of a close pair (``i < j``) and their distance in Å.
    """
    L = np.asarray(lengths_xy, dtype=np.float64)
    n = xy.shape[0]
    if n < 2:
        return None
    nb = np.ceil(L / (within / np.sqrt(2.0))).astype(np.int64)  # bins along x, y
    reach = np.ceil(within / (L / nb)).astype(np.int64)  # bins a close pair can be apart along x, y
    nbx, nby = int(nb[0]), int(nb[1])
    if strips is None or strips.n != nby:
        strips = _Strips(xy, L[1], nby)
    band = max(1, (1 << 22) // nbx)  # rows per table
    table = np.empty((band + int(reach[1])) * nbx, np.int32)
    offsets = [(dx, dy) for dy in range(int(reach[1]) + 1) for dx in range(-int(reach[0]), int(reach[0]) + 1)
               if dy > 0 or dx > 0]
    small = bool((nb <= 2 * reach).any())
    for r0 in range(0, nby, band):
        r1 = min(nby, r0 + band)
        # atoms of the band's rows, then of the next reach[1] rows (wrapping): those only as neighbours
        halo = [(r1 + k) % nby for k in range(int(reach[1]))]
        ids = np.concatenate([strips.span(r0, r1), strips.atoms(*halo)])
        n_own = int(strips.starts[r1] - strips.starts[r0])
        if n_own == 0:
            continue
        p = np.asarray(xy[ids, :2], np.float64)
        bx, by = _bins(p[:, 0], L[0], nbx), _bins(p[:, 1], L[1], nby) - r0
        by[n_own:] = np.repeat(np.arange(len(halo), dtype=np.int32) + (r1 - r0), [strips.count(r) for r in halo])
        cell = by * nbx + bx
        table.fill(-1)
        local = np.arange(ids.size, dtype=np.int32)
        table[cell] = local
        shared = np.flatnonzero(table[cell] != local)  # a second atom in a bin: too close
        if shared.size:
            a = shared[:1]
            return _pair(xy, ids, a, table[cell[a]], L, within)
        # table index of the bin dx along, wrapped; a step dy up is the same index in the table from row dy
        base = {dx: by[:n_own] * nbx + (bx[:n_own] + dx) % nbx for dx in range(-int(reach[0]), int(reach[0]) + 1)}
        for dx, dy in offsets:
            other = np.take(table[dy * nbx :], base[dx])
            a = np.flatnonzero(other >= 0)
            b = other[a]
            if small:  # a bin is its own neighbour when the cell is a few bins wide
                keep = ids[a] != ids[b]
                a, b = a[keep], b[keep]
            d = p[a] - p[b]
            d -= L * np.round(d / L)
            close = np.flatnonzero((d * d).sum(1) < within * within)
            if close.size:
                return _pair(xy, ids, a[close], b[close], L, within)
    return None


def _pair(xy, ids, a, b, L, within) -> tuple[int, int, float]:
    """The closest of the candidate pairs ``(ids[a], ids[b])``: ``(i, j, d)`` with ``i < j``, d in Å."""
    i, j = ids[a], ids[b]
    d = np.asarray(xy[i, :2], np.float64) - np.asarray(xy[j, :2], np.float64)
    d -= L * np.round(d / L)
    r = np.sqrt((d * d).sum(1))
    k = int(np.argmin(r))
    return int(min(i[k], j[k])), int(max(i[k], j[k])), float(r[k])


def bond_lengths(xy: np.ndarray, lengths_xy: Sequence[float], windows: int = 4, half: float = 15.0,
                 reach: float = 3.0, queries: int = 64, strips: _Strips | None = None) -> tuple[float, float]:
    """Median nearest-neighbour distance and median bond length of a sheet, in Å, from a few patches.

    Each of ``windows`` square patches of ``2 half`` Å around evenly spaced
    atoms (the whole cell, with periodic images, along an axis shorter than
    that) gives up to ``queries`` atoms at least ``reach`` Å inside it; each
    query's three nearest neighbours within ``reach`` are measured against
    all atoms of the patch. A patch's atoms come from the strips of the cell
    it covers (``strips``, built here when not given), so the cost is a few
    thousand distances per patch, whatever the size of the sheet.

    Returns
    -------
    nearest : float
        Median distance to the nearest neighbour (``inf`` when most atoms have
        none within ``reach``).
    bond : float
        Median of the three nearest distances that are within
        :data:`BOND_CUTOFF` (``nan`` when none is): the bond length, ``a / √3``
        for a honeycomb. The median of the nearest distance alone is biased
        short by thermal noise (1.412 Å for a = 2.5 Å at 1000 K).
    """
    L = np.asarray(lengths_xy, dtype=np.float64)
    n = xy.shape[0]
    whole = L <= 2 * half
    if strips is None and not whole[1]:
        strips = _Strips(xy, L[1], _strips_for(MIN_SEPARATION, L[1]))
    images = [np.arange(-k, k + 1) * length if w else np.zeros(1)
              for k, w, length in zip(np.ceil(reach / L).astype(int), whole, L)]
    shifts = np.stack(np.meshgrid(images[0], images[1], indexing="ij"), -1).reshape(-1, 2)
    zero = int(np.flatnonzero((shifts == 0).all(1))[0])
    nearest, bonds = [], []
    centres = np.unique(np.linspace(0, n - 1, windows).astype(np.int64)) if not whole.all() else [0]
    for c in centres:  # one patch is the whole cell when the cell is small
        centre = np.asarray(xy[c, :2], np.float64)
        if whole[1]:
            ids = np.arange(n)
        else:  # the strips the patch covers
            first = int(np.floor((centre[1] - half) / strips.height))
            ids = strips.atoms(*np.unique(np.arange(first, first + int(2 * half / strips.height) + 2) % strips.n))
        rel = np.asarray(xy[ids, :2], np.float64) - centre
        rel -= L * np.round(rel / L)
        keep = ((np.abs(rel) < half) | whole).all(1)
        ids, rel = ids[keep], rel[keep]
        interior = np.flatnonzero(((np.abs(rel) < half - reach) | whole).all(1))
        q = interior[:: max(1, -(-interior.size // queries))]
        if q.size == 0:
            continue
        cand = (rel[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
        self_ = zero * rel.shape[0] + q  # each query's own entry among the candidates
        # only images within reach of the patch can be a query's neighbours
        near = np.flatnonzero((np.abs(cand) < np.where(whole, L / 2, half) + reach).all(1))
        dist = np.hypot(rel[q, :1] - cand[near, 0], rel[q, 1:] - cand[near, 1])  # (queries, candidates)
        dist[np.arange(q.size), np.searchsorted(near, self_)] = np.inf  # the query itself
        dist[dist > reach] = np.inf
        k = min(3, dist.shape[1])
        three = np.sort(np.partition(dist, k - 1, axis=1)[:, :k], axis=1)
        nearest.append(three[:, 0])
        bonds.append(three[three <= BOND_CUTOFF])
    if not nearest:
        return float("inf"), float("nan")
    near = float(np.median(np.concatenate(nearest)))
    bond = np.concatenate(bonds)
    return near, float(np.median(bond)) if bond.size else float("nan")


def lattice_hint(xy: np.ndarray, lengths_xy: Sequence[float], lattice: dict, lead: bool = True) -> str:
    """Words on the sheet's own lattice constant when it differs from ``lattice["a"]``; "" otherwise.

    ``lead`` starts them with the model's own lattice constant (for messages that do not name it).
    """
    if lattice.get("kind") != "honeycomb":
        return ""
    a = float(lattice["a"])
    _, bond = bond_lengths(xy, lengths_xy)
    if not np.isfinite(bond):
        return ""
    have = bond * np.sqrt(3.0)
    if abs(have / a - 1) <= LATTICE_RTOL:
        return ""
    return ((f"the model was trained on a honeycomb with a = {a:g} Å, and " if lead else "")
            + f"this sheet's bonds are {bond:.3f} Å long (a = {have:.3f} Å): scale the cell and positions by "
            f"{a:g}/{have:.3f} = {a / have:.4f} (energies at another lattice constant are outside what the model "
            f"learned)")


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
