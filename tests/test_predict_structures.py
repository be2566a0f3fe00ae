"""`ednn-dask predict` on structure files with a sheet model."""
import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch

from ednn_dask.data.sheets import SHEET_SPACING, SPECIES
from ednn_dask.models import load_model, save_model
from ednn_dask.systems import sheets as S
from ednn_dask.train import TrainConfig
from ednn_dask.train.sheets import build_sheet_model, predict_structures, sheet_metadata

ATTRS = {"species": list(SPECIES), "channels": "species", "gamma": 0.2, "spacing": list(SHEET_SPACING),
         "n": 0, "seed": 0, "temperature_range": [100, 1000], "kind": "hexagonal"}


@pytest.fixture(scope="module")
def sheet_model(tmp_path_factory):
    model = build_sheet_model(40, 24)
    model.tile_net.offset.fill_(-45.0)  # about 9 tiles x 6.7 atoms x -7 eV: plausible totals
    meta = sheet_metadata("test-sheet", "hexagonal", 40, 24, TrainConfig(), ATTRS)
    return save_model(model, tmp_path_factory.mktemp("m") / "sheet.pt2", meta)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "ednn_dask.cli", *map(str, args)], capture_output=True, text=True)


def test_predict_json_matches_python_api_and_is_extensive(sheet_model, tmp_path):
    rng = np.random.default_rng(0)
    cell = S.thermal_displacements(S.hexagonal_sheet(species=("B", "N")), 500, rng)
    frames = [cell, S.supercell(cell, 2, 2), S.thermal_displacements(S.hexagonal_sheet(), 300, rng)]
    ase.io.write(tmp_path / "f.extxyz", frames)
    r = cli("predict", sheet_model, tmp_path / "f.extxyz", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"energies", "energies_per_atom", "model", "n"} and out["n"] == 3
    ref = predict_structures(load_model(sheet_model), frames)
    # same model and frames; float32 convolutions may block differently with another thread count
    np.testing.assert_allclose(out["energies"], ref, rtol=1e-6)
    assert out["energies"][1] == pytest.approx(4 * out["energies"][0], rel=1e-5)
    np.testing.assert_allclose(out["energies_per_atom"], np.array(out["energies"]) / [60, 240, 60])


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: S.hexagonal_sheet(4, 3), "not a whole number of 40-pixel focus regions"),
        (lambda: S.hexagonal_sheet(5, 3, a=2.46), "not an integer"),
        (lambda: _with_symbol(S.hexagonal_sheet(), "Si"), "Si not known"),
        (lambda: _tilted(S.hexagonal_sheet()), "not orthorhombic"),
        (lambda: _nonperiodic(S.hexagonal_sheet()), "periodic"),
    ],
)
def test_predict_rejects_unrepresentable_structures(sheet_model, tmp_path, make, match):
    ase.io.write(tmp_path / "bad.extxyz", [make()])
    r = cli("predict", sheet_model, tmp_path / "bad.extxyz", "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert match in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_predict_empty_and_garbage_files(sheet_model, tmp_path):
    (tmp_path / "empty.extxyz").write_text("")
    (tmp_path / "junk.extxyz").write_text("this is not\na structure\n")
    for name, match in (("empty.extxyz", "empty"), ("junk.extxyz", "cannot read"), ("nope.xyz", "not found")):
        r = cli("predict", sheet_model, tmp_path / name)
        assert r.returncode == 2 and match in r.stderr, r.stderr


def _with_symbol(atoms, sym):
    atoms[0].symbol = sym
    return atoms


def _tilted(atoms):
    atoms.set_cell([[12.5, 0, 0], [2.0, 12.990381, 0], [0, 0, 20]])
    return atoms


def _nonperiodic(atoms):
    atoms.pbc = [True, False, True]
    return atoms


def test_sheet_model_widths_roundtrip_and_validation(tmp_path):
    """A wider sheet subnet is saved with its spec: halo-shared reload equals the trained net tile by tile."""
    model = build_sheet_model(8, 24, widths=(4, 8, 8, 12, 12), dense=(16, 8), seed=1)
    assert [m.out_channels for m in model.tile_net.subnet.modules() if isinstance(m, torch.nn.Conv2d)] == [4, 8, 8, 12, 12]
    meta = sheet_metadata("wide", "hexagonal", 8, 24, TrainConfig(), ATTRS)
    loaded = load_model(save_model(model, tmp_path / "wide.pt2", meta))
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        ref = model.eval()(x, per_tile=True)
        shared = loaded.predict(x, per_tile=True, halo_sharing=True)
        tiles = loaded.predict(x, per_tile=True, halo_sharing=False)
    torch.testing.assert_close(shared, tiles, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared.to(ref.dtype), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="5 filter counts"):
        build_sheet_model(8, 24, widths=(4, 8))


@pytest.mark.parametrize("command", ["predict", "evaluate", "rasterize"])
def test_a_bad_structure_is_refused_before_any_network_loads(sheet_model, tmp_path, monkeypatch, capsys, command):
    """Input errors come from the model's metadata alone: no model program is loaded (or run) to find them."""
    import ednn_dask.models._load as load
    from ednn_dask.cli import main

    def no_loading(*args, **kwargs):
        raise AssertionError("a network was loaded before the input was checked")

    monkeypatch.setattr(load, "_load_network", no_loading)
    ase.io.write(tmp_path / "bad.extxyz", [S.hexagonal_sheet(5, 3, a=2.46)])  # another lattice constant
    args = {"predict": [sheet_model, tmp_path / "bad.extxyz"],
            "evaluate": [tmp_path / "bad.extxyz", "--model", sheet_model, "--workers", "0"],
            "rasterize": [tmp_path / "bad.extxyz", tmp_path / "r.zarr", "--model", sheet_model]}[command]
    assert main([command, *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert "not an integer" in err and "network was loaded" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.zarr").exists()
