"""A model file (or checkpoint, or dataset) cannot run code; model metadata must match the program.

Every hostile file here is a real file of ours with one member changed or
added, whose payload would create a marker file. Each test checks that the
load is refused with a clear error and that the marker does not exist.
"""
import io
import json
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import ednn_dask.models
from ednn_dask.models import ModelFileError, load_model, read_metadata, save_model
from ednn_dask.nn import EDNN, ConvSubnet, DenseSubnet, TileNet
from ednn_dask.nn.subnets import ACTIVATIONS

BUNDLED = Path(ednn_dask.models.__file__).parent / "bundled"
CLI = [sys.executable, "-m", "ednn_dask.cli"]
META = {"name": "t", "channels": 1, "target": {"name": "energy", "units": "J"}, "pixel_spacing": {"value": 1.0}}


class _Touch:
    """Creates ``path`` when unpickled: ``open(path, "w")``, no shell needed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _rewrite(src, dst, edit=None, add=None):
    """Copy a model zip, passing each member (name below the top folder) through ``edit``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        for item in zin.infolist():
            rel = item.filename[len(root) + 1 :]
            data = zin.read(item)
            data = edit(rel, data) if edit else data
            if data is not None:
                zout.writestr(item, data)
        for rel, data in (add or {}).items():
            zout.writestr(f"{root}/{rel}", data)
    return dst


def _edit_json(member, change):
    def edit(rel, data):
        if rel != member:
            return data
        obj = json.loads(data)
        change(obj)
        return json.dumps(obj).encode()

    return edit


def _torch_save_with(payload) -> bytes:
    """A ``torch.save`` archive whose ``data.pkl`` is ``payload`` (protocol 2, as torch writes)."""
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = pickle.dumps(payload, protocol=2) if item.filename.endswith("/data.pkl") else zin.read(item)
            zout.writestr(item, data)
    return out.getvalue()


def _refused(path, marker, match="refusing to load"):
    for source in (path, Path(path).read_bytes(), io.BytesIO(Path(path).read_bytes())):
        with pytest.raises(ModelFileError, match=match):
            load_model(source)
        assert not Path(marker).exists(), "the payload ran"


def _cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=600)


def _assert_cli_refused(proc, marker):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ednn-dask: error:"), proc.stderr
    assert not Path(marker).exists(), "the payload ran"


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "PWNED"


@pytest.fixture(scope="module")
def ising_meta():
    return read_metadata(BUNDLED / "ising.pt2")


@pytest.fixture(scope="module")
def spins(tmp_path_factory):
    path = tmp_path_factory.mktemp("spins") / "spins.npy"
    np.save(path, np.random.default_rng(0).choice(np.array([-1, 1], dtype=np.int8), size=(2, 8, 8)))
    return path


@pytest.fixture(scope="module")
def ising_pt(tmp_path_factory, ising_meta):
    """A fresh TorchScript Ising model with the bundled model's metadata (predict accepts it)."""
    from ednn_dask.train.ising import build_ising_model

    return save_model(build_ising_model(1, 1), tmp_path_factory.mktemp("pt") / "ising.pt", ising_meta)


def _opaque_constant(src, dst, marker):
    """The reported attack: a constant torch loads with ``pickle.loads``."""
    entry = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    cfg = {"config": {"evil": entry}}
    return _rewrite(
        src, dst, _edit_json("data/constants/model_constants_config.json", lambda c: c.update(cfg)),
        {"data/constants/opaque_obj_0": pickle.dumps(_Touch(marker))},
    )


# ------------------------------------------------------------------ torch.export (.pt2)


def test_pt2_opaque_constant_is_refused(tmp_path, marker):
    evil = _opaque_constant(BUNDLED / "ising.pt2", tmp_path / "evil.pt2", marker)
    _refused(evil, marker, match=r"refusing to load: archive member 'data/constants/opaque_obj_0'")


def test_pt2_guard_code_is_refused(tmp_path, marker):
    code = f"open({str(marker)!r}, 'w').close() is None"
    evil = _rewrite(BUNDLED / "ising.pt2", tmp_path / "evil.pt2",
                    _edit_json("models/model.json", lambda m: m.update(guards_code=[code])))
    _refused(evil, marker, match="guard code")


