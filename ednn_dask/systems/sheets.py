"""Hexagonal 2-D sheets (graphene, hBN, heterostructures, porous graphene) as ASE ``Atoms``.

All sheets are planar (z = 0), periodic in x and y, with an orthorhombic
cell built from the rectangular 4-atom unit of the honeycomb lattice
(``a × a√3``, bond length ``a/√3``). The paper's 60-atom cell is 5 × 3 such
units: 12.5 Å × 12.99 Å for ``a = 2.5`` Å.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

__all__ = [
    "A_LATTICE",
    "VACUUM",
    "hexagonal_sheet",
    "supercell",
    "add_vacancies",
    "substitute",
    "heterostructure_stripes",
    "random_hexagonal",
    "porous_graphene",
    "outside_disc",
    "thermal_displacements",
    "EINSTEIN_K",
    "K_B",
    "honeycomb_arrays",
]

#: Lattice constant of the hexagonal cells, in Å (paper: 2.5 Å for graphene and hBN alike).
A_LATTICE = 2.5
#: In-plane Einstein spring constants in eV/Å²: the curvature of the Tersoff B/C/N energy when one
#: atom of the pristine sheet moves in-plane with all others fixed (C in graphene, B and N in hBN;
#: measured with 0.01–0.02 Å finite differences, re-measured in ``tests/test_sheets.py``). With these
#: the mean potential energy per atom at temperature T is close to equipartition, kT.
EINSTEIN_K = {"C": 137.0, "B": 91.0, "N": 74.5}
#: Cell height along z, in Å; sheets are planar so this only needs to exceed the potential's cutoff.
VACUUM = 20.0
#: Boltzmann constant in eV/K.
K_B = 8.617333262e-5


def honeycomb_arrays(nx: int, ny: int, a: float = A_LATTICE) -> np.ndarray:
    """Positions ``(4 nx ny, 2)`` (Å) of the honeycomb sites of ``nx × ny`` rectangular units, in site order.

    Site ``(ix * ny + iy) * 4 + s`` is site ``s`` of unit ``(ix, iy)``; sites 0 and 2 are sublattice A,
    1 and 3 sublattice B.
    """
    d = a / np.sqrt(3.0)  # bond length
    unit = np.array([[0.0, 0.0], [a / 2, d / 2], [a / 2, 1.5 * d], [0.0, 2 * d]])
    ix = np.arange(nx, dtype=np.float64)[:, None, None]
    iy = np.arange(ny, dtype=np.float64)[None, :, None]
    x, y = np.broadcast_arrays(ix * a + unit[:, 0], iy * a * np.sqrt(3.0) + unit[:, 1])
    return np.column_stack([x.ravel(), y.ravel()])


def hexagonal_sheet(nx: int = 5, ny: int = 3, a: float = A_LATTICE, species=("C", "C")) -> Atoms:
    """A planar honeycomb sheet of ``nx × ny`` rectangular 4-atom units.

    Parameters
    ----------
    nx, ny : int
        Units along x (``a`` each) and y (``a√3`` each).
    a : float
        Lattice constant in Å.
    species : (str, str)
        Elements of the two sublattices: ``("C", "C")`` graphene,
        ``("B", "N")`` hexagonal boron nitride.

    Returns
    -------
    ase.Atoms
        ``4 nx ny`` atoms, periodic in x and y, z = 0.
    """
    xy = honeycomb_arrays(nx, ny, a)
    sub = [0, 1, 0, 1]  # A, B, A, B sublattices of the rectangular unit
    symbols = [species[s] for _ in range(nx * ny) for s in sub]
    pos = np.column_stack([xy, np.zeros(len(xy))])
    return Atoms(symbols, positions=pos, cell=[nx * a, ny * a * np.sqrt(3.0), VACUUM], pbc=[True, True, True])


def supercell(atoms: Atoms, n: int, m: int) -> Atoms:
    """``n × m`` in-plane repetition of a sheet."""
    return atoms.repeat((n, m, 1))


def add_vacancies(atoms: Atoms, count: int, rng: np.random.Generator) -> Atoms:
    """Remove ``count`` randomly chosen atoms."""
    if count >= len(atoms):
        raise ValueError(f"cannot remove {count} of {len(atoms)} atoms")
    keep = np.ones(len(atoms), bool)
    keep[rng.choice(len(atoms), size=count, replace=False)] = False
    return atoms[keep]


def substitute(atoms: Atoms, fraction: float, rng: np.random.Generator, pair=("B", "N")) -> Atoms:
    """Replace a random ``fraction`` of C atoms by B on one sublattice and N on the other.

    Sublattice membership is taken from the site order of
    :func:`hexagonal_sheet` (alternating A, B), so call this before removing atoms.
    """
    out = atoms.copy()
    symbols = np.array(out.get_chemical_symbols())
    carbon = np.flatnonzero(symbols == "C")
    chosen = rng.choice(carbon, size=int(round(fraction * carbon.size)), replace=False)
    symbols[chosen] = np.where(chosen % 2 == 0, pair[0], pair[1])
    out.set_chemical_symbols(symbols.tolist())
    return out


def heterostructure_stripes(atoms: Atoms, width: float, offset: float = 0.0, pair=("B", "N")) -> Atoms:
    """Graphene/hBN stripes along y: atoms with ``(x - offset) mod 2w < w`` become hBN.

    Parameters
    ----------
    width : float
        Stripe width in Å; a period is two stripes.
    """
    out = atoms.copy()
    x = out.positions[:, 0]
    in_bn = np.mod(x - offset, 2 * width) < width
    symbols = np.array(out.get_chemical_symbols())
    idx = np.arange(len(out))
    symbols[in_bn] = np.where(idx[in_bn] % 2 == 0, pair[0], pair[1])
    out.set_chemical_symbols(symbols.tolist())
    return out


def random_hexagonal(
    rng: np.random.Generator,
    n: int = 1,
    m: int = 1,
    alloys: bool = False,
    stripe_width: tuple[float, float] = (2.0, 6.25),
    max_vacancies: int = 2,
) -> Atoms:
    """A random undisplaced ``n × m`` supercell of the 60-atom cell from the paper's hexagonal set.

    Equally likely: graphene, hBN, graphene/hBN stripes (width uniform in
    ``stripe_width`` Å, random offset) and, with ``alloys``, graphene with
    5–50 % of the atoms replaced by B/N. A third of the cells then lose 1 to
    ``max_vacancies`` atoms. Used for the datasets and for the unseen
    supercells of the transfer test, so both draw from one definition.
    """
    flavour = rng.integers(4 if alloys else 3)
    atoms = hexagonal_sheet(species=("B", "N") if flavour == 1 else ("C", "C"))
    if (n, m) != (1, 1):
        atoms = supercell(atoms, n, m)
    if flavour == 2:
        atoms = heterostructure_stripes(atoms, width=rng.uniform(*stripe_width), offset=rng.uniform(0, 12.5))
    elif flavour == 3:
        atoms = substitute(atoms, rng.uniform(0.05, 0.5), rng)
    if rng.random() < 1 / 3:
        atoms = add_vacancies(atoms, int(rng.integers(1, max_vacancies + 1)), rng)
    return atoms


def porous_graphene(
    nx: int = 15,
    ny: int = 9,
    n_holes: tuple[int, int] = (1, 4),
    radius: tuple[float, float] = (1.5, 5.0),
    rng: np.random.Generator | None = None,
) -> Atoms:
    """Graphene with random circular holes of random radius (paper §3.2.2).

    The default 15 × 9 cell is 37.5 Å × 39.0 Å (540 atoms before holes), close
    to the paper's ~35 Å cell and an integer number of pixels at the bundled
    models' spacing. Atoms left with fewer than two neighbours are removed.

    Parameters
    ----------
    n_holes : (int, int)
        Inclusive range of the number of holes.
    radius : (float, float)
        Range of hole radii in Å.
    """
    rng = rng or np.random.default_rng()
    atoms = hexagonal_sheet(nx, ny)
    L = atoms.cell.lengths()[:2]
    keep = np.ones(len(atoms), bool)
    for _ in range(int(rng.integers(n_holes[0], n_holes[1] + 1))):
        centre = rng.uniform(0, 1, 2) * L
        keep &= outside_disc(atoms.positions, L, centre, rng.uniform(*radius))
    atoms = atoms[keep]
    return _prune_dangling(atoms)


def outside_disc(positions: np.ndarray, lengths_xy, centre, radius: float) -> np.ndarray:
    """Mask of the atoms farther than ``radius`` Å from ``centre`` (x, y), with periodic images."""
    L = np.asarray(lengths_xy, dtype=np.float64)[:2]
    delta = np.asarray(positions)[:, :2] - np.asarray(centre)
    delta -= L * np.round(delta / L)
    return np.hypot(delta[:, 0], delta[:, 1]) > radius


def _prune_dangling(atoms: Atoms, bond: float = 1.7) -> Atoms:
    """Iteratively drop atoms with fewer than two neighbours within ``bond`` Å."""
    from ase.neighborlist import neighbor_list

    while len(atoms):
        i = neighbor_list("i", atoms, bond)
        coordination = np.bincount(i, minlength=len(atoms))
        bad = coordination < 2
        if not bad.any():
            break
        atoms = atoms[~bad]
    return atoms


def thermal_displacements(
    atoms: Atoms, temperature: float, rng: np.random.Generator, k_spring: float | None = None
) -> Atoms:
    """In-plane Gaussian displacements of an Einstein solid at ``temperature``.

    Each atom moves by ``N(0, kT / k)`` along x and y (z stays 0: the 2-D
    raster cannot see out-of-plane motion).

    Parameters
    ----------
    k_spring : float, optional
        Einstein spring constant in eV/Å² for every atom. By default each
        atom uses :data:`EINSTEIN_K` of its species, the potential's own
        single-atom curvature, so the sampled potential energy per atom is
        ≈ kT (0.086 eV at 1000 K; rms displacement 0.035 Å for C). A softer
        spring is unphysical: 25 eV/Å² gives 0.45 eV/atom at 1000 K.
    """
    kT = K_B * temperature
    if k_spring is None:
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(EINSTEIN_K))
        if unknown:
            raise ValueError(f"no Einstein spring constant for {', '.join(unknown)}; pass k_spring")
        k = np.array([EINSTEIN_K[s] for s in symbols])[:, None]
    else:
        k = float(k_spring)
    out = atoms.copy()
    out.positions[:, :2] += rng.normal(0.0, 1.0, (len(out), 2)) * np.sqrt(kT / k)
    out.wrap()
    return out
