"""Large sheets: lattice-arithmetic builder, compact atoms, chunked Zarr rasterization."""
import subprocess
import sys

import numpy as np
import pytest
import zarr

from ednn_dask.data.sheets import SHEET_SPACING
from ednn_dask.raster import StructureError, raster_from_atoms
from ednn_dask.raster import AtomsArrays, rasterize_to_zarr
from ednn_dask.systems import sheets as S
from ednn_dask.systems.large import _neighbour_ids, honeycomb_arrays, load_atoms, porous_graphene_arrays, save_atoms_npz


def test_lattice_matches_ase_builder_and_neighbours():
    g = S.hexagonal_sheet(4, 3)
    np.testing.assert_allclose(honeycomb_arrays(4, 3), g.positions[:, :2])
    d = g.get_all_distances(mic=True)
    nb = _neighbour_ids(4, 3)
    np.testing.assert_allclose(d[np.arange(len(g))[:, None], nb], 2.5 / np.sqrt(3))
    assert all(len(set(row)) == 3 for row in nb.tolist())


def test_porous_sheet_density_and_coordination():
    a = porous_graphene_arrays((300.0, 300.0), seed=3)
    Lx, Ly = a.lengths_xy
    full = 4 * round(300 / 2.5) * round(300 / (2.5 * np.sqrt(3)))
    assert 0.75 * full < a.numbers.size < 0.97 * full  # holes removed some atoms, not most
    assert (a.positions >= 0).all() and (a.positions[:, 0] < Lx).all()
    b = porous_graphene_arrays((300.0, 300.0), seed=3)
    np.testing.assert_array_equal(a.positions, b.positions)


@pytest.mark.parametrize("chunk", [100, 128, 1000])
def test_chunked_zarr_equals_in_memory_raster(tmp_path, chunk):
    rng = np.random.default_rng(0)
    at = S.thermal_displacements(S.substitute(S.supercell(S.hexagonal_sheet(), 3, 2), 0.3, rng), 800, rng)
    ref = raster_from_atoms(at, SHEET_SPACING)
    out = rasterize_to_zarr(AtomsArrays(at.positions, at.numbers, at.cell.lengths()[:2]), tmp_path / "r.zarr",
                            SHEET_SPACING, chunk=chunk)
    arr = zarr.open_group(str(out), mode="r")["raster"]
    assert arr.metadata.dimension_names == ("channel", "y", "x")
    assert arr.attrs["n_atoms"] == len(at) and arr.attrs["spacing"] == list(SHEET_SPACING)
    np.testing.assert_allclose(arr[:], ref, atol=1e-6)


@pytest.mark.parametrize("chunk,halo", [(100, 24), (40, 60), (1000, 8)])
def test_chunk_drawn_with_halo_equals_periodic_crop(chunk, halo):
    """A chunk drawn with its context border from the atoms equals the wrap-padded full raster, cut out.

    This is what the evaluator's on-the-fly path feeds the network instead of ``map_overlap``'s assembly;
    halos wider than a bin (chunk 40, halo 60: atoms two bins away) and wrap on every side.
    """
    from ednn_dask.raster._gaussian import GAMMA
    from ednn_dask.raster import BinnedAtoms, raster_chunk
    from ednn_dask.raster import RasterGrid

    rng = np.random.default_rng(1)
    at = S.thermal_displacements(S.substitute(S.supercell(S.hexagonal_sheet(), 3, 2), 0.3, rng), 800, rng)
    ref = raster_from_atoms(at, SHEET_SPACING).astype(np.float64)
    arrays = AtomsArrays(at.positions, at.numbers, at.cell.lengths()[:2])
    grid = RasterGrid.for_cell(arrays.lengths_xy, SHEET_SPACING)
    binned = arrays.bin(grid, (chunk, chunk))
    padded = np.pad(ref, ((0, 0), (halo, halo), (halo, halo)), mode="wrap")
    for iy in range(binned.nby):
        for ix in range(binned.nbx):
            r0, r1, c0, c1 = binned.region(iy, ix)
            got = raster_chunk(binned, iy, ix, [5, 6, 7], GAMMA, halo=halo)
            assert got.shape == (3, r1 - r0 + 2 * halo, c1 - c0 + 2 * halo)
            np.testing.assert_allclose(got, padded[:, r0 : r1 + 2 * halo, c0 : c1 + 2 * halo], atol=1e-6)


def test_bad_structures_leave_no_output(tmp_path):
    with pytest.raises(StructureError, match="not an integer"):
        rasterize_to_zarr(AtomsArrays(np.zeros((1, 2)), [6], (10.01, 10.0)), tmp_path / "a.zarr", (0.1, 0.1))
    with pytest.raises(StructureError, match="Si not known"):
        rasterize_to_zarr(AtomsArrays(np.zeros((1, 2)), [14], (10.0, 10.0)), tmp_path / "b.zarr", (0.1, 0.1))
    with pytest.raises(StructureError, match="NaN"):
        AtomsArrays(np.full((1, 2), np.nan), [6], (10.0, 10.0))
    assert list(tmp_path.iterdir()) == []


def test_make_sheet_and_rasterize_cli(tmp_path):
    cli = [sys.executable, "-m", "ednn_dask.cli"]
    r = subprocess.run([*cli, "make-sheet", "--size-um", "0.01", "--out", tmp_path / "s.npz"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    atoms = load_atoms(tmp_path / "s.npz")
    r = subprocess.run([*cli, "rasterize", tmp_path / "s.npz", tmp_path / "s.zarr", "--chunk", "256", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    arr = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["raster"]
    # without --model: the channels of the model `evaluate` uses by default (porous-graphene: carbon only)
    assert arr.chunks == (1, 256, 256) and arr.attrs["n_atoms"] == atoms.numbers.size and arr.attrs["species"] == ["C"]
    # carbon channel integrates to Z * 2 pi gamma^2 per atom (pixel area h_y h_x)
    total = arr[0].sum() * SHEET_SPACING[0] * SHEET_SPACING[1]
    assert total == pytest.approx(6 * 2 * np.pi * 0.2**2 * atoms.numbers.size, rel=1e-4)
    r = subprocess.run([*cli, "rasterize", tmp_path / "missing.npz", tmp_path / "m.zarr"], capture_output=True, text=True)
    assert r.returncode == 2 and "not found" in r.stderr and not (tmp_path / "m.zarr").exists()


def test_save_load_npz_roundtrip(tmp_path):
    a = porous_graphene_arrays((50.0, 50.0), seed=1)
    b = load_atoms(save_atoms_npz(a, tmp_path / "a.npz"))
    np.testing.assert_array_equal(a.positions, b.positions)
    assert b.lengths_xy == a.lengths_xy