def test_pt2_shape_expression_is_refused(tmp_path, marker):
    def change(m):  # torch hands expr_str to sympy.sympify, which evals it
        size = m["graph_module"]["graph"]["tensor_values"]["tiles"]["sizes"][0]["as_expr"]
        size["expr_str"] = f"(open({str(marker)!r}, 'w').close(), {size['expr_str']})[1]"

    evil = _rewrite(BUNDLED / "ising.pt2", tmp_path / "evil.pt2", _edit_json("models/model.json", change))
    _refused(evil, marker, match="shape expression")


@pytest.mark.parametrize("target", ["torch.ops.aten.save.default", "torch.serialization.os.system"])
def test_pt2_graph_calling_other_ops_is_refused(tmp_path, marker, target):
    node = {"target": target, "inputs": [{"name": "filename", "arg": {"as_string": str(marker)}, "kind": 1}],
            "outputs": [], "metadata": {}, "is_hop_single_tensor_return": None}
    evil = _rewrite(BUNDLED / "ising.pt2", tmp_path / "evil.pt2",
                    _edit_json("models/model.json", lambda m: m["graph_module"]["graph"]["nodes"].insert(0, node)))
    _refused(evil, marker, match=f"its graph calls '{target}'")


@pytest.mark.parametrize(
    "member", ["data/weights/model.pt", "data/constants/model.pt", "data/constants/custom_obj_0",
               "data/aotinductor/model/model.so", "models/other.json", "extra/more.pkl"]
)
def test_pt2_members_our_files_lack_are_refused(tmp_path, marker, member):
    evil = _rewrite(BUNDLED / "ising.pt2", tmp_path / "evil.pt2", add={member: _torch_save_with(_Touch(marker))})
    _refused(evil, marker, match=f"archive member '{member}' is not allowed")


def test_pt2_pickled_weight_is_refused(tmp_path, marker):
    def change(cfg):
        entry = next(iter(cfg["config"].values()))
        entry.update(use_pickle=True, path_name="weight_99")

    evil = _rewrite(BUNDLED / "ising.pt2", tmp_path / "evil.pt2",
                    _edit_json("data/weights/model_weights_config.json", change),
                    {"data/weights/weight_99": _torch_save_with(_Touch(marker))})
    _refused(evil, marker, match="not a raw tensor")


def test_pt2_sample_inputs_pickle_is_checked(tmp_path, marker):
    evil = _rewrite(BUNDLED / "ising.pt2", tmp_path / "evil.pt2",
                    lambda rel, d: _torch_save_with(_Touch(marker)) if rel == "data/sample_inputs/model.pt" else d)
    _refused(evil, marker, match=r"sample_inputs/model.pt/data.pkl'.*refers to (io|builtins).open")


def test_cli_predict_and_evaluate_refuse_a_hostile_pt2(tmp_path, marker, spins):
    ising = _opaque_constant(BUNDLED / "ising.pt2", tmp_path / "evil-ising.pt2", marker)
    _assert_cli_refused(_cli("predict", ising, spins), marker)
    porous = _opaque_constant(BUNDLED / "porous-graphene.pt2", tmp_path / "evil-porous.pt2", marker)
    _assert_cli_refused(_cli("evaluate", spins, "--model", porous, "--workers", "0", "--quiet"), marker)
    _assert_cli_refused(_cli("rasterize", spins, tmp_path / "out.zarr", "--model", porous), marker)


# ------------------------------------------------------------------ TorchScript (.pt)


class _SetState(nn.Module):
    """Scripted with a ``__setstate__`` that writes a file: it runs inside ``torch.jit.load``."""

    def __init__(self, path: str):
        super().__init__()
        self.w = torch.zeros(1)
        self.path = path

    @torch.jit.export
    def __getstate__(self) -> Tuple[Tensor, bool, str]:
        return (self.w, self.training, self.path)

    @torch.jit.export
    def __setstate__(self, state: Tuple[Tensor, bool, str]) -> None:
        self.w, self.training, self.path = state[0], state[1], state[2]
        torch.save(self.w, self.path)

    def forward(self, tiles: Tensor) -> Tensor:
        return tiles.sum((1, 2, 3)) + self.w


def _setstate_pt(dst, marker, meta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(_SetState(str(marker))), str(dst), _extra_files={"ednn.json": json.dumps(meta)})
    return dst


