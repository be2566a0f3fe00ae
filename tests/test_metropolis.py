"""Metropolis Monte Carlo with incremental re-evaluation: the running total is the full evaluation's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ednn_dask.forces import energy_and_forces
from ednn_dask.models import get_model
from ednn_dask.simulate import Metropolis, tile_range
from ednn_dask.systems import sheets as S


def test_tile_range_is_the_tiles_whose_windows_meet_the_pixels():
    f, c, n = 8, 24, 40
    for lo, hi in [(0, 1), (37, 62), (-10, 5), (300, 331), (5, 5 + 400)]:
        want = [t for t in range(-20, 80) if t * f - c < hi and t * f + f + c > lo]
        t0, t1 = tile_range(lo, hi, f, c, n)
        if len(want) >= n:
            assert (t0, t1) == (0, n)
        else:
            assert list(range(t0, t1)) == want


@pytest.mark.parametrize("build", ["graphene", "hbn-vacancy"])
def test_incremental_total_is_the_full_evaluation_after_many_moves(build):
    model = get_model("hexagonal-sheet")
    rng = np.random.default_rng(0)
    if build == "graphene":
        atoms = S.hexagonal_sheet()
    else:
        atoms = S.add_vacancies(S.supercell(S.hexagonal_sheet(species=("B", "N")), 2, 1), 1, rng)
    mc = Metropolis(model, atoms, 1000.0, step=0.05, seed=3)
    assert mc.energy == pytest.approx(energy_and_forces(model, atoms, torch.float64).energy, rel=1e-12)
    start = mc.positions.copy()
    mc.run(150)
    assert 0.1 < mc.accepted / mc.trials < 0.9  # moves were made and some refused
    assert np.abs(mc.positions - start).max() > 0.01
    full = mc.full_energy()
    assert abs(mc.energy - full) <= 1e-9 * abs(full)
    # the tile map is the full map too, tile by tile
    np.testing.assert_allclose(mc.tiles, mc._evaluate_all(mc._draw_all()), rtol=0, atol=1e-9)


def test_refused_structures_are_refused_as_predict_does():
    from ednn_dask.raster import StructureError

    atoms = S.hexagonal_sheet()
    atoms.set_cell(atoms.cell.array * (1.01, 1.0, 1.0), scale_atoms=True)
    with pytest.raises(StructureError, match="not a whole number"):
        Metropolis(get_model("hexagonal-sheet"), atoms, 300.0)
