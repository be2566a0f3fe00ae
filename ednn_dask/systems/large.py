"""Micrometre-scale sheets built with lattice index arithmetic (no neighbour search).

A 1 µm² porous graphene sheet has ~35 M atoms; building it through ASE
``Atoms`` and neighbour lists would be slow and memory hungry. Here sites of
the honeycomb lattice are numbered ``((ix * ny + iy) * 4 + s)`` over the
``nx × ny`` rectangular 4-site units (:func:`ednn_dask.systems.sheets.honeycomb_arrays`, the
site order of :func:`~ednn_dask.systems.sheets.hexagonal_sheet`), so each site's three neighbours
are known by arithmetic.

Atoms are stored compactly as ``.npz``: ``positions`` (N, 2) float64 Å,
``numbers`` (N,) int16, ``cell`` (2,) Å ``[L_x, L_y]``, plus ``kind`` and ``seed``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..raster import AtomsArrays, StructureError
from .sheets import A_LATTICE, EINSTEIN_K, K_B, honeycomb_arrays

__all__ = ["honeycomb_arrays", "porous_graphene_arrays", "save_atoms_npz", "load_atoms"]

_SQ3 = np.sqrt(3.0)
# (dx units, dy units, site) of the three neighbours of each of the 4 sites in a unit
_NEIGHBOURS = {
    0: ((0, 0, 1), (-1, 0, 1), (0, -1, 3)),
    1: ((0, 0, 0), (1, 0, 0), (0, 0, 2)),
    2: ((0, 0, 1), (0, 0, 3), (1, 0, 3)),
    3: ((0, 0, 2), (-1, 0, 2), (0, 1, 0)),
}


def _neighbour_ids(nx: int, ny: int) -> np.ndarray:
    """``(4 nx ny, 3)`` neighbour site ids, periodic."""
    ix, iy, s = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(4), indexing="ij")
    ix, iy, s = ix.ravel(), iy.ravel(), s.ravel()
    out = np.empty((ix.size, 3), np.int64)
    for site, nbs in _NEIGHBOURS.items():
        sel = s == site
        for k, (dx, dy, t) in enumerate(nbs):
            out[sel, k] = (((ix[sel] + dx) % nx) * ny + (iy[sel] + dy) % ny) * 4 + t
    return out


def porous_graphene_arrays(
    size_xy: tuple[float, float],
    seed: int = 0,
    holes_per_nm2: float = 0.171,
    radius: tuple[float, float] = (1.5, 5.0),
    temperature: float = 1000.0,
    k_spring: float | None = None,
    a: float = A_LATTICE,
) -> AtomsArrays:
    """A large porous graphene sheet.

    Parameters
    ----------
    size_xy : (float, float)
        Requested size in Å; rounded to whole 60-atom cells (``5a`` along x,
        ``3a√3`` along y).
    holes_per_nm2 : float
        Mean hole density; the default, 2.5 holes per 37.5 Å × 39.0 Å, is the
        mean of the porous-graphene training cells.
    radius : (float, float)
        Hole radii range in Å (as the training cells).
    temperature, k_spring :
        In-plane Einstein displacements, as
        :func:`ednn_dask.systems.sheets.thermal_displacements`.
    """
    rng = np.random.default_rng(seed)
    # whole 60-atom cells (5 x 3 units): the sheet is then a whole number of 40-px focus regions
    # at the bundled models' spacing
    nx = 5 * max(1, int(round(size_xy[0] / (5 * a))))
    ny = 3 * max(1, int(round(size_xy[1] / (3 * a * _SQ3))))
    Lx, Ly = nx * a, ny * a * _SQ3
    pos = honeycomb_arrays(nx, ny, a)
    keep = np.ones(pos.shape[0], bool)
    n_holes = rng.poisson(holes_per_nm2 * Lx * Ly / 100.0)
    centres = rng.uniform(0, 1, (n_holes, 2)) * [Lx, Ly]
    radii = rng.uniform(*radius, n_holes)
    span_x = int(np.ceil(radius[1] / a)) + 1
    span_y = int(np.ceil(radius[1] / (a * _SQ3))) + 1
    for start in range(0, n_holes, 20000):  # bounded memory: candidates per batch of holes
        c, r = centres[start : start + 20000], radii[start : start + 20000]
        ux = np.floor(c[:, 0] / a).astype(np.int64)[:, None] + np.arange(-span_x, span_x + 1)
        uy = np.floor(c[:, 1] / (a * _SQ3)).astype(np.int64)[:, None] + np.arange(-span_y, span_y + 1)
        ids = ((ux[:, :, None, None] % nx) * ny + (uy[:, None, :, None] % ny)) * 4 + np.arange(4)
        ids = ids.reshape(len(c), -1)
        delta = pos[ids] - c[:, None, :]
        delta -= np.array([Lx, Ly]) * np.round(delta / np.array([Lx, Ly]))
        inside = np.hypot(delta[..., 0], delta[..., 1]) <= r[:, None]
        keep[ids[inside]] = False
    nbr = _neighbour_ids(nx, ny)
    while True:  # drop atoms left with fewer than two bonds, as the training cells
        coordination = keep[nbr].sum(1)
        bad = keep & (coordination < 2)
        if not bad.any():
            break
        keep &= ~bad
    pos = pos[keep]
    kT = K_B * temperature
    k = EINSTEIN_K["C"] if k_spring is None else float(k_spring)
    pos += rng.normal(0.0, np.sqrt(kT / k), pos.shape)
    pos %= np.array([Lx, Ly])
    return AtomsArrays(pos, np.full(pos.shape[0], 6, np.int16), (Lx, Ly))


def save_atoms_npz(atoms: AtomsArrays, path: str | os.PathLike, *, overwrite: bool = True, **extra) -> Path:
    """Write atoms compactly (at a temporary name, renamed when complete: :func:`~ednn_dask._outputs.atomic_path`).

    ``overwrite=False`` refuses (:class:`~ednn_dask._outputs.OutputError`) a ``path`` that exists when the
    file is complete; ``extra`` arrays are stored beside the atoms.
    """
    from .._outputs import atomic_path

    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:  # a file object: numpy adds no ".npz" to the name
        np.savez(fh, positions=atoms.positions, numbers=atoms.numbers, cell=np.array(atoms.lengths_xy), **extra)
    return path


def load_atoms(path: str | os.PathLike, check: bool = True) -> AtomsArrays:
    """Atoms from our ``.npz`` or from any single-frame ASE-readable file, checked to be a physical sheet.

    Parameters
    ----------
    path : path
        ``.npz`` (:func:`save_atoms_npz`; positions ``(N, 2)``, or ``(N, 3)``
        whose z is checked and then dropped) or an ASE-readable file holding
        one structure (a file with more is refused without parsing them all).
    check : bool
        Run :func:`~ednn_dask.raster.check_sheet` (refuses overlapping or
        unbonded atoms, NaN, bad cells; warns about atoms out of the plane).
        Workers that reload a file the client has checked pass False.

    Raises
    ------
    StructureError
        For anything the user can fix in the file, in one line.
    """
    from .files import read_frames

    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file not found: {path}")
    if path.suffix == ".npz":
        return _load_npz(path, check)
    frame = read_frames(path, max_frames=1, takes="evaluate and rasterize take one")[0]
    return AtomsArrays.from_ase(frame, str(path), check=check)


def _load_npz(path: Path, check: bool) -> AtomsArrays:
    """:func:`load_atoms` of a ``.npz`` written by :func:`save_atoms_npz` (or in its layout)."""
    from ..raster import check_sheet
    from ..raster._checks import check_lengths

    try:
        with np.load(path, allow_pickle=False) as d:
            positions, numbers, cell = d["positions"], d["numbers"], np.asarray(d["cell"], np.float64)
    except (KeyError, ValueError, OSError, EOFError, MemoryError) as exc:
        raise StructureError(f"{path} is not an ednn-dask atoms .npz ({type(exc).__name__}: {exc})") from None
    if positions.ndim != 2 or positions.shape[1] not in (2, 3) or numbers.shape != positions.shape[:1]:
        raise StructureError(f"{path}: positions must be (N, 2) or (N, 3) and numbers (N,), got "
                             f"{positions.shape} and {numbers.shape}")
    if cell.shape not in ((2,), (3,), (3, 3)):
        raise StructureError(f"{path}: cell must hold [L_x, L_y] in Å, got shape {cell.shape}")
    lengths_xy = check_lengths(np.diag(cell) if cell.ndim == 2 else cell[:2], str(path))
    atoms = AtomsArrays(positions, numbers, lengths_xy)
    if check:
        check_sheet(atoms.positions, numbers, lengths_xy, z=positions[:, 2] if positions.shape[1] == 3 else None,
                    what=str(path))
    return atoms
