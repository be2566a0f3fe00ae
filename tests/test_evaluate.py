"""The Dask evaluator against the in-memory EDNN and a plain numpy reference, over chunkings and schedulers."""
import threading
import time

import numpy as np
import pytest
import torch
import zarr

from ednn_dask.data.sheets import SHEET_SPACING, SPECIES
from ednn_dask.evaluate import EvaluationError, aligned_chunks, evaluate
from ednn_dask.models import load_model, save_model
from ednn_dask.nn import EDNN, ConvSubnet, TileNet
from ednn_dask.train import TrainConfig
from ednn_dask.train.sheets import sheet_metadata

F, C = 8, 4
ATTRS = {"species": list(SPECIES), "channels": "species", "gamma": 0.2, "spacing": list(SHEET_SPACING),
         "n": 0, "seed": 0, "temperature_range": [100, 1000], "kind": "hexagonal"}


@pytest.fixture(autouse=True)
def small_halo_window():
    """Halo windows of 2 tiles, so halo-shared runs on these small fields still cross windows and chunks."""
    import dask

    with dask.config.set({"ednn.predict.halo-window": 2 * F}):
        yield


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    torch.manual_seed(0)
    sub = ConvSubnet(3, F + 2 * C, [(4, 3, 2), (6, 3, 1)], dense=(8,), padding="valid")
    model = EDNN(TileNet(sub, offset=-3.0, scale=0.5), F, C)
    meta = sheet_metadata("small", "hexagonal", F, C, TrainConfig(), ATTRS)
    return save_model(model, tmp_path_factory.mktemp("m") / "small.pt2", meta)


def write_raster(path, data, spacing=SHEET_SPACING, n_atoms=None, chunks=None):
    root = zarr.open_group(str(path), mode="w")
    arr = root.create_array("raster", shape=data.shape, chunks=chunks or data.shape, dtype=data.dtype,
                            dimension_names=["channel", "y", "x"])
    arr[:] = data
    arr.attrs.update({"spacing": list(spacing), **({"n_atoms": n_atoms} if n_atoms else {})})
    return path


def numpy_reference(model_path, data):
    """Tiles cut with np.pad(mode='wrap') and plain loops, each through the exported tile network."""
    m = load_model(model_path)
    padded = np.pad(data, ((0, 0), (C, C), (C, C)), mode="wrap")
    ny, nx = data.shape[1] // F, data.shape[2] // F
    out = np.empty((ny, nx))
    with torch.no_grad():
        for i in range(ny):
            for j in range(nx):
                tile = padded[:, i * F : i * F + F + 2 * C, j * F : j * F + F + 2 * C]
                out[i, j] = float(m.ednn.tile_net(torch.from_numpy(np.ascontiguousarray(tile))[None])[0])
    return out


@pytest.fixture(scope="module")
def field():
    return (np.random.default_rng(0).random((3, 56, 40)) * 6).astype(np.float32)


@pytest.mark.crosspath
@pytest.mark.parametrize("chunk", [8, 16, 24, 1000])  # 56 = 24 + 24 + 8: uneven last chunk
@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
@pytest.mark.parametrize("halo", [False, None])  # per-tile, automatic (halo-shared for this VALID model)
def test_chunked_equals_numpy_reference_and_in_memory(tmp_path, small_model, field, chunk, scheduler, halo):
    src = write_raster(tmp_path / "r.zarr", field, chunks=(3, 16, 16))
    res = evaluate(src, small_model, chunk=chunk, out=tmp_path / "tiles.zarr", scheduler=scheduler,
                   halo_sharing=halo)
    assert res.extra["halo_sharing"] is (halo is None)
    ref = numpy_reference(small_model, field)
    tiles = zarr.open_group(str(tmp_path / "tiles.zarr"), mode="r")["tiles"][:]
    np.testing.assert_allclose(tiles, ref, rtol=1e-5, atol=1e-6)
    # the in-memory path in the same mode runs every tile through the same float32 kernels (per-tile: the same
    # batch slot; halo-shared: the same window): bitwise the same tiles, totals equal to float64 summation order
    model = load_model(small_model)
    in_memory = model.predict(torch.from_numpy(field)[None], halo_sharing=halo, per_tile=True)[0].numpy()
    np.testing.assert_array_equal(tiles, in_memory)
    assert res.total == pytest.approx(float(model.predict(torch.from_numpy(field)[None], halo_sharing=halo)[0]),
                                      rel=1e-12)
    assert res.total == pytest.approx(ref.sum(), rel=1e-6)
    assert res.tiles == 7 * 5 and res.pixels == 56 * 40


