"""Sheet datasets: structures, rasters and reference energies in one Zarr v3 group.

On-disk format (``ednn-dask dataset sheets --out data.zarr``):

=================  ========================  =========================================
array              shape, dtype              meaning
=================  ========================  =========================================
``rasters``        (N, C, ny, nx) float32    Gaussian images, one channel per species
``energies``       (N,) float64              reference total energy, eV
``n_atoms``        (N,) int32                atoms in the structure
``numbers``        (N, max_atoms) int8       atomic numbers, 0 = padding
``positions``      (N, max_atoms, 3) float32 Cartesian positions, Å (NaN = padding)
``cells``          (N, 3) float64            orthorhombic cell lengths, Å
``done``           (N // block,) bool        finished blocks (for resuming)
=================  ========================  =========================================

Group attributes: ``kind``, ``seed``, ``block``, ``spacing`` ``[h_y, h_x]``
(Å), ``gamma`` (Å), ``species``, ``channels``, ``reference``, ``units``,
``temperature_range`` (K), ``lattice`` (the honeycomb every cell was translated onto before
rasterizing, see :mod:`ednn_dask.raster._register`), ``ednn_dask_version``.

Group attributes also record the ``sampler``: ``"md"`` (the default: snapshots of Langevin molecular dynamics
with the reference potential, :mod:`ednn_dask.systems.md`, ``frames`` per trajectory 50 fs apart, relaxed
defects and edges, random translations and mirrors; ``classes`` lists the structure classes; ``schedule``
``"uniform"`` draws each trajectory's temperature uniformly from ``temperature_range``, ``"ladder"`` cycles
through :data:`LADDER` K, for test sets) or ``"einstein"`` (independent in-plane Gaussian displacements of
an Einstein solid on the perfect lattice, :func:`~ednn_dask.systems.sheets.thermal_displacements`, the
sampler of the bundled models before MD).

Generation is split into blocks of ``block`` structures; block ``k`` is
generated from ``seed`` and ``k`` alone, so the data do not depend on the
number of workers, and an interrupted run resumes at the first unfinished
block.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from ase import Atoms

from ..errors import InputError
from ..raster import HONEYCOMB, raster_from_atoms, register_honeycomb
from ..reference import REFERENCE_NAME, tersoff_energy
from ..systems import sheets as S

__all__ = ["SHEET_SPACING", "SPECIES", "KINDS", "SAMPLERS", "MD_CLASSES", "LADDER", "sample_structure", "sample_md",
           "generate_dataset", "open_dataset"]

#: Pixel spacing (h_y, h_x) in Å of the bundled sheet models: 40 px per a√3 and 24 px per a,
#: so the 60-atom 5 × 3 cell is 120 × 120 pixels (about 9.5 px/Å).
SHEET_SPACING = (S.A_LATTICE * np.sqrt(3.0) / 40.0, S.A_LATTICE / 24.0)
SPECIES = ("B", "C", "N")
KINDS = ("hexagonal", "hexagonal-alloy", "porous-graphene")
_MAX_ATOMS = {"hexagonal": 60, "hexagonal-alloy": 60, "porous-graphene": 540}
_T_RANGE = {"hexagonal": (100.0, 1000.0), "hexagonal-alloy": (100.0, 1000.0), "porous-graphene": (1000.0, 1000.0)}
SAMPLERS = ("md", "einstein")
#: Structure classes (:data:`ednn_dask.systems.md.CLASSES`) of each kind with the MD sampler: cells of one size
#: (60 sites for the hexagonal kinds, 540 for porous graphene) at the model's lattice constant.
MD_CLASSES = {
    "hexagonal": ("graphene", "hbn", "stripes", "vacancies", "ribbon-zigzag", "ribbon-armchair"),
    "hexagonal-alloy": ("graphene", "hbn", "stripes", "vacancies", "ribbon-zigzag", "ribbon-armchair", "alloy"),
    "porous-graphene": ("porous",),
}
_MD_T_RANGE = {"hexagonal": (100.0, 1500.0), "hexagonal-alloy": (100.0, 1500.0), "porous-graphene": (300.0, 1500.0)}
#: Temperatures (K) that the ``"ladder"`` schedule cycles through, one per trajectory.
LADDER = (300.0, 700.0, 1000.0, 1500.0)
#: MD steps (1 fs) before a trajectory's first frame, and between frames.
MD_EQUILIBRATION, MD_EVERY = 150, 50


def sample_structure(kind: str, rng: np.random.Generator) -> Atoms:
    """One random structure of a dataset ``kind``.

    ``"hexagonal"`` (the paper's hexagonal set: graphene, hBN and their
    heterostructures, with and without missing atoms): the 60-atom cell as
    graphene, hBN or graphene/hBN stripes, a third of them with one or two
    vacancies, displaced at a random temperature in 100–1000 K.
    ``"hexagonal-alloy"``: as ``"hexagonal"`` but a quarter of the cells are
    graphene with 5–50 % of the atoms randomly replaced by B/N (B–B and N–N
    bonds included), a much larger chemical space than the paper's.
    ``"porous-graphene"``: a 540-site graphene cell with random holes at 1000 K.
    """
    if kind not in KINDS:
        raise InputError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    lo, hi = _T_RANGE[kind]
    T = rng.uniform(lo, hi)
    if kind == "porous-graphene":
        atoms = S.porous_graphene(rng=rng)
    else:
        atoms = S.random_hexagonal(rng, alloys=kind == "hexagonal-alloy")
    return S.thermal_displacements(atoms, T, rng)


def sample_md(kind: str, rng: np.random.Generator, temperature: float, frames: int = 4) -> list[Atoms]:
    """``frames`` MD snapshots (:func:`ednn_dask.systems.md.sample`) of a random cell of one of the kind's
    :data:`MD_CLASSES`, 50 fs apart after 150 fs at ``temperature`` K."""
    if kind not in KINDS:
        raise InputError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    from ..systems import md

    cls = md.random_class(rng, MD_CLASSES[kind])
    return md.sample(cls, rng, temperature, steps=MD_EQUILIBRATION, snapshots=frames, every=MD_EVERY)


def _structures(kind: str, sampler: str, schedule: str, frames: int, block: int, rng: np.random.Generator, k: int):
    """The ``block`` structures of block ``k``."""
    if sampler == "einstein":
        return [sample_structure(kind, rng) for _ in range(block)]
    out: list[Atoms] = []
    run = 0
    while len(out) < block:
        if schedule == "ladder":
            T = LADDER[(k * block + run) % len(LADDER)]
        else:
            T = float(rng.uniform(*_MD_T_RANGE[kind]))
        out += sample_md(kind, rng, T, frames)
        run += 1
    return out[:block]


def _block(args: tuple) -> tuple[int, dict[str, np.ndarray]]:
    kind, seed, k, block, sampler, schedule, frames = args
    rng = np.random.default_rng([seed, k])
    m = _MAX_ATOMS[kind]
    out = {
        "rasters": [],
        "energies": np.empty(block),
        "n_atoms": np.empty(block, np.int32),
        "numbers": np.zeros((block, m), np.int8),
        "positions": np.full((block, m, 3), np.nan, np.float32),
        "cells": np.empty((block, 3)),
    }
    for i, atoms in enumerate(_structures(kind, sampler, schedule, frames, block, rng, k)):
        # every cell on the lattice origin that prediction registers structures to (see raster/_register.py)
        atoms.positions = register_honeycomb(atoms.positions, atoms.numbers, atoms.cell.lengths()[:2], HONEYCOMB,
                                             "a dataset cell")
        out["rasters"].append(raster_from_atoms(atoms, SHEET_SPACING, SPECIES))
        out["energies"][i] = tersoff_energy(atoms)
        n = len(atoms)
        out["n_atoms"][i] = n
        out["numbers"][i, :n] = atoms.numbers
        out["positions"][i, :n] = atoms.positions
        out["cells"][i] = atoms.cell.lengths()
    out["rasters"] = np.stack(out["rasters"])
    return k, out


def _create(path: Path, kind: str, n: int, block: int, attrs: dict):
    """A new, empty dataset group at ``path`` with its arrays and attributes; return the group."""
    import zarr

    from .. import __version__

    sampler, schedule = attrs["sampler"], attrs.get("schedule", "uniform")
    probe = _block((kind, attrs["seed"], 0, 1, sampler, schedule, 1))[1]["rasters"]
    root = zarr.open_group(str(path), mode="w")
    m = _MAX_ATOMS[kind]
    c, ny, nx = probe.shape[1:]
    root.create_array("rasters", shape=(n, c, ny, nx), chunks=(block, c, ny, nx), dtype="float32")
    root.create_array("energies", shape=(n,), chunks=(n,), dtype="float64")
    root.create_array("n_atoms", shape=(n,), chunks=(n,), dtype="int32")
    root.create_array("numbers", shape=(n, m), chunks=(block, m), dtype="int8")
    root.create_array("positions", shape=(n, m, 3), chunks=(block, m, 3), dtype="float32")
    root.create_array("cells", shape=(n, 3), chunks=(n, 3), dtype="float64")
    root.create_array("done", shape=(n // block,), chunks=(n // block,), dtype="bool", fill_value=False)
    root.attrs.update(
        {
            **attrs,
            "spacing": list(SHEET_SPACING),
            "spacing_units": "Å",
            "gamma": 0.2,
            "species": list(SPECIES),
            "channels": "species",
            "reference": REFERENCE_NAME,
            "units": "eV",
            "temperature_range": list(_T_RANGE[kind] if sampler == "einstein" else
                                      (LADDER[0], LADDER[-1]) if schedule == "ladder" else _MD_T_RANGE[kind]),
            **({"classes": list(MD_CLASSES[kind])} if sampler == "md" else {}),
            "lattice": dict(HONEYCOMB),
            "ednn_dask_version": __version__,
        }
    )
    return root


def generate_dataset(
    path: str | os.PathLike,
    kind: str = "hexagonal",
    n: int = 20000,
    seed: int = 0,
    block: int = 100,
    workers: int | None = None,
    progress: bool = True,
    sampler: str = "md",
    schedule: str = "uniform",
    frames: int = 4,
) -> Path:
    """Create (or resume) a sheet dataset; see the module docstring for the format.

    Parameters
    ----------
    path : path
        Zarr directory. If it exists with the same ``kind``, ``n``, ``seed``
        and ``block``, unfinished blocks are generated; otherwise an error.
    workers : int, optional
        Processes (default: all cores).
    sampler, schedule, frames
        How structures are drawn (see the module docstring): ``"md"`` or ``"einstein"``; for MD the
        temperature schedule ``"uniform"`` or ``"ladder"`` and the frames per trajectory.
    """
    import zarr

    if kind not in KINDS:
        raise InputError(f"unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
    if n < 1 or n % block:
        raise InputError(f"n={n} must be a positive multiple of block={block}")
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}")
    if schedule not in ("uniform", "ladder"):
        raise InputError(f"unknown temperature schedule {schedule!r}; choose uniform or ladder")
    if frames < 1:
        raise InputError(f"frames must be at least 1, got {frames}")
    path = Path(path)
    attrs = {"kind": kind, "n": n, "seed": seed, "block": block, "sampler": sampler}
    if sampler == "md":
        attrs.update({"schedule": schedule, "frames": frames})
    if path.exists():
        root = zarr.open_group(str(path), mode="r+")
        old = {k: root.attrs.get(k, "einstein" if k == "sampler" else None) for k in attrs}
        if old != attrs:
            raise InputError(f"{path} holds a different dataset {old}; choose another --out")
    else:
        root = _create(path, kind, n, block, attrs)
    done = root["done"][:]
    todo = [k for k in range(n // block) if not done[k]]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n // block, initial=n // block - len(todo), desc=f"{kind} blocks", unit="block")
    jobs = [(kind, seed, k, block, sampler, schedule, frames) for k in todo]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for k, out in pool.map(_block, jobs):
            sl = slice(k * block, (k + 1) * block)
            for name, arr in out.items():
                root[name][sl] = arr
            root["done"][k] = True  # written last: a block is done only once its data are
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return path


def open_dataset(path: str | os.PathLike, species: Sequence[str] | None = None, atoms: bool = False) -> dict[str, Any]:
    """Load a finished dataset into memory (rasters, energies, n_atoms, attrs; with ``atoms`` also positions,
    numbers and cells).

    ``species`` keeps only those channels (e.g. ``("C",)`` for all-carbon data,
    a third of the memory); structures with other species are then refused.
    """
    import zarr

    root = zarr.open_group(str(path), mode="r")
    if not root["done"][:].all():
        raise InputError(f"{path} is incomplete; run the same `ednn-dask dataset` command again to finish it")
    attrs = dict(root.attrs)
    rasters = root["rasters"]
    if species is not None:
        missing = [s for s in species if s not in attrs["species"]]
        if missing:
            raise InputError(f"{path} has no channel for {', '.join(missing)} (has {', '.join(attrs['species'])})")
        keep = [attrs["species"].index(s) for s in species]
        dropped = [k for k in range(len(attrs["species"])) if k not in keep]
        numbers = root["numbers"][:]
        from ase.data import atomic_numbers

        if np.isin(numbers, [atomic_numbers[attrs["species"][k]] for k in dropped]).any():
            raise InputError(f"{path} contains species outside {', '.join(species)}")
        out = np.empty((rasters.shape[0], len(keep), *rasters.shape[2:]), np.float32)
        for i in range(0, rasters.shape[0], 500):  # a block at a time: never the full 3-channel array
            out[i : i + 500] = rasters[i : i + 500][:, keep]
        attrs["species"] = list(species)
    else:
        out = rasters[:]
    data = {"rasters": out, "energies": root["energies"][:], "n_atoms": root["n_atoms"][:], "attrs": attrs}
    if atoms:
        data.update({k: root[k][:] for k in ("positions", "numbers", "cells")})
    return data