def test_pt_setstate_running_on_load_is_refused(tmp_path, marker, ising_pt):
    meta = {**read_metadata(ising_pt), "exported_as": "torchscript"}
    evil = _setstate_pt(tmp_path / "evil.pt", marker, meta)
    _refused(evil, marker, match=r"defines __getstate__\(\)|defines __setstate__\(\)")


def test_pt_forward_writing_a_file_is_refused(tmp_path, marker, ising_pt):
    def edit(rel, data):
        if rel.startswith("code/__torch__/ednn_dask/nn/ednn") and rel.endswith(".debug_pkl"):
            return None  # stale source ranges: torch.jit.load does without them
        if rel.startswith("code/__torch__/ednn_dask/nn/ednn") and rel.endswith(".py"):
            src = data.decode()
            head, sep, tail = src.partition("-> Tensor:\n")
            return (head + sep + f"    torch.save(tiles, {str(marker)!r})\n" + tail).encode()
        return data

    evil = _rewrite(ising_pt, tmp_path / "evil.pt", edit)
    _refused(evil, marker, match="calls aten::save")


def test_pt_data_pickle_with_foreign_global_is_refused(tmp_path, marker, ising_pt):
    evil = _rewrite(ising_pt, tmp_path / "evil.pt",
                    lambda rel, d: pickle.dumps(_Touch(marker), protocol=2) if rel == "data.pkl" else d)
    _refused(evil, marker, match=r"'data.pkl' is not allowed \(its pickle refers to (io|builtins).open\)")


def test_cli_predict_refuses_a_hostile_pt(tmp_path, marker, spins, ising_pt):
    evil = _setstate_pt(tmp_path / "evil.pt", marker, {**read_metadata(ising_pt), "exported_as": "torchscript"})
    _assert_cli_refused(_cli("predict", evil, spins), marker)


# ------------------------------------------------------------------ our own files still load


def _variants():
    for act in sorted(ACTIVATIONS):  # a new activation fails here until its ops are allowed
        yield f"dense-{act}", EDNN(TileNet(DenseSubnet((1, 3, 3), (8,), activation=act), 0.5, 2.0), 1, 1), 1
        for pad in ("valid", "same"):
            sub = ConvSubnet(2, 12, layers=[(4, 3, 2), (4, 3, 1)], dense=(8,), padding=pad, activation=act)
            yield f"conv-{pad}-{act}", EDNN(TileNet(sub, 1.0, 0.5, focus_baseline=(4, 4, 2)), 4, 4), 2
    yield "dense-3d", EDNN(TileNet(DenseSubnet((1, 3, 3, 3), (8,))), 1, 1, ndim=3), 1


@pytest.mark.parametrize("ext", [".pt2", ".pt"])
def test_every_subnet_we_build_saves_and_loads(tmp_path, ext):
    torch.manual_seed(0)
    for name, model, channels in _variants():
        if name.startswith("conv"):
            model.tile_net.focus_weights.normal_()
        path = save_model(model.eval(), tmp_path / f"{name}{ext}", {**META, "channels": channels})
        loaded = load_model(path)
        x = torch.randn(2, channels, *[2 * model.focus] * model.ndim)
        with torch.no_grad():
            torch.testing.assert_close(loaded.ednn(x), model(x), rtol=1e-5, atol=1e-5, msg=name)  # float32 sums


def test_bundled_models_load():
    for path in sorted(BUNDLED.glob("*.pt2")):
        assert load_model(path).metadata["exported_as"] == "torch.export"


# ------------------------------------------------------------------ metadata against the program


def _with_meta(src, dst, **changes):
    return _rewrite(src, dst, _edit_json("extra/ednn.json", lambda m: m.update(changes)))


def test_focus_edited_against_the_program_is_refused(tmp_path):
    bad = _with_meta(BUNDLED / "porous-graphene.pt2", tmp_path / "f16.pt2", focus=16)
    msg = r"model metadata says focus 16, context 24, 1 channel\(s\) \(tile 64 px\) but the program takes 56-px tiles"
    with pytest.raises(ModelFileError, match=msg):
        load_model(bad)
    both = _with_meta(BUNDLED / "porous-graphene.pt2", tmp_path / "both.pt2", focus=16, tile_shape=[1, 64, 64])
    with pytest.raises(ModelFileError, match="program takes 56-px tiles"):
        load_model(both)


