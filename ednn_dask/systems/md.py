"""Sheets as a user brings them: molecular-dynamics snapshots of strained, defective and edged cells.

:func:`sample` builds a cell of one :data:`CLASSES` entry, strains it, relaxes it when it has defects or
edges, runs Langevin molecular dynamics with the reference potential at a temperature, and returns
snapshots, each moved by a random in-plane translation and, with probability 1/2, mirrored in y (for hBN
this is the other orientation: N instead of B on the origin's sublattice). The dynamics is in-plane (z
fixed at 0): the 2-D raster cannot see out-of-plane motion.

=====================  ==========================================================================
class                  cell before strain
=====================  ==========================================================================
``graphene``           the 60-atom cell (5 × 3 rectangular units)
``hbn``                the same in hBN
``stripes``            graphene/hBN stripes along y, width 2–6.25 Å, random offset
``alloy``              graphene with 5–50 % of the atoms replaced by B/N (B–B and N–N bonds included)
``vacancies``          graphene, hBN or stripes with 1–3 missing atoms
``ribbon-zigzag``      graphene or hBN with a 4–6 Å vacuum gap across y: zigzag edges along x
``ribbon-armchair``    the same gap across x: armchair edges along y
``holes``              a 2 × 2 supercell (240 sites) of graphene, hBN or stripes with one hole of radius 2–4 Å
``supercell``          a 3 × 3 supercell (540 sites) of graphene, hBN or stripes: long-wavelength modes
``porous``             the 540-site porous graphene of the paper: 1–3 holes of radius 1.5–5 Å
=====================  ==========================================================================

Strains (:func:`random_strain`): uniaxial x, uniaxial y, biaxial, or pure shear (``ε_xx = -ε_yy``, the
shear of axes at 45° to the cell), magnitude uniform in ±``max_strain``; a simple shear that tilts the cell
is not drawn (rasters are orthorhombic).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from . import sheets as S

__all__ = ["CLASSES", "build", "random_strain", "strain", "relax", "run_md", "sample", "random_class"]

CLASSES = ("graphene", "hbn", "stripes", "alloy", "vacancies", "ribbon-zigzag", "ribbon-armchair", "holes",
           "supercell", "porous")
#: Classes relaxed (in-plane FIRE) before the dynamics: those with defects or edges.
_RELAXED = ("vacancies", "ribbon-zigzag", "ribbon-armchair", "holes", "porous")
STRAIN_KINDS = ("uniaxial-x", "uniaxial-y", "biaxial", "shear")


def _base(rng: np.random.Generator, n: int = 1, m: int = 1, stripes: bool = True) -> Atoms:
    """Graphene, hBN or (when ``stripes``) graphene/hBN stripes, ``n × m`` 60-atom cells."""
    kind = rng.integers(3 if stripes else 2)
    atoms = S.hexagonal_sheet(5 * n, 3 * m, species=("B", "N") if kind == 1 else ("C", "C"))
    if kind == 2:
        atoms = S.heterostructure_stripes(atoms, width=rng.uniform(2.0, 6.25), offset=rng.uniform(0, 12.5))
    return atoms


def _gap(atoms: Atoms, axis: int, width: float, rng: np.random.Generator) -> Atoms:
    """Remove a band of ``width`` Å across ``axis`` (at a random place) and atoms left with < 2 neighbours."""
    L = atoms.cell.lengths()[axis]
    start = rng.uniform(0, L)
    keep = np.mod(atoms.positions[:, axis] - start, L) >= width
    return S._prune_dangling(atoms[keep])


def build(cls: str, rng: np.random.Generator) -> Atoms:
    """An unstrained, undisplaced cell of class ``cls`` (see the module table)."""
    if cls == "graphene":
        return S.hexagonal_sheet()
    if cls == "hbn":
        return S.hexagonal_sheet(species=("B", "N"))
    if cls == "stripes":
        return S.heterostructure_stripes(S.hexagonal_sheet(), width=rng.uniform(2.0, 6.25),
                                         offset=rng.uniform(0, 12.5))
    if cls == "alloy":
        return S.substitute(S.hexagonal_sheet(), rng.uniform(0.05, 0.5), rng)
    if cls == "vacancies":
        return S.add_vacancies(_base(rng), int(rng.integers(1, 4)), rng)
    if cls == "ribbon-zigzag":
        return _gap(_base(rng, stripes=False), 1, rng.uniform(4.0, 6.0), rng)
    if cls == "ribbon-armchair":
        return _gap(_base(rng, stripes=False), 0, rng.uniform(4.0, 6.0), rng)
    if cls == "holes":
        atoms = _base(rng, 2, 2)
        L = atoms.cell.lengths()[:2]
        centre = rng.uniform(0, 1, 2) * L
        return S._prune_dangling(atoms[S.outside_disc(atoms.positions, L, centre, rng.uniform(2.0, 4.0))])
    if cls == "supercell":
        return _base(rng, 3, 3)
    if cls == "porous":
        return S.porous_graphene(rng=rng)
    raise ValueError(f"unknown structure class {cls!r}; choose from {', '.join(CLASSES)}")


def random_strain(rng: np.random.Generator, max_strain: float = 0.03) -> tuple[float, float]:
    """``(ε_xx, ε_yy)`` of a random strain kind, magnitude uniform in ``±max_strain``."""
    kind = STRAIN_KINDS[rng.integers(len(STRAIN_KINDS))]
    e = float(rng.uniform(-max_strain, max_strain))
    return {"uniaxial-x": (e, 0.0), "uniaxial-y": (0.0, e), "biaxial": (e, e), "shear": (e, -e)}[kind]


def strain(atoms: Atoms, exx: float, eyy: float) -> Atoms:
    """``atoms`` with cell and positions scaled by ``1 + ε`` along x and y."""
    out = atoms.copy()
    cell = out.cell.array.copy()
    cell[0] *= 1 + exx
    cell[1] *= 1 + eyy
    out.set_cell(cell, scale_atoms=True)
    return out


def _in_plane(atoms: Atoms, calc=None) -> Atoms:
    from ase.constraints import FixCartesian, FixCom

    from ..reference import tersoff_calculator

    out = atoms.copy()
    out.positions[:, 2] = 0.0
    out.set_constraint([FixCartesian(range(len(out)), mask=(False, False, True)), FixCom()])
    out.calc = tersoff_calculator() if calc is None else calc
    return out


def relax(atoms: Atoms, fmax: float = 0.05, steps: int = 300) -> Atoms:
    """In-plane FIRE relaxation at fixed cell with the reference potential."""
    import warnings

    from ase.optimize import FIRE

    at = _in_plane(atoms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FIRE(at, logfile=None).run(fmax=fmax, steps=steps)
    out = atoms.copy()
    out.positions = at.positions
    return out


def run_md(atoms: Atoms, temperature: float, rng: np.random.Generator, steps: int = 200, snapshots: int = 1,
           every: int = 50, timestep_fs: float = 1.0, friction_per_fs: float = 0.02, calc=None) -> list[Atoms]:
    """Langevin dynamics in-plane at ``temperature`` K: ``snapshots`` frames, after ``steps`` steps and then
    every ``every`` steps (positions wrapped, no calculator attached). ``calc``: the ASE calculator that
    drives it (default the reference potential; e.g. an :class:`ednn_dask.ase.EDNNCalculator`)."""
    import warnings

    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    at = _in_plane(atoms, calc)
    MaxwellBoltzmannDistribution(at, temperature_K=temperature, rng=rng)
    v = at.get_velocities()
    v[:, 2] = 0.0
    at.set_velocities(v)
    dyn = Langevin(at, timestep_fs * units.fs, temperature_K=temperature, friction=friction_per_fs / units.fs,
                   fixcm=False, rng=rng)
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn.run(steps)
        for k in range(snapshots):
            if k:
                dyn.run(every)
            frame = Atoms(at.numbers, positions=at.positions, cell=at.cell, pbc=True)
            frame.wrap()
            frames.append(frame)
    return frames


def _move(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """A random in-plane translation and, with probability 1/2, a mirror in y (energy unchanged)."""
    out = atoms.copy()
    L = out.cell.lengths()[:2]
    if rng.random() < 0.5:
        out.positions[:, 1] = -out.positions[:, 1]
    out.positions[:, :2] += rng.uniform(0, 1, 2) * L
    out.wrap()
    return out


def sample(cls: str, rng: np.random.Generator, temperature: float, strain_xy: Sequence[float] = (0.0, 0.0),
           steps: int = 200, snapshots: int = 1, every: int = 50) -> list[Atoms]:
    """``snapshots`` MD frames of a new random cell of class ``cls`` (see the module docstring).

    Parameters
    ----------
    temperature : float
        Langevin temperature, K.
    strain_xy : (float, float)
        ``(ε_xx, ε_yy)`` applied to the cell before relaxation and dynamics.
    steps, every : int
        Steps (1 fs) before the first frame and between frames.
    """
    atoms = build(cls, rng)
    if any(strain_xy):
        atoms = strain(atoms, *strain_xy)
    if cls in _RELAXED:
        atoms = relax(atoms)
    return [_move(f, rng) for f in run_md(atoms, temperature, rng, steps, snapshots, every)]


def random_class(rng: np.random.Generator, classes: Sequence[str] = CLASSES,
                 weights: Sequence[float] | None = None) -> str:
    """One of ``classes``, with probabilities proportional to ``weights`` (default equal)."""
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    return str(classes[rng.choice(len(classes), p=p)])