@pytest.mark.crosspath
def test_single_chunk_smaller_than_tile(tmp_path, small_model):
    """An axis of one focus (8 px) is smaller than the 16-px tile but not than the context."""
    data = (np.random.default_rng(1).random((3, 8, 24)) * 6).astype(np.float32)
    res = evaluate(write_raster(tmp_path / "r.zarr", data), small_model, chunk=8)
    assert res.total == pytest.approx(numpy_reference(small_model, data).sum(), rel=1e-6)


@pytest.mark.crosspath
def test_local_cluster_two_workers_identical(tmp_path, small_model, field):
    from distributed import Client, LocalCluster

    src = write_raster(tmp_path / "r.zarr", field)
    local = evaluate(src, small_model, chunk=16, scheduler="synchronous")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dist = evaluate(src, small_model, chunk=16, client=client, out=tmp_path / "t.zarr")
    assert dist.total == pytest.approx(local.total, rel=1e-12)
    tiles = zarr.open_group(str(tmp_path / "t.zarr"), mode="r")["tiles"][:]
    np.testing.assert_allclose(tiles, numpy_reference(small_model, field), rtol=1e-5, atol=1e-6)


_WRITING = threading.Event()  # module-level (pickled by reference): in-process workers share it with the test


def _slow_write(self, iy, ix, values):
    """``TileStore.write`` of a big chunk on a slow file system: its arrays are open, the bytes take a second."""
    tiles, done = self.root["tiles"], self.root["done"]
    _WRITING.set()
    time.sleep(1.0)
    (y0, y1), (x0, x1) = self._span(iy, ix)
    tiles[y0:y1, x0:x1] = values
    done[iy, ix] = True


def _fails_while_writing(block, *args, **kwargs):
    """``block_contributions`` that reaches a NaN chunk only once the other chunk is being written."""
    from ednn_dask.evaluate._worker import block_contributions

    if not np.isfinite(block).all():
        _WRITING.wait(10)
    return block_contributions(block, *args, **kwargs)


@pytest.mark.parametrize("timeout", [None, 0.2])
def test_a_failed_run_on_a_cluster_waits_for_its_running_tasks(tmp_path, small_model, field, monkeypatch, timeout):
    """One chunk fails while another is still being written on the cluster: the store is deleted after that write,
    or kept whole (and the error says so) when the write outlasts ``ednn.evaluate.cancel-timeout``."""
    import dask
    from distributed import Client, LocalCluster

    import ednn_dask.evaluate._evaluate as ev
    from ednn_dask._outputs import store_kind
    from ednn_dask.evaluate._errors import TasksStillRunning
    from ednn_dask.evaluate._store import TileStore

    _WRITING.clear()
    monkeypatch.setattr(ev, "block_contributions", _fails_while_writing)
    monkeypatch.setattr(TileStore, "write", _slow_write)
    data = field[:, :32, :8].copy()
    data[:, 24, 4] = np.nan  # two chunks of 16 rows with 4 of context: row 24 is in the second only
    src = write_raster(tmp_path / "r.zarr", data)
    error = EvaluationError if timeout is None else TasksStillRunning
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client, dask.config.set({"ednn.evaluate.cancel-timeout": timeout or 300}):
        with pytest.raises(error, match="NaN"):
            evaluate(src, small_model, chunk=16, halo_sharing=False, client=client, out=tmp_path / "t.zarr")
        assert _WRITING.is_set()
        time.sleep(1.5)  # a write still under way would have recreated part of the deleted store by now
    if timeout is None:
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr"]
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == [".partial-t.zarr", "r.zarr"]
        assert store_kind(tmp_path / ".partial-t.zarr") == "tile-map"


def test_workers_keep_only_the_most_recently_used_binned_sheets(monkeypatch):
    from collections import OrderedDict

    import ednn_dask.systems.large as large
    from ednn_dask.evaluate import _worker

    loads = []

    class Atoms:
        def grid(self, spacing):
            return spacing

        def bin(self, grid, chunks, registration=None):
            return object()

    def load(path, check=True):
        loads.append(path)
        return Atoms()

    monkeypatch.setattr(large, "load_atoms", load)
    monkeypatch.setattr(_worker, "_ATOMS", OrderedDict())
    monkeypatch.setattr(_worker, "ATOMS_KEPT", 2)
    a, b, c = (_worker.AtomsRef(f"{n}.npz", n, (0.1, 0.1), ("C",), "species", ((8,), (8,))) for n in "abc")
    first = _worker.cached_atoms(a)
    _worker.cached_atoms(b)
    assert _worker.cached_atoms(a) is first  # a hit, and now the most recent
    _worker.cached_atoms(c)  # drops b, the least recently used
    assert _worker.cached_atoms(a) is first
    _worker.cached_atoms(b)  # loaded again, dropping c
    assert loads == ["a.npz", "b.npz", "c.npz", "b.npz"]
    assert [key[0] for key in _worker._ATOMS] == ["a", "b"]


