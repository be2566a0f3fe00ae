"""The reference potential evaluated by LAMMPS (``pair_style tersoff``), an independent implementation.

Used by the tests and ``scripts/lammps_reference.py`` to check :mod:`.tersoff`; needs an ``lmp`` binary
(Debian: ``apt-get install lammps``).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from .tersoff import _ELEMENTS, lammps_tersoff_file

__all__ = ["lammps_binary", "lammps_energy_forces"]


def lammps_binary() -> str | None:
    """Path of the ``lmp`` executable, or None."""
    return shutil.which("lmp") or shutil.which("lmp_serial")


def _data_file(atoms: Atoms, path: Path) -> None:
    lengths = [float(v) for v in atoms.cell.lengths()]
    if not np.allclose(atoms.cell.array, np.diag(lengths), atol=1e-12):
        raise ValueError("only orthorhombic cells are written for LAMMPS")
    types = {e: t + 1 for t, e in enumerate(_ELEMENTS)}
    pos = np.mod(atoms.positions, lengths)
    lines = ["ednn_dask reference check", "", f"{len(atoms)} atoms", f"{len(_ELEMENTS)} atom types", ""]
    lines += [f"0.0 {lengths[0]!r} xlo xhi", f"0.0 {lengths[1]!r} ylo yhi", f"0.0 {lengths[2]!r} zlo zhi", ""]
    lines += ["Masses", ""] + [f"{t} {float(atomic_masses[atomic_numbers[e]])!r}" for e, t in types.items()] + ["", "Atoms", ""]
    lines += [f"{i + 1} {types[s]} {float(x)!r} {float(y)!r} {float(z)!r}" for i, (s, (x, y, z)) in
              enumerate(zip(atoms.get_chemical_symbols(), pos))]
    path.write_text("\n".join(lines) + "\n")


def lammps_energy_forces(atoms: Atoms, lmp: str | None = None) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces ``(N, 3)`` (eV/Å) of ``atoms`` from LAMMPS with :func:`lammps_tersoff_file`."""
    lmp = lmp or lammps_binary()
    if lmp is None:
        raise FileNotFoundError("no LAMMPS executable (lmp) on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _data_file(atoms, d / "data.lmp")
        lammps_tersoff_file(d / "bcn.tersoff")
        (d / "in.lmp").write_text("\n".join([
            "units metal", "atom_style atomic", "boundary p p p", "read_data data.lmp",
            "pair_style tersoff", f"pair_coeff * * bcn.tersoff {' '.join(_ELEMENTS)}",
            "variable e equal pe", "dump f all custom 1 forces.dump id fx fy fz",
            "dump_modify f sort id format float %.17g", "thermo_style custom pe", "run 0",
            'print "EDNN_PE $(v_e:%.17g)"', ""]))
        run = subprocess.run([lmp, "-in", "in.lmp", "-log", "none", "-echo", "none"],
                             cwd=d, capture_output=True, text=True)
        out = run.stdout
        if run.returncode:
            raise RuntimeError(f"LAMMPS failed: {(run.stdout + run.stderr)[-500:]}")
        energy = None
        for line in out.splitlines():
            if line.startswith("EDNN_PE"):
                energy = float(line.split()[1])
        if energy is None:
            raise RuntimeError(f"no energy in the LAMMPS output: {out[-500:]}")
        rows = (d / "forces.dump").read_text().splitlines()
        start = rows.index(next(r for r in rows if r.startswith("ITEM: ATOMS"))) + 1
        forces = np.array([[float(v) for v in r.split()[1:4]] for r in rows[start:start + len(atoms)]])
    return energy, forces
