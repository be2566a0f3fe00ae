"""The rasterizer against the direct periodic formula; cell checks; per-species channels."""
import numpy as np
import pytest
from ase import Atoms

from ednn_dask.data.sheets import SHEET_SPACING
from ednn_dask.raster import RasterGrid, StructureError, grid_for_atoms, raster_from_atoms, rasterize
from ednn_dask.systems import sheets as S


def direct(positions, weights, grid, gamma=0.2):
    """V(x, y) = sum_i w_i exp(-|r - r_i|^2 / 2 gamma^2), minimum image, no truncation."""
    hy, hx = grid.spacing
    Ly, Lx = grid.lengths
    yy, xx = np.meshgrid(np.arange(grid.shape[0]) * hy, np.arange(grid.shape[1]) * hx, indexing="ij")
    out = np.zeros(grid.shape)
    for (x, y), w in zip(positions[:, :2], weights):
        dx = xx - x
        dx -= Lx * np.round(dx / Lx)
        dy = yy - y
        dy -= Ly * np.round(dy / Ly)
        out += w * np.exp(-(dx**2 + dy**2) / (2 * gamma**2))
    return out


@pytest.fixture
def sheet():
    rng = np.random.default_rng(0)
    return S.thermal_displacements(S.substitute(S.hexagonal_sheet(), 0.3, rng), 1000, rng)


def test_matches_direct_formula(sheet):
    grid = grid_for_atoms(sheet, SHEET_SPACING)
    assert grid.shape == (120, 120)
    got = rasterize(sheet.positions, sheet.numbers, grid)
    ref = direct(sheet.positions, sheet.numbers, grid)
    # truncation at 6 gamma drops < 1.5e-8 Z per atom; the rest is float32 rounding of values up to ~7
    assert np.abs(got - ref).max() < 1e-6
    assert got.max() > 5


def test_window_with_halo_wraps_periodically(sheet):
    grid = grid_for_atoms(sheet, SHEET_SPACING)
    full = rasterize(sheet.positions, sheet.numbers, grid).astype(np.float64)
    window = rasterize(sheet.positions, sheet.numbers, grid, region=(-30, 150, 100, 265))
    padded = np.pad(full, ((30, 30), (0, 145)), mode="wrap")
    np.testing.assert_allclose(window, padded[:, 100:265], atol=1e-6)


def test_supercell_raster_tiles_the_cell_raster(sheet):
    big = S.supercell(sheet, 2, 3)
    a = raster_from_atoms(sheet, SHEET_SPACING)
    b = raster_from_atoms(big, SHEET_SPACING)
    np.testing.assert_allclose(b, np.tile(a, (1, 3, 2)), atol=1e-5)


def test_species_channels_sum_to_z_channel(sheet):
    per = raster_from_atoms(sheet, SHEET_SPACING, channels="species")
    z = raster_from_atoms(sheet, SHEET_SPACING, channels="z")
    assert per.shape == (3, 120, 120) and z.shape == (1, 120, 120)
    np.testing.assert_allclose(per.sum(0), z[0], atol=1e-5)
    assert per[0].max() > 0 and per[2].max() > 0  # B and N present


def test_cell_errors():
    g = S.hexagonal_sheet()
    with pytest.raises(StructureError, match="not an integer"):
        grid_for_atoms(S.hexagonal_sheet(5, 3, a=2.46), SHEET_SPACING)
    tilted = g.copy()
    tilted.set_cell([[12.5, 0, 0], [3.0, 12.99, 0], [0, 0, 20]])
    with pytest.raises(StructureError, match="not orthorhombic"):
        grid_for_atoms(tilted, SHEET_SPACING)
    mol = g.copy()
    mol.pbc = False
    with pytest.raises(StructureError, match="periodic"):
        grid_for_atoms(mol, SHEET_SPACING)
    with pytest.raises(StructureError, match="no atoms"):
        grid_for_atoms(Atoms(cell=g.cell, pbc=True), SHEET_SPACING)
    si = g.copy()
    si[0].symbol = "Si"
    with pytest.raises(StructureError, match="Si not known"):
        raster_from_atoms(si, SHEET_SPACING)


def test_grid_tolerance():
    g = RasterGrid.for_cell((12.5 + 1e-5, 12.0), (0.1, 2.5 / 24))
    assert g.shape == (120, 120)
