"""Saved models: export/load round trips, metadata, refusal of unsafe or bare files."""
import io
import json
import warnings
import zipfile

import pytest
import torch

from ednn_dask.models import ModelFileError, bundled_models, get_model, load_model, read_metadata, save_model
from ednn_dask.nn import EDNN, ConvSubnet, TileNet

META = {"name": "test", "channels": 1, "target": {"name": "energy", "units": "J"}, "pixel_spacing": {"value": 1.0}}


@pytest.fixture(scope="module")
def exported(trained_ising, tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {fmt: save_model(trained_ising, d / f"ising{ext}", META) for fmt, ext in (("export", ".pt2"), ("ts", ".pt"))}


@pytest.mark.parametrize("fmt", ["export", "ts"])
def test_roundtrip_gives_identical_outputs(trained_ising, exported, fmt):
    loaded = load_model(exported[fmt])
    x = torch.randint(0, 2, (5, 1, 8, 12)).float() * 2 - 1
    with torch.no_grad():
        ref = trained_ising(x)
        assert torch.equal(loaded.ednn(x), ref)
        assert torch.equal(loaded.ednn(x, per_tile=True), trained_ising(x, per_tile=True))
        assert torch.equal(loaded.ednn(x[:1]), ref[:1])  # batch of one tile set: dynamic batch dim


def test_both_formats_agree_and_carry_metadata(exported, trained_ising):
    a, b = load_model(exported["export"]), load_model(exported["ts"])
    x = torch.randint(0, 2, (3, 1, 16, 16)).float() * 2 - 1
    assert torch.equal(a.predict(x), b.predict(x))
    for m in (a, b):
        assert m.metadata["focus"] == 1 and m.metadata["context"] == 1
        assert m.metadata["tile_shape"] == [1, 3, 3]
        assert m.metadata["label_scaling"]["offset"] == pytest.approx(float(trained_ising.tile_net.offset))
        assert m.metadata["subnet"]["type"] == "dense"
        assert "ednn_dask_version" in m.metadata
    assert a.metadata["exported_as"] == "torch.export" and b.metadata["exported_as"] == "torchscript"


def test_load_from_bytes(exported, trained_ising):
    for path in exported.values():
        data = path.read_bytes()
        m = load_model(data)
        x = torch.ones(1, 1, 4, 4)
        assert torch.equal(m.predict(x), trained_ising(x).double())
        assert load_model(io.BytesIO(data)).metadata == m.metadata


def test_loading_shows_no_jit_deprecation_warning(exported):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        load_model(exported["ts"])
    assert not [w for w in rec if "jit" in str(w.message).lower()]


def test_conv_subnet_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = EDNN(TileNet(ConvSubnet(2, 12, layers=[(4, 3, 2), (4, 3, 1)], dense=(8,), padding="valid"), 1.0, 0.5), 4, 4)
    path = save_model(model, tmp_path / "conv.pt2", {**META, "channels": 2})
    x = torch.randn(2, 2, 8, 16)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).ednn(x), model(x))
    assert read_metadata(path)["subnet"]["padding"] == "valid"


def test_refuses_torchscript_without_metadata(tmp_path, trained_ising):
    bare = tmp_path / "bare.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(trained_ising.tile_net, torch.zeros(2, 1, 3, 3)), str(bare))
    with pytest.raises(ModelFileError, match="has no EDNN metadata"):
        load_model(bare)


def test_refuses_pickle_and_garbage(tmp_path):
    pkl = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, pkl)  # a zip without ednn.json
    with pytest.raises(ModelFileError, match="no EDNN metadata"):
        load_model(pkl)
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match="not a readable model archive"):
        load_model(junk)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.pt2")


def test_refuses_foreign_or_incomplete_metadata(tmp_path):
    for meta, match in (({"hello": 1}, "not ednn-dask-model metadata"),
                        ({"format": "ednn-dask-model", "focus": 1}, "metadata lacks")):
        p = tmp_path / "m.pt2"
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("archive/extra/ednn.json", json.dumps(meta))
        with pytest.raises(ModelFileError, match=match):
            read_metadata(p)


def test_corrupt_network_gives_model_file_error(tmp_path, exported):
    src = zipfile.ZipFile(exported["export"])
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(bad, "w") as zf:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith(".json") and "ednn.json" not in item.filename:
                data = b"{broken"
            zf.writestr(item, data)
    with pytest.raises(ModelFileError, match="could not load the network"):
        load_model(bad)


def test_save_requires_metadata_keys(tmp_path, trained_ising):
    with pytest.raises(ModelFileError, match="target"):
        save_model(trained_ising, tmp_path / "x.pt2", {"channels": 1})
    assert not list(tmp_path.iterdir())


def test_bundled_ising_model_is_listed_and_loads():
    models = bundled_models()
    assert "ising" in models
    m = get_model("ising")
    assert m.metadata["focus"] == 1 and m.metadata["context"] == 1
    assert m.metadata["accuracy"]["test"]["median_ae"] <= 1e-3
    with pytest.raises(ModelFileError, match="unknown model 'nope'.*bundled: .*ising"):
        get_model("nope")


@pytest.mark.parametrize("ext", [".pt2", ".pt"])
def test_update_metadata_keeps_network_and_writes_strict_json(tmp_path, trained_ising, ext):
    from ednn_dask.models import update_metadata

    path = save_model(trained_ising, tmp_path / f"m{ext}", {**META, "bad": float("nan")})
    assert read_metadata(path)["bad"] is None  # NaN never reaches the file
    update_metadata(path, {"accuracy": {"test": {"median_ae": 0.5}}})
    m = load_model(path)
    assert m.metadata["accuracy"]["test"]["median_ae"] == 0.5 and m.metadata["focus"] == 1
    x = torch.ones(1, 1, 4, 4)
    with torch.no_grad():
        assert torch.equal(m.ednn(x), trained_ising(x))
    with zipfile.ZipFile(path) as zf:
        name = [n for n in zf.namelist() if n.endswith("ednn.json")][0]
        json.loads(zf.read(name), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
