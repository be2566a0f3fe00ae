"""Neighbours of atoms in a periodic sheet in O(N): the closest pair, and nearest-neighbour and bond lengths.

Neither builds a neighbour list: :func:`closest_pair` compares each atom with
the few bins around it in a dense table of bins, :func:`bond_lengths` measures
a few patches of the sheet. Atoms are ordered by horizontal strips of the
cell once (:class:`_Strips`), which both can share, so the passes over a
35 M-atom sheet keep their temporaries a small multiple of the positions.
The thresholds are explained with the checks that use them
(:mod:`ednn_dask.raster._checks`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["MIN_SEPARATION", "BOND_CUTOFF", "closest_pair", "bond_lengths"]

#: Closest two atoms may be in-plane (Å).
MIN_SEPARATION = 0.7
#: Distance (Å) beyond which atoms are not bonded (the reference potential's longest cutoff).
BOND_CUTOFF = 2.3

BLOCK = 1 << 22  # atoms per block of the O(N) passes: bounded temporaries for 35 M-atom sheets


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
        for i in range(0, xy.shape[0], BLOCK):
            rows[i : i + BLOCK] = _bins(np.asarray(xy[i : i + BLOCK, 1], np.float64), length_y, self.n)
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
    nb_xy = np.ceil(L / (within / np.sqrt(2.0))).astype(np.int64)  # bins along x, y
    reach_xy = np.ceil(within / (L / nb_xy)).astype(np.int64)  # bins a close pair can be apart along x, y
    nbx, nby = int(nb_xy[0]), int(nb_xy[1])
    rx, ry = int(reach_xy[0]), int(reach_xy[1])
    if strips is None or strips.n != nby:
        strips = _Strips(xy, L[1], nby)
    band = max(1, (1 << 22) // nbx)  # rows per table
    table = np.empty((band + ry) * nbx, np.int32)
    offsets = [(dx, dy) for dy in range(ry + 1) for dx in range(-rx, rx + 1) if dy > 0 or dx > 0]
    small = bool((nb_xy <= 2 * reach_xy).any())
    for r0 in range(0, nby, band):
        r1 = min(nby, r0 + band)
        # atoms of the band's rows, then of the next ry rows (wrapping): those only as neighbours
        halo = [(r1 + k) % nby for k in range(ry)]
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
        base = {dx: by[:n_own] * nbx + (bx[:n_own] + dx) % nbx for dx in range(-rx, rx + 1)}
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
    """Median nearest-neighbour distance and median bond length (Å); see :func:`bond_geometry`."""
    nearest, bond, _ = bond_geometry(xy, lengths_xy, windows, half, reach, queries, strips)
    return nearest, bond


def _patch_bonds(xy, ids, centre, L, whole, half, reach, queries, shifts, zero):
    """Nearest distances, bond lengths and bond angles of up to ``queries`` atoms inside one patch, or None."""
    rel = np.asarray(xy[ids, :2], np.float64) - centre
    rel -= L * np.round(rel / L)
    keep = ((np.abs(rel) < half) | whole).all(1)
    ids, rel = ids[keep], rel[keep]
    interior = np.flatnonzero(((np.abs(rel) < half - reach) | whole).all(1))
    q = interior[:: max(1, -(-interior.size // queries))]
    if q.size == 0:
        return None
    cand = (rel[None, :, :] + shifts[:, None, :]).reshape(-1, 2)
    self_ = zero * rel.shape[0] + q  # each query's own entry among the candidates
    # only images within reach of the patch can be a query's neighbours
    near = np.flatnonzero((np.abs(cand) < np.where(whole, L / 2, half) + reach).all(1))
    dist = np.hypot(rel[q, :1] - cand[near, 0], rel[q, 1:] - cand[near, 1])  # (queries, candidates)
    dist[np.arange(q.size), np.searchsorted(near, self_)] = np.inf  # the query itself
    dist[dist > reach] = np.inf
    k = min(3, dist.shape[1])
    which = np.argpartition(dist, k - 1, axis=1)[:, :k]
    three_unsorted = np.take_along_axis(dist, which, 1)
    three = np.sort(three_unsorted, axis=1)
    ok = three_unsorted <= BOND_CUTOFF
    vec = cand[near][which] - rel[q][:, None, :]  # (queries, 3, 2) bond vectors
    return three[:, 0], three[three <= BOND_CUTOFF], np.arctan2(vec[..., 1], vec[..., 0])[ok]


def bond_geometry(xy: np.ndarray, lengths_xy: Sequence[float], windows: int = 4, half: float = 15.0,
                  reach: float = 3.0, queries: int = 64,
                  strips: _Strips | None = None) -> tuple[float, float, float]:
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
    rotation : float
        Angle in degrees, in (-30, 30], by which the bonds are turned from a honeycomb with its zigzag
        direction along x (bonds along ±y and ±30° from -y), from the mean of ``exp(6iθ)`` over the bond
        directions θ; ``nan`` when the bonds have no sixfold order (mean below 0.5) or there are none.
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
    nearest, bonds, angles = [], [], []
    centres = np.unique(np.linspace(0, n - 1, windows).astype(np.int64)) if not whole.all() else [0]
    for c in centres:  # one patch is the whole cell when the cell is small
        centre = np.asarray(xy[c, :2], np.float64)
        if whole[1]:
            ids = np.arange(n)
        else:  # the strips the patch covers
            first = int(np.floor((centre[1] - half) / strips.height))
            ids = strips.atoms(*np.unique(np.arange(first, first + int(2 * half / strips.height) + 2) % strips.n))
        found = _patch_bonds(xy, ids, centre, L, whole, half, reach, queries, shifts, zero)
        if found is not None:
            for acc, part in zip((nearest, bonds, angles), found):
                acc.append(part)
    if not nearest:
        return float("inf"), float("nan"), float("nan")
    near = float(np.median(np.concatenate(nearest)))
    bond = np.concatenate(bonds)
    theta = np.concatenate(angles)
    rotation = float("nan")
    if theta.size:
        m = np.exp(6j * theta).mean()
        if abs(m) >= 0.5:  # zigzag along x: bonds at 90, 210, 330 degrees, exp(6i theta) = -1
            rotation = float(np.degrees(np.angle(-m)) / 6)
    return near, float(np.median(bond)) if bond.size else float("nan"), rotation
