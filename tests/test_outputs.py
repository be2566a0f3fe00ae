"""What the CLI writes and what it refuses: nothing of the user's deleted, mixed or invented, one line per failure."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from test_evaluate import field, small_model, write_raster  # noqa: F401  (module fixtures reused)

CLI = [sys.executable, "-m", "ednn_dask.cli"]
REPO = str(Path(__file__).resolve().parents[1])  # this checkout, whatever cwd a test runs the CLI in
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}


def run(*args, cwd=None):
    """The CLI as users run it, in a new process (Dask's logs and workers included)."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)


@pytest.fixture
def cli(capsys, monkeypatch):
    """The CLI's ``main`` in this process (no cluster: quick), with what it printed."""
    from ednn_dask.cli import main

    def call(*args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return call


def one_error(r, *words):
    """Exit 2, nothing on stdout, exactly one ``ednn-dask: error:`` line on stderr that holds ``words``."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert len(lines) == 1 and lines[0].startswith("ednn-dask: error: "), r.stderr
    for w in words:
        assert w in lines[0], r.stderr


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def raster(tmp_path, field):  # noqa: F811
    return write_raster(tmp_path / "r.zarr", field, n_atoms=77)


@pytest.fixture
def evaluate_cli(cli):
    return lambda src, model, *extra: cli("evaluate", src, "--model", model, "--workers", "0", "--json", *extra)


# ---------------------------------------------------------------- --overwrite

def test_overwrite_never_deletes_the_input_or_a_users_folder(tmp_path, raster, small_model, evaluate_cli, cli):  # noqa: F811
    before = tree(raster)
    one_error(evaluate_cli(raster, small_model, "--out", raster, "--overwrite"), "would overwrite the input")
    assert tree(raster) == before
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    one_error(cli("evaluate", raster, "--model", small_model, "--workers", "0", "--json", "--out", ".", "--overwrite",
                  cwd=work), "not a tile-map store written by ednn-dask")
    one_error(evaluate_cli(raster, small_model, "--out", work, "--overwrite"), "not a tile-map store")
    one_error(evaluate_cli(raster, small_model, "--out", tmp_path, "--overwrite"), "would overwrite the input")
    assert (work / "notes.txt").read_text() == "mine" and tree(raster) == before
    # a raster of ours is not a tile map either: --out onto another raster is refused
    other = write_raster(tmp_path / "other.zarr", np.zeros((3, 8, 8), np.float32))
    one_error(evaluate_cli(raster, small_model, "--out", other, "--overwrite"), "not a tile-map store")


def test_overwrite_replaces_our_own_tile_map(tmp_path, raster, small_model, evaluate_cli):  # noqa: F811
    first = evaluate_cli(raster, small_model, "--out", tmp_path / "t.zarr")
    assert first.returncode == 0, first.stderr
    one_error(evaluate_cli(raster, small_model, "--out", tmp_path / "t.zarr"), "exists", "--overwrite")
    again = evaluate_cli(raster, small_model, "--out", tmp_path / "t.zarr", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["total"] == json.loads(first.stdout)["total"]
    assert zarr.open_group(str(tmp_path / "t.zarr"), mode="r").attrs["complete"]


def test_rasterize_overwrite_only_replaces_our_raster(tmp_path, cli):
    from ednn_dask.systems.large import porous_graphene_arrays, save_atoms_npz

    sheet = save_atoms_npz(porous_graphene_arrays((40.0, 40.0), seed=1), tmp_path / "s.npz")
    data = sheet.read_bytes()
    one_error(cli("rasterize", sheet, sheet, "--overwrite", "--quiet"), "would overwrite the input")
    assert sheet.read_bytes() == data
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    one_error(cli("rasterize", sheet, tmp_path / "mine", "--overwrite", "--quiet"), "not a raster store")
    assert (tmp_path / "mine" / "keep.txt").exists()
    assert cli("rasterize", sheet, tmp_path / "r.zarr", "--quiet").returncode == 0
    r = cli("rasterize", sheet, tmp_path / "r.zarr", "--overwrite", "--quiet")
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- resuming

def _interrupted(out: Path) -> None:
    """Turn a finished tile map into the unfinished store of an interrupted run (two chunks left to do)."""
    partial = out.with_name(f".partial-{out.name}")
    os.replace(out, partial)
    root = zarr.open_group(str(partial), mode="r+")
    root["done"][0, 0] = False
    root["done"][-1, -1] = False


def test_resume_refuses_another_input_or_options(tmp_path, field, small_model, evaluate_cli):  # noqa: F811
    a = write_raster(tmp_path / "a.zarr", field)
    b = write_raster(tmp_path / "b.zarr", field[:, ::-1].copy())
    out = tmp_path / "t.zarr"
    full = evaluate_cli(a, small_model, "--out", out, "--chunk", "16")
    assert full.returncode == 0, full.stderr
    _interrupted(out)
    one_error(evaluate_cli(b, small_model, "--out", out, "--chunk", "16"), "unfinished run", "input.fingerprint")
    one_error(evaluate_cli(a, small_model, "--out", out, "--chunk", "16", "--bf16"), "unfinished run", "options.bf16")
    one_error(evaluate_cli(a, small_model, "--out", out, "--chunk", "16", "--no-halo-sharing"), "options.halo_sharing")
    # the same command resumes and gives the same total
    resumed = evaluate_cli(a, small_model, "--out", out, "--chunk", "16")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["total"] == json.loads(full.stdout)["total"]
    # --overwrite discards an unfinished run of ours and starts afresh with the new input
    _interrupted(out)
    fresh = evaluate_cli(b, small_model, "--out", out, "--chunk", "16", "--overwrite")
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["total"] != json.loads(full.stdout)["total"]


def test_resume_refuses_an_edited_raster(tmp_path, field, small_model, evaluate_cli):  # noqa: F811
    a = write_raster(tmp_path / "a.zarr", field, chunks=(3, 16, 16))
    out = tmp_path / "t.zarr"
    assert evaluate_cli(a, small_model, "--out", out, "--chunk", "16").returncode == 0
    _interrupted(out)
    zarr.open_group(str(a), mode="r+")["raster"][:, :16, :16] = 1.0  # same path, other pixels
    one_error(evaluate_cli(a, small_model, "--out", out, "--chunk", "16"), "input.fingerprint")


def test_second_run_on_the_same_out_is_refused_while_the_first_holds_it(tmp_path, raster, small_model, evaluate_cli):  # noqa: F811
    from ednn_dask._outputs import OutputLock

    out = tmp_path / "t.zarr"
    with OutputLock(out):
        one_error(evaluate_cli(raster, small_model, "--out", out), "being written by another ednn-dask run",
                  f"pid {os.getpid()}")
    assert not out.exists() and not (tmp_path / ".partial-t.zarr").exists()
    r = evaluate_cli(raster, small_model, "--out", out)  # released: the next run proceeds
    assert r.returncode == 0, r.stderr and not (tmp_path / ".t.zarr.lock").exists()


def test_two_concurrent_runs_one_wins_the_other_is_refused(tmp_path, raster, small_model):  # noqa: F811
    out = tmp_path / "t.zarr"
    cmd = [*CLI, "evaluate", str(raster), "--model", str(small_model), "--workers", "0", "--json", "--out", str(out),
           "--chunk", "8", "--no-halo-sharing"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes[0] == 0, results
    if codes[1] == 2:  # they overlapped: the loser says why, in one line
        err = next(e for rc, _, e in results if rc == 2)
        assert err.startswith("ednn-dask: error: ") and len(err.strip().splitlines()) == 1, err
        assert "another ednn-dask run" in err or "exists" in err, err
    assert zarr.open_group(str(out), mode="r").attrs["complete"]
    assert not (tmp_path / ".partial-t.zarr").exists()


# ---------------------------------------------------------------- damaged inputs

def test_missing_or_damaged_raster_chunks_are_refused(tmp_path, field, small_model, evaluate_cli):  # noqa: F811
    src = write_raster(tmp_path / "r.zarr", field, chunks=(3, 16, 16))
    chunk = src / "raster" / "c" / "0" / "1" / "1"
    assert chunk.is_file()
    data = chunk.read_bytes()
    chunk.unlink()
    one_error(evaluate_cli(src, small_model, "--out", tmp_path / "t.zarr"), "missing 1 of its", "stored chunks")
    chunk.write_bytes(data[: len(data) // 2])  # truncated
    one_error(evaluate_cli(src, small_model, "--out", tmp_path / "t.zarr"), "the raster is damaged")
    assert not (tmp_path / "t.zarr").exists() and not (tmp_path / ".partial-t.zarr").exists()


def test_rasterize_stores_every_chunk_and_marks_missing_ones(tmp_path):
    """A raster of ours has every chunk on disk, all-vacuum ones included, and NaN as the fill value."""
    from ednn_dask.raster import AtomsArrays, rasterize_to_zarr

    atoms = AtomsArrays(np.array([[1.0, 1.0], [2.4, 1.0]]), [6, 6], (52.0, 52.0))  # two atoms, mostly vacuum
    out = rasterize_to_zarr(atoms, tmp_path / "v.zarr", (0.1, 0.1), species=("C",), chunk=128)
    arr = zarr.open_group(str(out), mode="r")["raster"]
    assert arr.nchunks_initialized == arr.nchunks == 25 and np.isnan(arr.fill_value)
    assert zarr.open_group(str(out), mode="r").attrs["ednn_dask"]["kind"] == "raster"


@pytest.mark.parametrize("attrs,words", [({"n_atoms": "many"}, "n_atoms must be a positive integer"),
                                         ({"spacing": "fine"}, "spacing must be")])
def test_malformed_raster_attributes(tmp_path, field, small_model, attrs, words, evaluate_cli):  # noqa: F811
    src = write_raster(tmp_path / "r.zarr", field)
    zarr.open_group(str(src), mode="r+")["raster"].attrs.update(attrs)
    one_error(evaluate_cli(src, small_model), words)


# ---------------------------------------------------------------- one clear line, early

def test_bad_outputs_are_refused_before_the_run(tmp_path, raster, small_model, evaluate_cli):  # noqa: F811
    one_error(evaluate_cli(raster, small_model, "--out", tmp_path / "t.zarr", "--png", tmp_path / "nodir" / "m.png"),
              "does not exist")
    one_error(evaluate_cli(raster, small_model, "--out", tmp_path / "nodir" / "t.zarr"), "does not exist")
    one_error(evaluate_cli(raster, small_model, "--out", "/proc/t.zarr"), "not writable")
    one_error(evaluate_cli(raster, small_model, "--png", tmp_path / "m.png"), "--png needs --out")
    assert not (tmp_path / "t.zarr").exists() and not (tmp_path / ".partial-t.zarr").exists()


def test_bad_raster_is_refused_before_a_cluster_starts(tmp_path, field, small_model):  # noqa: F811
    bad = write_raster(tmp_path / "bad.zarr", field[:2])
    r = run("evaluate", bad, "--model", small_model, "--workers", "2")  # not --json: the dashboard line would show
    one_error(r, "2 channels")
    assert "dashboard" not in r.stderr


def test_failure_on_a_cluster_is_one_line_and_success_is_quiet_under_json(tmp_path, field, small_model):  # noqa: F811
    nan = write_raster(tmp_path / "nan.zarr", np.where(field > 5.9, np.nan, field).astype(np.float32))
    one_error(run("evaluate", nan, "--model", small_model, "--workers", "2", "--json"), "NaN")
    ok = write_raster(tmp_path / "ok.zarr", field)
    r = run("evaluate", ok, "--model", small_model, "--workers", "2", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert set(json.loads(r.stdout)) >= {"total", "tiles"}


def test_rasterize_then_evaluate_with_the_defaults(tmp_path):
    """The documented two-step workflow: both commands default to the same model."""
    from ednn_dask.systems.large import porous_graphene_arrays, save_atoms_npz

    sheet = save_atoms_npz(porous_graphene_arrays((50.0, 50.0), seed=3), tmp_path / "s.npz")
    r = run("rasterize", sheet, tmp_path / "s.zarr", "--quiet")
    assert r.returncode == 0, r.stderr
    stored = run("evaluate", tmp_path / "s.zarr", "--workers", "0", "--json")
    assert stored.returncode == 0, stored.stderr
    direct = run("evaluate", sheet, "--workers", "0", "--json")
    assert json.loads(stored.stdout)["total"] == pytest.approx(json.loads(direct.stdout)["total"], rel=1e-9)
    one_error(run("evaluate", tmp_path / "s.zarr", "--model", "hexagonal-sheet", "--workers", "0"),
              "1 channels, the model expects 3", "--model hexagonal-sheet")


@pytest.mark.parametrize("args,words", [
    (["evaluate", "s.zarr", "--chunk", "0"], "--chunk: must be at least 1"),
    (["evaluate"], "required: sheet"),
    (["make-sheet", "--size-um", "-1", "--out", "x.npz"], "--size-um: must be a positive number"),
    (["train", "ising", "--focus", "0", "--out", "m.pt2"], "--focus/-f: must be at least 1"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_are_one_line(cli, tmp_path, args, words):
    with pytest.raises(SystemExit) as exc:
        cli(*args, cwd=tmp_path)
    assert exc.value.code == 2


@pytest.mark.parametrize("args,words", [
    (["evaluate", "s.zarr", "--chunk", "0"], "--chunk: must be at least 1"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_are_one_line_through_the_cli(tmp_path, args, words):
    one_error(run(*args, cwd=tmp_path), words)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_resumes_its_own_interrupted_run(tmp_path, raster, small_model, evaluate_cli):  # noqa: F811
    """The same ``--overwrite`` command, interrupted and run again, resumes: finished chunks are reused."""
    out = tmp_path / "t.zarr"
    first = evaluate_cli(raster, small_model, "--out", out, "--chunk", "16", "--no-halo-sharing")
    assert first.returncode == 0, first.stderr
    again = evaluate_cli(raster, small_model, "--out", out, "--chunk", "16", "--no-halo-sharing", "--overwrite")
    assert again.returncode == 0, again.stderr
    partial = tmp_path / ".partial-t.zarr"
    import shutil

    shutil.copytree(out, partial)  # an interrupted --overwrite run: old map in place, unfinished one beside it
    root = zarr.open_group(str(partial), mode="r+")
    root["done"][0, 0] = False
    root["tiles"][2:4, 0:2] = root["tiles"][2:4, 0:2] + 0.25  # a finished chunk, marked done: must be reused
    resumed = evaluate_cli(raster, small_model, "--out", out, "--chunk", "16", "--no-halo-sharing", "--overwrite")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["total"] == pytest.approx(json.loads(first.stdout)["total"] + 4 * 0.25, rel=1e-12)
    assert not partial.exists() and not (tmp_path / ".old-t.zarr").exists()


def test_a_raster_replaced_at_the_same_path_is_read_afresh(tmp_path, field, small_model):  # noqa: F811
    """Workers cache open stores: a store replaced at the same path within one process must not be read as the old."""
    from ednn_dask.evaluate import evaluate

    src = tmp_path / "r.zarr"
    write_raster(src, field, chunks=(3, 16, 16))
    a = evaluate(src, small_model, chunk=16, scheduler="synchronous")
    import shutil

    shutil.rmtree(src)
    write_raster(src, np.tile(field, (1, 2, 1)), chunks=(3, 8, 8))  # other shape and chunks, same path
    b = evaluate(src, small_model, chunk=16, scheduler="synchronous")
    assert b.tiles == 2 * a.tiles and b.total == pytest.approx(2 * a.total, rel=1e-9)


def test_a_failed_rasterize_leaves_nothing_behind(tmp_path, monkeypatch):
    """A chunk fails while others still run: clean-up waits for them, so no half-written store is left in the way."""
    import time

    import ednn_dask.raster._store as store
    from ednn_dask.systems.large import porous_graphene_arrays

    real = store.raster_chunk

    def chunk(binned, iy, ix, *args, **kwargs):
        if (iy, ix) == (0, 0):
            raise RuntimeError("disk on fire")
        time.sleep(0.5)  # still drawing when the failure is raised
        return real(binned, iy, ix, *args, **kwargs)

    monkeypatch.setattr(store, "raster_chunk", chunk)
    atoms = porous_graphene_arrays((40.0, 40.0), seed=1)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.rasterize_to_zarr(atoms, tmp_path / "r.zarr", (0.10825317547305482, 0.10416666666666667), ("C",),
                                chunk=96, lattice=None)
    time.sleep(1.0)  # a task still running would write its chunk into the deleted store by now
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_a_file_only_when_the_block_succeeds(tmp_path):
    from ednn_dask._outputs import atomic_path

    out = tmp_path / "a.npz"
    out.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".npz" and tmp != out
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.npz"]
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_atomic_path_with_a_kind_replaces_only_a_store_of_ours(tmp_path):
    from ednn_dask._outputs import OutputError, atomic_path, marker

    out = tmp_path / "r.zarr"
    for value in ("first", "second"):
        with atomic_path(out, "raster") as tmp:
            zarr.open_group(str(tmp), mode="w", attributes={**marker("raster"), "value": value})
        assert zarr.open_group(str(out), mode="r").attrs["value"] == value
    assert [p.name for p in tmp_path.iterdir()] == ["r.zarr"]
    users = tmp_path / "users.zarr"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a raster store"):
        with atomic_path(users, "raster") as tmp:
            zarr.open_group(str(tmp), mode="w", attributes=marker("raster"))
    assert (users / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr", "users.zarr"]


@pytest.mark.parametrize("args", [["make-sheet", "--size-um", "0.01"], ["dataset", "ising", "--n", "20", "--L", "4"]])
def test_an_existing_out_file_is_replaced_only_with_overwrite(tmp_path, cli, args):
    out = tmp_path / "x.npz"
    out.write_bytes(b"the user's own file")
    one_error(cli(*args, "--out", out), f"{out} exists", "--overwrite")
    assert out.read_bytes() == b"the user's own file" and list(tmp_path.iterdir()) == [out]
    r = cli(*args, "--out", out, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.iterdir()) == [out]
    with np.load(out) as d:
        assert d.files  # the new file, complete


def test_an_out_file_that_appears_while_sampling_is_kept(tmp_path, cli, monkeypatch):
    from ednn_dask.systems.ising import IsingDataset

    out = tmp_path / "d.npz"
    real = IsingDataset.generate

    def generate(*args, **kwargs):
        out.write_bytes(b"written meanwhile by someone else")
        return real(*args, **kwargs)

    monkeypatch.setattr(IsingDataset, "generate", staticmethod(generate))
    one_error(cli("dataset", "ising", "--n", "20", "--L", "4", "--out", out), "appeared while it was being written")
    assert out.read_bytes() == b"written meanwhile by someone else" and list(tmp_path.iterdir()) == [out]