def test_torchscript_metadata_is_checked_against_the_program(tmp_path, ising_pt):
    with pytest.raises(ModelFileError, match=r"\(tile 5 px\) but the program takes 3-px tiles"):
        load_model(_with_meta(ising_pt, tmp_path / "f3.pt", focus=3))
    # without the recorded traced input the trial call alone decides
    bare = _rewrite(_with_meta(ising_pt, tmp_path / "f3b.pt", focus=3), tmp_path / "bare.pt",
                    lambda rel, d: None if rel.startswith("traced_inputs") else d)
    with pytest.raises(ModelFileError, match=r"\(tile 5 px\) but the program fails on such tiles"):
        load_model(bare)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"tile_shape": [1, 64, 64]}, r"contradicts itself: tile_shape \[1, 64, 64\] but focus 8, context 24"),
        ({"context": "24"}, "context must be an integer >= 0, got '24'"),
        ({"focus": 0}, "focus must be an integer >= 1"),
        ({"channels": True}, "channels must be an integer >= 1"),
        ({"exported_as": "pickle"}, "exported_as must be one of"),
    ],
)
def test_metadata_that_contradicts_itself_is_refused(tmp_path, changes, match):
    bad = _with_meta(BUNDLED / "porous-graphene.pt2", tmp_path / "bad.pt2", **changes)
    with pytest.raises(ModelFileError, match=match):
        read_metadata(bad)
    with pytest.raises(ModelFileError, match=match):
        load_model(bad)


# ------------------------------------------------------------------ checkpoints and data files


def test_checkpoint_with_a_payload_is_refused(tmp_path, marker):
    from ednn_dask.train import TrainConfig, train
    from ednn_dask.train.ising import build_ising_model

    ck = tmp_path / "ck.pt"
    ck.write_bytes(_torch_save_with({"model": _Touch(marker), "epoch": 0}))
    x, y = torch.ones(4, 1, 4, 4), np.zeros(4)
    with pytest.raises(ValueError, match=f"cannot resume from {ck}: not a checkpoint ednn-dask wrote"):
        train(build_ising_model(1, 1), x, y, TrainConfig(epochs=1, progress=False), ck, resume=True)
    assert not marker.exists()


def _object_array(marker):
    return np.array([_Touch(marker), 1], dtype=object)


def test_object_array_npy_is_refused_by_predict(tmp_path, marker):
    evil = tmp_path / "evil.npy"
    np.save(evil, _object_array(marker), allow_pickle=True)
    proc = _cli("predict", "ising", evil)
    _assert_cli_refused(proc, marker)
    assert "Object arrays cannot be loaded when allow_pickle=False" in proc.stderr


def test_object_array_npz_is_refused_by_evaluate_and_training(tmp_path, marker):
    from ednn_dask.systems.ising import IsingDataset

    evil = tmp_path / "evil.npz"
    np.savez(evil, positions=_object_array(marker), numbers=np.ones(2), cell=np.eye(3),
             spins=_object_array(marker), energies=np.zeros(2), temperatures=np.zeros(2))
    proc = _cli("evaluate", evil, "--model", "porous-graphene", "--workers", "0", "--quiet")
    _assert_cli_refused(proc, marker)
    assert "is not an ednn-dask atoms .npz" in proc.stderr
    with pytest.raises(ValueError, match=f"{evil} is not an ednn-dask Ising dataset .npz"):
        IsingDataset.load(evil)
    assert not marker.exists()


def test_zarr_raster_with_a_pickle_codec_is_refused(tmp_path, marker):
    import zarr

    from ednn_dask.evaluate import EvaluationError
    from ednn_dask.evaluate._evaluate import open_raster

    store = tmp_path / "evil.zarr"
    root = zarr.open_group(str(store), mode="w", zarr_format=2)
    root.create_array("raster", shape=(1, 8, 8), chunks=(1, 8, 8), dtype="float32", compressors=None)[:] = 1.0
    meta_path = store / "raster" / ".zarray"
    meta = json.loads(meta_path.read_text())
    meta["compressor"] = {"id": "pickle"}
    meta_path.write_text(json.dumps(meta))
    for chunk in (store / "raster").glob("0*"):
        chunk.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(EvaluationError, match="cannot open"):
        arr, _ = open_raster(store)
        arr.compute()
    assert not marker.exists()
