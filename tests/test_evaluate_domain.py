"""The evaluator with a model that has a domain: uncertainty and out-of-domain maps, chunked against in memory."""
import json
import os
import signal
import warnings

import ase.io
import numpy as np
import pytest
import torch
import zarr

from ednn_dask.domain import DomainSpec, tile_flags, tile_sigma
from ednn_dask.evaluate import EvaluationError, evaluate
from ednn_dask.evaluate._domain import circular_span
from ednn_dask.models import get_model
from ednn_dask.raster import raster_from_atoms
from ednn_dask.systems import sheets as S

MODEL = "hexagonal-sheet"
F = 8


@pytest.fixture(autouse=True)
def small_halo_window():
    """Halo windows of 2 tiles, so halo-shared runs on these small fields still cross windows and chunks."""
    import dask

    with dask.config.set({"ednn.predict.halo-window": 2 * F}):
        yield


@pytest.fixture(scope="module")
def model():
    return get_model(MODEL)


@pytest.fixture(scope="module")
def spec(model):
    return DomainSpec.from_card(model.card)


def sheet(n: int = 2, hole: float = 0.0, centre=(0.5, 0.5), seed: int = 0, nitrogen: float = 0.0):
    """A thermal hexagonal sheet of n x n training cells (120 n px a side), with a hole of radius ``hole`` Å
    or a patch of radius ``nitrogen`` Å where every atom is N (N-N bonds: a chemistry no training cell had)."""
    atoms = S.supercell(S.hexagonal_sheet(), n, n)
    L = atoms.cell.lengths()[:2]
    d = atoms.positions[:, :2] - L * np.asarray(centre)
    d -= L * np.round(d / L)
    r = np.hypot(*d.T)
    if nitrogen:
        symbols = np.array(atoms.get_chemical_symbols())
        symbols[r < nitrogen] = "N"
        atoms.set_chemical_symbols(symbols.tolist())
    if hole:
        atoms = atoms[r > hole]
    return S.thermal_displacements(atoms, 300, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def field(model):
    """A 240 x 240 px raster of a sheet with a 96 x 96 px patch of noise pixels: partly out of the domain."""
    how = model.card.raster_settings()
    data = raster_from_atoms(sheet(), how.spacing, how.species, channels=how.channels, lattice=how.lattice)
    data[:, 64:160, 72:168] = np.random.default_rng(1).random((3, 96, 96)) * data.max()  # tiles 8-19, 9-20
    return data


def write_raster(path, data, spacing, chunks=None):
    root = zarr.open_group(str(path), mode="w")
    arr = root.create_array("raster", shape=data.shape, chunks=chunks or data.shape, dtype=data.dtype,
                            dimension_names=["channel", "y", "x"])
    arr[:] = data
    arr.attrs.update({"spacing": list(spacing)})
    return path


def in_memory(model, data):
    return model.predict_maps(torch.from_numpy(data)[None])[0].double().numpy()


def check_store(path, maps, spec, result, exact=True):
    """The stored maps are the in-memory ones: bit for bit from the synchronous scheduler (the same torch threads);
    from the threaded one to float32 round-off (concurrent tasks may split the field program's convolutions
    between threads otherwise)."""
    root = zarr.open_group(str(path), mode="r")
    same = np.testing.assert_array_equal if exact else (
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6))
    same(root["tiles"][:], maps[0])
    same(root["d2"][:], maps[1].astype(np.float32))
    same(root["uncertainty"][:], tile_sigma(spec, maps[1]).astype(np.float32))
    flags = tile_flags(spec, maps[1])
    np.testing.assert_array_equal(root["out_of_domain"][:], flags)
    rel = 1e-12 if exact else 1e-6
    assert result.uncertainty == pytest.approx(np.sqrt((tile_sigma(spec, maps[1]) ** 2).sum()), rel=rel)
    assert result.out_of_domain_tiles == flags.sum() and 0 < result.out_of_domain_fraction < 1
    assert root.attrs["complete"] and root.attrs["out_of_domain_tiles"] == flags.sum()


@pytest.mark.crosspath
@pytest.mark.parametrize("chunk,scheduler", [(32, "synchronous"), (64, "threads"), (1000, "threads")])
def test_uncertainty_map_equals_in_memory(tmp_path, model, spec, field, chunk, scheduler):
    """Chunks of 4 tiles are smaller than half the 15-tile window of the flags: they are merged for it."""
    src = write_raster(tmp_path / "r.zarr", field, model.card.pixel_spacing, chunks=(3, 48, 80))
    res = evaluate(src, MODEL, chunk=chunk, out=tmp_path / "t.zarr", scheduler=scheduler)
    assert (len(res.extra["chunks"][0]) > 1) is (chunk < 240)
    maps = in_memory(model, field)
    check_store(tmp_path / "t.zarr", maps, spec, res, exact=scheduler == "synchronous")
    assert res.total == pytest.approx(maps[0].sum(), rel=1e-12 if scheduler == "synchronous" else 1e-8)
    # flagged: tiles of the noise patch or with it in their 15-tile neighbourhood, never further out
    ty, tx = res.out_of_domain_box["tiles_y"], res.out_of_domain_box["tiles_x"]
    assert 1 <= ty[0] < ty[1] <= 27 and 2 <= tx[0] < tx[1] <= 28


