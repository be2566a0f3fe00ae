"""The model file's field program: halo sharing runs the exported file itself, upgrades keep the numbers."""
from __future__ import annotations

import json
import zipfile

import pytest
import torch

from ednn_dask.cli import main
from ednn_dask.models import ModelFileError, load_model, read_card, save_model, upgrade_model
from ednn_dask.models import _save
from ednn_dask.nn import EDNN, ConvSubnet, TileNet
from ednn_dask.nn.program import FieldProgram

F, C = 8, 6


def _net(seed=0, channels=2):
    torch.manual_seed(seed)
    sub = ConvSubnet(channels, F + 2 * C, [(4, 3, 2), (6, 3, 1)], dense=(8,), padding="valid")
    net = TileNet(sub, offset=-1.5, scale=0.4, focus_baseline=(F, C, channels)).eval()
    net.focus_weights.copy_(torch.tensor([-0.3, 0.2][:channels]))
    return net


META = {"target": {"name": "energy", "units": "eV"}, "channels": 2, "halo_shared_ok": True}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    net = _net()
    return net, save_model(EDNN(net, F, C), tmp_path_factory.mktemp("m") / "m.pt2", META)


def test_a_valid_conv_model_file_holds_the_field_program(saved):
    net, path = saved
    card = read_card(path)
    assert card.field_program and card.halo_sharing_allowed and card.program["min_tiles"] == 2 and "min_batch" not in card.program
    with zipfile.ZipFile(path) as z:
        program = json.loads(z.read(next(n for n in z.namelist() if n.endswith("models/model.json"))))
    assert program["guards_code"] == []  # shape checks live in the graph, nothing for torch to exec


def test_halo_sharing_runs_the_file_without_our_network_classes(saved, monkeypatch):
    """Loaded and run with ConvSubnet and TileNet unusable: the file's program alone gives the contributions."""
    net, path = saved
    x = torch.rand(2, 2, 9 * F, 5 * F) * 3
    with torch.no_grad():
        want = EDNN(net, F, C, halo_window=10**6).eval()(x, per_tile=True)

    def refuse(*args, **kwargs):
        raise AssertionError("a network class of ours was used")

    monkeypatch.setattr(ConvSubnet, "__init__", refuse)
    monkeypatch.setattr(TileNet, "forward_shared", refuse)
    model = load_model(path)
    with torch.no_grad():
        got = model.halo_shared(window=10**6)(x, per_tile=True)
        per_tile = model.predict(x, per_tile=True, halo_sharing=False)
    assert isinstance(model.ednn.tile_net, FieldProgram)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)  # the same aten ops, float32 round-off
    torch.testing.assert_close(per_tile, want.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch, ny, nx", [(1, 1, 1), (1, 1, 4), (3, 5, 1), (1, 2, 2), (4, 3, 2)])
def test_fields_smaller_than_the_export_are_padded_up(saved, batch, ny, nx):
    """The program is exported for >= 2 fields of >= 2 x 2 tiles; smaller inputs give the same contributions."""
    net, path = saved
    program = load_model(path).ednn.tile_net
    x = torch.rand(batch, 2, ny * F + 2 * C, nx * F + 2 * C)
    with torch.no_grad():
        got, want = program.forward_shared(x, F), net.forward_shared(x, F)
    assert got.shape == (batch, ny, nx)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_bf16_program_keeps_scaling_and_baseline_in_float32(saved):
    net, path = saved
    model = load_model(path)
    x = torch.rand(1, 2, 6 * F, 6 * F) * 3
    with torch.no_grad():
        fp32, bf16 = model.halo_shared()(x, per_tile=True), model.halo_shared(bf16=True)(x, per_tile=True)
        net.scale.zero_()  # only offset and baseline left: bf16 must not touch them
        try:
            flat = FieldProgram(net.field_net(F), F, C, bf16=True).forward_shared(
                torch.nn.functional.pad(x, (C, C, C, C), mode="circular"), F)
            exact = FieldProgram(net.field_net(F), F, C).forward_shared(
                torch.nn.functional.pad(x, (C, C, C, C), mode="circular"), F)
        finally:
            net.scale.fill_(0.4)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, rtol=0, atol=0.05 * float(fp32.abs().max()))
    assert torch.equal(flat, exact)


def _per_tile_file(net, path, monkeypatch):
    """A file holding only the per-tile program, as files of model format 1 do."""
    with monkeypatch.context() as m:
        m.setattr(_save, "_field_ready", lambda net, focus: False)
        return save_model(EDNN(net, F, C), path, META)


def test_a_per_tile_file_runs_per_tile_and_says_how_to_upgrade(tmp_path, monkeypatch, capsys):
    net = _net(1)
    old = _per_tile_file(net, tmp_path / "old.pt2", monkeypatch)
    model = load_model(old)
    assert not model.card.field_program and model.card.halo_sharing_exact
    assert not model.default_ednn().halo_sharing
    with pytest.raises(ModelFileError, match="holds only the per-tile program.*upgrade-model"):
        model.halo_shared()
    assert main(["upgrade-model", str(old), str(tmp_path / "new.pt2")]) == 0
    assert "program field" in capsys.readouterr().out
    new = load_model(tmp_path / "new.pt2")
    assert new.card.halo_sharing_allowed and new.default_ednn().halo_sharing
    assert {k: v for k, v in new.metadata.items() if k not in ("program", "format_version")} == \
        {k: v for k, v in model.metadata.items() if k not in ("program", "format_version")}
    x = torch.rand(2, 2, 7 * F, 4 * F) * 3
    torch.testing.assert_close(new.predict(x), model.predict(x), rtol=1e-6, atol=1e-5)
    # the upgrade never replaces a file without --overwrite
    assert main(["upgrade-model", str(old), str(tmp_path / "new.pt2")]) == 2
    assert "exists" in capsys.readouterr().err


def test_upgrade_refuses_weights_that_do_not_fit_the_spec(tmp_path, monkeypatch):
    from ednn_dask.models import update_metadata

    old = _per_tile_file(_net(2), tmp_path / "old.pt2", monkeypatch)
    update_metadata(old, {"subnet": dict(read_card(old).subnet, dense=[16])})  # a spec the weights do not fit
    with pytest.raises(ModelFileError, match="do not fit its subnet spec"):
        upgrade_model(old, tmp_path / "new.pt2")
    assert not (tmp_path / "new.pt2").exists()
