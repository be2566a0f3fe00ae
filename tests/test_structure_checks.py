"""Structures that are not physical sheets are refused in one line; atoms out of the plane warn.

Through the command line, where a user meets them (``predict``, ``evaluate`` and ``rasterize`` on
structure files), and the checks themselves (``ednn_dask/raster/_checks.py``).
"""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import graphene, make_supercell

from ednn_dask.data.sheets import sample_structure
from ednn_dask.raster import SheetWarning, StructureError, check_sheet_atoms
from ednn_dask.raster._checks import bond_lengths, closest_pair
from ednn_dask.raster import AtomsArrays
from ednn_dask.systems import sheets as S
from ednn_dask.systems.files import read_frames, xyz_frame_sizes
from ednn_dask.systems.large import load_atoms, porous_graphene_arrays, save_atoms_npz

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "predict": lambda path, out: ["predict", "hexagonal-sheet", path, "--json"],
    "evaluate": lambda path, out: ["evaluate", path, "--workers", "0", "--json"],
    "rasterize": lambda path, out: ["rasterize", path, out, "--quiet"],
}


def cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ednn_dask.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def refused(r, match, out):
    """Exit 2, nothing on stdout, one stderr line ``ednn-dask: error: ...`` containing ``match``, no output."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and len(lines) == 1 and lines[0].startswith("ednn-dask: error:"), r.stderr
    assert match in lines[0], lines[0]
    assert not out.exists()


def _sheet():
    return S.hexagonal_sheet()


def _one_atom():
    return _sheet()[:1]


def _duplicated():
    g = _sheet()
    return g + g[7:8]


def _nan_z():
    g = _sheet()
    g.positions[3, 2] = np.nan
    return g


def _lifted():
    g = _sheet()
    g.positions[3, 2] = 3.0
    return g


def _negative_cell():
    g = _sheet()
    g.set_cell(np.diag([-12.5, 12.990381, 20.0]), scale_atoms=False)
    return g


def _graphene_246():
    """Graphene at its real lattice constant, in an orthogonal cell (6 x 3 rectangular units)."""
    return make_supercell(graphene(a=2.46, vacuum=10.0), [[1, 0, 0], [1, 2, 0], [0, 0, 1]]).repeat((6, 3, 1))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    "make,match",
    [
        (_one_atom, "not a bonded sheet"),
        (_duplicated, "atoms 7 and 60 are 0 Å apart"),
        (_nan_z, "NaN"),
        (_negative_cell, "cell length along x is negative (-12.5 Å)"),
        (_graphene_246, "bonds are 1.420 Å long (a = 2.460 Å): scale the cell and positions by 2.5/2.460"),
    ],
    ids=["one-atom", "duplicated", "nan-z", "negative-cell", "graphene-2.46"],
)
def test_unphysical_structures_are_refused_in_one_line(tmp_path, command, make, match):
    ase.io.write(tmp_path / "s.extxyz", make())
    out = tmp_path / "out.zarr"
    refused(cli(*COMMANDS[command](tmp_path / "s.extxyz", out)), match, out)


@pytest.mark.parametrize("command", ["evaluate", "rasterize"])
def test_multi_frame_file_is_refused_by_single_structure_commands(tmp_path, command):
    ase.io.write(tmp_path / "two.extxyz", [_sheet(), S.supercell(_sheet(), 2, 1)])
    out = tmp_path / "out.zarr"
    r = cli(*COMMANDS[command](tmp_path / "two.extxyz", out))
    refused(r, "two.extxyz holds 2 structures; evaluate and rasterize take one", out)


@pytest.mark.parametrize("command", COMMANDS)
def test_extxyz_header_claiming_too_many_atoms_fails_fast(tmp_path, command):
    (tmp_path / "huge.extxyz").write_text(
        '999999999999\nLattice="12.5 0 0 0 13 0 0 0 20" Properties=species:S:1:pos:R:3 pbc="T T T"\nC 0 0 0\n')
    out = tmp_path / "out.zarr"
    r = cli(*COMMANDS[command](tmp_path / "huge.extxyz", out), timeout=60)  # ASE alone: hours
    refused(r, "header claims 999,999,999,999 atoms, but only", out)


@pytest.mark.parametrize("command", COMMANDS)
def test_atoms_out_of_the_plane_warn_in_one_line(tmp_path, command):
    ase.io.write(tmp_path / "lifted.extxyz", _lifted())
    out = tmp_path / "out.zarr"
    r = cli(*COMMANDS[command](tmp_path / "lifted.extxyz", out))
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("ednn-dask: warning:")]
    assert len(warned) == 1 and "atoms lie up to 3 Å out of the sheet's plane" in warned[0], r.stderr
    assert "Warning" not in r.stderr  # no Python warning lines (file:line: SheetWarning ...)
    if command == "rasterize":
        assert out.exists()
    else:
        assert np.isfinite(json.loads(r.stdout)["energies" if command == "predict" else "total"]).all()


def test_closest_pair_against_all_pairs():
    rng = np.random.default_rng(0)
    for _ in range(400):
        L = rng.uniform(1.5, 9.0, 2)
        xy = rng.uniform(-1, 2, (int(rng.integers(2, 60)), 2)) * L  # outside the cell too: wrapped
        within = rng.uniform(0.2, min(1.4, L.min() / 2))
        d = xy[:, None] - xy[None]
        d -= L * np.round(d / L)
        dist = np.hypot(d[..., 0], d[..., 1]) + np.diag(np.full(len(xy), np.inf))
        got = closest_pair(xy, L, within)
        assert (got is not None) == (dist.min() < within)
        if got is not None:
            assert got[2] < within and got[2] == pytest.approx(dist[got[0], got[1]], abs=1e-12)


def test_bond_lengths_give_the_lattice_constant():
    rng = np.random.default_rng(1)
    for a in (2.46, 2.5, 2.6):
        for atoms in (S.hexagonal_sheet(5, 3, a=a), S.thermal_displacements(S.hexagonal_sheet(16, 9, a=a), 1000, rng)):
            nearest, bond = bond_lengths(atoms.positions, atoms.cell.lengths()[:2])
            assert np.sqrt(3) * bond == pytest.approx(a, rel=5e-3)
            assert nearest <= bond + 1e-9


def test_training_like_cells_and_make_sheet_sheets_pass_silently(tmp_path):
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kind in ("hexagonal", "hexagonal-alloy", "porous-graphene"):
            for _ in range(20):
                check_sheet_atoms(sample_structure(kind, rng))
        load_atoms(save_atoms_npz(porous_graphene_arrays((100.0, 100.0), seed=2), tmp_path / "s.npz"))


def test_npz_atoms_are_checked(tmp_path):
    sheet = porous_graphene_arrays((40.0, 40.0), seed=1)
    pos, numbers, L = sheet.positions, sheet.numbers, sheet.lengths_xy
    dup = save_atoms_npz(AtomsArrays(np.vstack([pos, pos[:1]]), np.append(numbers, 6), L), tmp_path / "dup.npz")
    with pytest.raises(StructureError, match="dup.npz: atoms 0 and .* apart"):
        load_atoms(dup)
    np.savez(tmp_path / "neg.npz", positions=pos, numbers=numbers, cell=np.array([-L[0], L[1]]))
    with pytest.raises(StructureError, match=r"cell length along x is negative"):
        load_atoms(tmp_path / "neg.npz")
    z = np.zeros(len(pos))
    z[5] = 1.0
    np.savez(tmp_path / "z.npz", positions=np.column_stack([pos, z]), numbers=numbers, cell=np.array(L))
    with pytest.warns(SheetWarning, match="up to 1 Å out of the sheet's plane"):
        assert load_atoms(tmp_path / "z.npz").positions.shape == (len(pos), 2)


def test_xyz_headers_are_read_with_bounds(tmp_path):
    frames = [_sheet(), S.supercell(_sheet(), 2, 1), _sheet()]
    ase.io.write(tmp_path / "three.extxyz", frames)
    assert xyz_frame_sizes(tmp_path / "three.extxyz") == [60, 120, 60]
    text = (tmp_path / "three.extxyz").read_text().splitlines(keepends=True)
    (tmp_path / "cut.extxyz").write_text("".join(text[:-30]))
    with pytest.raises(StructureError, match="frame 2 header claims 60 atoms, but the file ends after 30 atom lines"):
        read_frames(tmp_path / "cut.extxyz")
    # other formats: more frames than wanted are found without reading them all
    ase.io.write(tmp_path / "two.traj", frames[:2])
    with pytest.raises(StructureError, match="two.traj holds 2 or more structures"):
        read_frames(tmp_path / "two.traj", max_frames=1)
    assert len(read_frames(tmp_path / "two.traj")) == 2


def test_unbonded_but_dense_enough_lattice_is_refused():
    """One atom in the smallest rectangular cell: a lattice of atoms 2.5 Å apart, none bonded."""
    with pytest.raises(StructureError, match="not a bonded sheet: .* 2.5 Å"):
        check_sheet_atoms(Atoms("C", positions=[[0, 0, 0]], cell=[2.5, 2.5 * np.sqrt(3), 20.0], pbc=True))