def test_distributed_equals_in_memory(tmp_path, model, spec, field):
    from distributed import Client, LocalCluster

    src = write_raster(tmp_path / "r.zarr", field, model.card.pixel_spacing)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        res = evaluate(src, MODEL, chunk=64, client=client, out=tmp_path / "t.zarr")
    # other processes may split the field program's convolutions otherwise: float32 round-off, not bit for bit
    maps = in_memory(model, field)
    root = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")
    np.testing.assert_allclose(root["uncertainty"][:], tile_sigma(spec, maps[1]), rtol=1e-5)
    np.testing.assert_array_equal(root["out_of_domain"][:], tile_flags(spec, maps[1]))
    assert res.uncertainty == pytest.approx(np.sqrt((tile_sigma(spec, maps[1]) ** 2).sum()), rel=1e-6)


def test_resume_keeps_every_map_and_refuses_a_store_without_them(tmp_path, model, spec, field):
    import xarray as xr

    src = write_raster(tmp_path / "r.zarr", field, model.card.pixel_spacing)
    full = evaluate(src, MODEL, chunk=64, out=tmp_path / "t.zarr", scheduler="threads")
    os.replace(tmp_path / "t.zarr", tmp_path / ".partial-t.zarr")
    root = zarr.open_group(str(tmp_path / ".partial-t.zarr"), mode="r+")
    root["done"][0, 0] = False
    for name in ("tiles", "d2", "uncertainty"):
        root[name][0:8, 0:8] = 1e6  # chunk (0, 0): recomputed, so the poison must disappear
    root["out_of_domain"][:] = True  # recomputed from the d2 map by every run
    again = evaluate(src, MODEL, chunk=64, out=tmp_path / "t.zarr", scheduler="threads")
    assert (again.total, again.uncertainty, again.out_of_domain_tiles) == (full.total, full.uncertainty,
                                                                        full.out_of_domain_tiles)
    check_store(tmp_path / "t.zarr", in_memory(model, field), spec, again, exact=False)
    ds = xr.open_zarr(tmp_path / "t.zarr", consolidated=False)
    for name in ("uncertainty", "out_of_domain", "d2"):
        assert ds[name].dims == ("y", "x") and ds[name].shape == ds["tiles"].shape
    assert ds["uncertainty"].dtype == np.float32 and ds["uncertainty"].attrs["units"] == "eV"
    assert ds["out_of_domain"].dtype == bool and float(ds["x"][1] - ds["x"][0]) == float(ds["tiles"]["x"][1] -
                                                                                           ds["tiles"]["x"][0])
    # an unfinished store of a model with a domain that lacks the maps (written otherwise) is not resumed
    os.replace(tmp_path / "t.zarr", tmp_path / ".partial-t.zarr")
    root = zarr.open_group(str(tmp_path / ".partial-t.zarr"), mode="r+")
    prov = dict(root.attrs["provenance"])
    prov["options"] = {k: v for k, v in prov["options"].items() if k != "maps"}
    root.attrs["provenance"] = prov
    with pytest.raises(EvaluationError, match="different options.maps"):
        evaluate(src, MODEL, chunk=64, out=tmp_path / "t.zarr", scheduler="threads")


def test_circular_span():
    hit = np.zeros(10, bool)
    assert circular_span(hit) is None
    hit[[3, 4, 6]] = True
    assert circular_span(hit) == (3, 7)
    hit[:] = False
    hit[[0, 1, 9]] = True  # across the edge: 9, 0, 1
    assert circular_span(hit) == (9, 2)
    assert circular_span(np.ones(4, bool)) == (0, 4)


@pytest.fixture
def cli(monkeypatch):
    """``ednn_dask.cli.main`` in this process, with the signal handlers and warning display it sets put back."""
    from ednn_dask.cli import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("DASK_LOGGING__DISTRIBUTED", os.environ.get("DASK_LOGGING__DISTRIBUTED", "warning"))
    yield main
    for s, h in handlers.items():
        signal.signal(s, h)


def test_cli_out_of_domain_warns_and_strict_fails(tmp_path, cli, capsys):
    ase.io.write(tmp_path / "patched.extxyz", sheet(3, nitrogen=6.0))
    ase.io.write(tmp_path / "ok.extxyz", sheet(2))
    args = ["evaluate", "--model", MODEL, "--json", "--workers", "0", "--chunk", "64"]
    assert cli([*args, str(tmp_path / "ok.extxyz")]) == 0
    out, err = capsys.readouterr()
    ok = json.loads(out)
    assert ok["out_of_domain"] is False and ok["out_of_domain_fraction"] == 0 and ok["out_of_domain_box"] is None
    assert ok["uncertainty"] > 0 and ok["uncertainty_per_atom"] == pytest.approx(ok["uncertainty"] / 240)
    assert "warning" not in err

    assert cli([*args, str(tmp_path / "patched.extxyz"), "--out", str(tmp_path / "t.zarr"),
                "--png", str(tmp_path / "map.png")]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)
    assert res["out_of_domain"] is True and 0 < res["out_of_domain_fraction"] < 0.5
    ty, tx = res["out_of_domain_box"]["tiles_y"], res["out_of_domain_box"]["tiles_x"]
    assert ty[0] < 22 < ty[1] and tx[0] < 22 < tx[1]  # around the N patch at the centre of 45 x 45 tiles
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ednn-dask: warning: ") and "outside the domain" in lines[0]
    assert f"{100 * res['out_of_domain_fraction']:.3g} %" in lines[0] and "t.zarr" in lines[0]
    for png in ("map.png", "map-uncertainty.png"):
        assert (tmp_path / png).stat().st_size > 1000

    assert cli([*args, str(tmp_path / "patched.extxyz"), "--strict", "--out", str(tmp_path / "s.zarr")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("ednn-dask: error: ") and "outside the domain" in err and "--strict" in err
    assert "kept in" in err and zarr.open_group(str(tmp_path / "s.zarr"), mode="r").attrs["complete"]