def test_a_stopped_run_starts_no_block():
    from ednn_dask.evaluate._running import RunStopped, new_run, running, stop

    run = new_run()
    with running(run):
        assert stop(run) == 1  # still running here
    assert stop(run) == 0
    with pytest.raises(RunStopped):
        with running(run):
            pass


@pytest.mark.crosspath
def test_extensive_over_copies(tmp_path, small_model, field):
    big = np.tile(field, (1, 3, 3))
    one = evaluate(write_raster(tmp_path / "a.zarr", field), small_model, chunk=16)
    nine = evaluate(write_raster(tmp_path / "b.zarr", big), small_model, chunk=24)
    assert nine.total == pytest.approx(9 * one.total, rel=1e-9)


def test_resume_reuses_finished_chunks(tmp_path, small_model, field):
    src = write_raster(tmp_path / "r.zarr", field)
    full = evaluate(src, small_model, chunk=16, out=tmp_path / "t.zarr")
    # fake an interrupted run: rename to the partial name, forget two chunks, poison one finished chunk
    import os

    os.replace(tmp_path / "t.zarr", tmp_path / ".partial-t.zarr")
    root = zarr.open_group(str(tmp_path / ".partial-t.zarr"), mode="r+")
    root["done"][0, 0] = False
    root["done"][1, 1] = False
    root["tiles"][0:2, 0:2] = 1e6  # chunk (0, 0): recomputed, so the poison must disappear
    root["tiles"][2:4, 2:4] += 1.0  # chunk (1, 1): recomputed too
    root["tiles"][4:6, 0:2] += 0.5  # chunk (2, 0): still marked done, so it is reused as stored
    again = evaluate(src, small_model, chunk=16, out=tmp_path / "t.zarr")
    assert again.total == pytest.approx(full.total + 0.5 * 4, rel=1e-12)
    assert not (tmp_path / ".partial-t.zarr").exists()
    assert zarr.open_group(str(tmp_path / "t.zarr"), mode="r").attrs["complete"]


