"""A training dataset from the user's own labelled structures (``ednn-dask dataset from-structures``).

Reads every frame ASE reads (extended XYZ with ``energy``/``forces``, VASP ``OUTCAR``/``vasprun.xml``, ...),
takes each frame's energy (from the file's calculator results, from ``atoms.info[energy_key]``, or from the
package's reference potential for positions-only files such as LAMMPS dumps), checks it as a sheet the way
prediction does, rasterizes it at a model's pixel spacing and species channels (translated onto the model's
lattice origin, as prediction does), and writes the format of :mod:`ednn_dask.data.sheets`, plus
``forces`` ``(N, max_atoms, 3)`` float32 (eV/Å, NaN padding) when every frame has forces. A dataset holds
cells of one raster shape (the trainer batches whole cells).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["Labelled", "read_labelled", "write_structures_dataset", "DATASET_KIND"]

#: ``ednn_dask.kind`` of the datasets written here (``--overwrite`` replaces only those).
DATASET_KIND = "dataset"


@dataclass
class Labelled:
    """One frame: its structure, energy (eV), forces (eV/Å or None) and where it came from."""

    atoms: object
    energy: float
    forces: np.ndarray | None
    source: str


def _energy_forces(atoms, energy_key: str | None):
    from ase.calculators.calculator import PropertyNotImplementedError

    if energy_key is not None:
        value = atoms.info.get(energy_key)
        energy = None if value is None else float(value)
    else:
        try:
            energy = None if atoms.calc is None else float(atoms.get_potential_energy())
        except (PropertyNotImplementedError, RuntimeError):
            energy = None
    forces = None
    try:
        if atoms.calc is not None:
            forces = np.asarray(atoms.get_forces(), dtype=np.float64)
    except (PropertyNotImplementedError, RuntimeError):
        forces = None
    if forces is None and "forces" in atoms.arrays:
        forces = np.asarray(atoms.arrays["forces"], dtype=np.float64)
    return energy, forces


def read_labelled(paths: Sequence[str | os.PathLike], energy_key: str | None = None, label: str = "file",
                  file_format: str | None = None) -> list[Labelled]:
    """All frames of ``paths`` with their energies.

    Parameters
    ----------
    energy_key : str, optional
        Read the energy from ``atoms.info[energy_key]`` instead of the file's calculator results.
    label : {"file", "reference"}
        ``"reference"`` labels every frame with :func:`ednn_dask.reference.tersoff_energy` (and its forces),
        for files without energies (LAMMPS dumps, CIF, POSCAR).
    file_format : str, optional
        ASE format name when the file name does not tell it.

    Raises
    ------
    InputError
        A file that does not exist or ASE cannot read, or a frame without an energy.
    """
    from ase.io import read

    if label not in ("file", "reference"):
        raise InputError(f"unknown label source {label!r}; choose file or reference")
    out: list[Labelled] = []
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
        try:
            frames = read(str(p), index=":", format=file_format)
        except Exception as exc:  # ASE raises many types for unreadable files
            raise InputError(f"{p}: ASE cannot read it ({type(exc).__name__}: {exc})") from None
        for k, atoms in enumerate(frames):
            where = f"frame {k} of {p}"
            if label == "reference":
                from ..reference import tersoff_calculator

                at = atoms.copy()
                at.calc = tersoff_calculator()
                energy, forces = float(at.get_potential_energy()), np.asarray(at.get_forces())
            else:
                energy, forces = _energy_forces(atoms, energy_key)
            if energy is None:
                hint = (f"no atoms.info[{energy_key!r}]" if energy_key else
                        "no energy in the file (extxyz: an `energy=` key; or pass --energy-key KEY, or "
                        "--label reference to label with the reference potential)")
                raise InputError(f"{where}: {hint}")
            if not np.isfinite(energy):
                raise InputError(f"{where}: the energy is {energy}")
            out.append(Labelled(atoms, energy, forces, where))
    if not out:
        raise InputError("the files hold no structures")
    return out


def write_structures_dataset(frames: Sequence[Labelled], out: str | os.PathLike, spacing_yx: Sequence[float],
                             species: Sequence[str], lattice: dict | None = None, gamma: float = 0.2,
                             overwrite: bool = False, inputs: Sequence[str | os.PathLike] = (),
                             description: str = "", reference: str = "the user's labels") -> Path:
    """Check, rasterize and write ``frames`` as a dataset at ``out`` (all or nothing); return the path.

    Raises
    ------
    InputError, StructureError
        A frame that is not a sheet, has species outside ``species``, is not on ``lattice`` or not a whole
        number of pixels, or cells of more than one raster shape; nothing is written.
    """
    import zarr

    from .. import __version__
    from .._outputs import atomic_path, check_output, marker
    from ..raster import StructureError, raster_from_atoms
    from ..raster._register import registration

    path = check_output(out, DATASET_KIND, inputs=inputs, overwrite=overwrite)
    rasters, shapes = [], {}
    for fr in frames:
        try:
            r = raster_from_atoms(fr.atoms, spacing_yx, species, lattice=lattice, gamma=gamma)
        except StructureError as exc:
            raise StructureError(f"{fr.source}: {exc}") from None
        rasters.append(r)
        shapes.setdefault(r.shape[1:], []).append(fr.source)
    if len(shapes) > 1:
        listing = "; ".join(f"{ny}x{nx} px: {len(v)} frames (first: {v[0]})" for (ny, nx), v in shapes.items())
        raise InputError(f"the frames have {len(shapes)} raster shapes ({listing}); a dataset holds cells of one "
                         "size: write one dataset per cell size")
    moves = []
    for fr in frames:
        moves.append(registration(fr.atoms.positions, fr.atoms.numbers, lattice, fr.source,
                                  fr.atoms.cell.lengths()[:2]) if lattice else None)
    n, m = len(frames), max(len(fr.atoms) for fr in frames)
    with_forces = all(fr.forces is not None for fr in frames)
    arrays = {
        "rasters": np.stack(rasters).astype(np.float32),
        "energies": np.array([fr.energy for fr in frames], np.float64),
        "n_atoms": np.array([len(fr.atoms) for fr in frames], np.int32),
        "numbers": np.zeros((n, m), np.int8),
        "positions": np.full((n, m, 3), np.nan, np.float32),
        "cells": np.array([fr.atoms.cell.lengths() for fr in frames], np.float64),
        "done": np.ones(1, bool),
    }
    if with_forces:
        arrays["forces"] = np.full((n, m, 3), np.nan, np.float32)
    for i, fr in enumerate(frames):
        k = len(fr.atoms)
        arrays["numbers"][i, :k] = fr.atoms.numbers
        pos = np.asarray(fr.atoms.positions, dtype=np.float64).copy()
        if moves[i] is not None:
            pos[:, :2] = moves[i].apply(pos, fr.atoms.cell.lengths()[:2])
        arrays["positions"][i, :k] = pos
        if with_forces:
            f = np.array(fr.forces, dtype=np.float64)
            if moves[i] is not None and moves[i].mirror_y:  # the forces turn with the positions
                f[:, 1] = -f[:, 1]
            arrays["forces"][i, :k] = f
    with atomic_path(path, kind=DATASET_KIND) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        for name, arr in arrays.items():
            root.create_array(name, data=arr, chunks=arr.shape if arr.ndim < 2 else (min(n, 100),) + arr.shape[1:])
        root.attrs.update({
            **marker(DATASET_KIND),
            "kind": "structures", "n": n, "seed": None, "block": n, "sampler": "user",
            "sources": sorted({fr.source.split(" of ", 1)[-1] for fr in frames}),
            "description": description,
            "spacing": [float(h) for h in spacing_yx], "spacing_units": "Å", "gamma": gamma,
            "species": list(species), "channels": "species", "reference": reference, "units": "eV",
            "lattice": dict(lattice) if lattice else None, "forces": with_forces, "ednn_dask_version": __version__,
        })
    return path