def test_xarray_view_of_tile_map(tmp_path, small_model, field):
    import xarray as xr

    evaluate(write_raster(tmp_path / "r.zarr", field, n_atoms=100), small_model, out=tmp_path / "t.zarr")
    ds = xr.open_zarr(tmp_path / "t.zarr", consolidated=False)
    assert ds["tiles"].dims == ("y", "x") and ds["x"].attrs["units"] == "Å"
    assert float(ds["x"][1] - ds["x"][0]) == pytest.approx(F * SHEET_SPACING[1])


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d[:, :50], "not a multiple of the model's focus"),
        (lambda d: np.where(d > 5.9, np.nan, d).astype(np.float32), "NaN"),
        (lambda d: d[:2], "2 channels"),
        (lambda d: d.astype(np.int32), "floating-point"),
    ],
)
def test_bad_rasters(tmp_path, small_model, field, mutate, match):
    with pytest.raises(EvaluationError, match=match):
        evaluate(write_raster(tmp_path / "r.zarr", mutate(field)), small_model, out=tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists() and not (tmp_path / ".partial-t.zarr").exists()


def test_spacing_and_missing(tmp_path, small_model, field):
    with pytest.raises(EvaluationError, match="differs from the model's"):
        evaluate(write_raster(tmp_path / "r.zarr", field, spacing=(0.1, 0.1)), small_model)
    with pytest.raises(EvaluationError, match="not found"):
        evaluate(tmp_path / "missing.zarr", small_model)
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(EvaluationError):
        evaluate(tmp_path / "junk.zarr", small_model)


def test_aligned_chunks():
    assert aligned_chunks(56, 8, 4, 24) == (24, 24, 8)
    assert aligned_chunks(56, 8, 12, 24) == (24, 32)  # last chunk (8) < context: merged
    assert sum(aligned_chunks(10000, 40, 24, 1024)) == 10000
    assert all(c % 40 == 0 for c in aligned_chunks(10000, 40, 24, 1024))


@pytest.mark.crosspath
def test_on_the_fly_raster_from_atoms_equals_zarr_raster(tmp_path, small_model):
    """A structure file is rasterized chunk by chunk inside the evaluation: same total as a stored raster."""
    from ednn_dask.raster import AtomsArrays, rasterize_to_zarr
    from ednn_dask.systems.large import porous_graphene_arrays, save_atoms_npz

    atoms = porous_graphene_arrays((50.0, 52.0), seed=2)
    save_atoms_npz(atoms, tmp_path / "a.npz")
    rasterize_to_zarr(atoms, tmp_path / "r.zarr", SHEET_SPACING, chunk=64)
    stored = evaluate(tmp_path / "r.zarr", small_model, chunk=40)
    fly = evaluate(tmp_path / "a.npz", small_model, chunk=24)
    assert fly.total == pytest.approx(stored.total, rel=1e-9)
    assert fly.n_atoms == atoms.numbers.size and fly.per_atom == pytest.approx(fly.total / fly.n_atoms)


def test_evaluate_cli_json_and_errors(tmp_path, small_model, field):
    import json
    import subprocess
    import sys

    src = write_raster(tmp_path / "r.zarr", field, n_atoms=77)
    cli = [sys.executable, "-m", "ednn_dask.cli", "evaluate"]
    r = subprocess.run([*cli, src, "--model", small_model, "--json", "--workers", "0", "--out", tmp_path / "t.zarr",
                        "--png", tmp_path / "map.png"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"total", "per_atom", "tiles", "pixels", "seconds", "model"}
    assert out["total"] == pytest.approx(numpy_reference(small_model, field).sum(), rel=1e-6)
    assert out["per_atom"] == pytest.approx(out["total"] / 77)
    assert (tmp_path / "map.png").stat().st_size > 1000
    bad = write_raster(tmp_path / "bad.zarr", field[:, :50])
    r = subprocess.run([*cli, bad, "--model", small_model, "--json", "--out", tmp_path / "o.zarr"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == "" and "multiple of the model's focus" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.zarr").exists()
    r = subprocess.run([*cli, tmp_path / "none.zarr", "--json"], capture_output=True, text=True)
    assert r.returncode == 2 and "not found" in r.stderr


@pytest.mark.crosspath
@pytest.mark.parametrize("chunk", [16, 24, 1000])
def test_halo_sharing_equals_per_tile(tmp_path, small_model, field, chunk):
    src = write_raster(tmp_path / "r.zarr", field)
    per_tile = evaluate(src, small_model, chunk=chunk, out=tmp_path / "a.zarr", halo_sharing=False)
    shared = evaluate(src, small_model, chunk=chunk, out=tmp_path / "b.zarr", halo_sharing=True)
    assert shared.extra["halo_sharing"] and not per_tile.extra["halo_sharing"]
    a = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["tiles"][:]
    b = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["tiles"][:]
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    assert shared.total == pytest.approx(per_tile.total, rel=1e-6)


@pytest.mark.crosspath
@pytest.mark.parametrize("channels_last", [False, True])
def test_halo_shared_tiles_do_not_depend_on_chunking(tmp_path, small_model, field, channels_last):
    """Chunk edges fall on halo-window edges, so every tile sees the same float32 kernels: bitwise equal maps."""
    import dask

    with dask.config.set({"ednn.predict.channels-last": channels_last}):
        _check_chunking_independence(tmp_path, small_model, field)


def _check_chunking_independence(tmp_path, small_model, field):
    src = write_raster(tmp_path / "r.zarr", field, chunks=(3, 24, 8))
    maps = []
    for i, (chunk, scheduler) in enumerate([(16, "synchronous"), (32, "threads"), (1000, "threads")]):
        res = evaluate(src, small_model, chunk=chunk, out=tmp_path / f"{i}.zarr", scheduler=scheduler)
        assert res.extra["halo_sharing"] and all(c % (2 * F) == 0 for c in res.extra["chunks"][0][:-1])
        maps.append(zarr.open_group(str(tmp_path / f"{i}.zarr"), mode="r")["tiles"][:])
    assert len(res.extra["chunks"][0]) == 1 and len(maps) == 3
    with torch.no_grad():
        in_memory = load_model(small_model).halo_shared(window=2 * F)(torch.from_numpy(field)[None], per_tile=True)
    for m in maps:
        np.testing.assert_array_equal(m, in_memory[0].double().numpy())


def test_halo_sharing_refused_for_dense_models(tmp_path):
    from ednn_dask.models import get_model

    with pytest.raises(Exception, match="no VALID conv subnet"):
        get_model("ising").halo_shared()
