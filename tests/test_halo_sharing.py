"""Halo-shared evaluation equals per-tile evaluation exactly (VALID CNN, f multiple of the stride)."""
import pytest
import torch

from ednn_dask.nn import EDNN, ConvSubnet, TileNet
from ednn_dask.train.sheets import SHEET_LAYERS

pytestmark = pytest.mark.crosspath  # every test here compares two code paths


@pytest.mark.parametrize(
    "layers,f,c,shape",
    [
        (SHEET_LAYERS, 40, 24, (2, 3, 120, 80)),
        ([(4, 3, 2), (6, 3, 1), (6, 3, 2)], 8, 6, (3, 1, 24, 40)),
        ([(4, 5, 1), (4, 3, 1)], 3, 3, (1, 2, 9, 12)),  # stride 1: any focus
    ],
)
def test_shared_equals_per_tile_float64(layers, f, c, shape):
    torch.manual_seed(0)
    sub = ConvSubnet(shape[1], f + 2 * c, layers, dense=(16, 8), padding="valid").double()
    net = TileNet(sub, offset=-0.7, scale=1.3)
    shared = EDNN(net, f, c)
    per_tile = EDNN(net, f, c, halo_sharing=False)
    assert shared.halo_sharing and not per_tile.halo_sharing
    x = torch.randn(*shape, dtype=torch.float64)
    with torch.no_grad():
        a, b = shared(x, per_tile=True), per_tile(x, per_tile=True)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))


def test_shared_equals_per_tile_float32_and_gradients():
    torch.manual_seed(1)
    sub = ConvSubnet(3, 88, SHEET_LAYERS, dense=(128,), padding="valid")
    net = TileNet(sub, offset=-50.0, scale=3.0, focus_baseline=(40, 24, 3))
    net.focus_weights.copy_(torch.tensor([0.3, -0.2, 0.1]))
    x = torch.randn(2, 3, 120, 120)
    shared, per_tile = EDNN(net, 40, 24), EDNN(net, 40, 24, halo_sharing=False)
    a, b = shared(x), per_tile(x)
    assert torch.allclose(a, b, rtol=1e-5)
    ga = torch.autograd.grad(a.sum(), list(net.parameters()))
    gb = torch.autograd.grad(b.sum(), list(net.parameters()))
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, rtol=1e-3, atol=1e-4 * float(v.abs().max()))


def test_not_offered_where_inexact():
    same = ConvSubnet(1, 24, [(4, 3, 2)], dense=(4,), padding="same")
    assert not EDNN(TileNet(same), 8, 8).halo_sharing
    valid = ConvSubnet(1, 22, [(4, 3, 2), (4, 3, 2)], dense=(4,), padding="valid")
    assert not EDNN(TileNet(valid), 6, 8).halo_sharing  # 6 is not a multiple of the stride 4
    with pytest.raises(ValueError, match="halo_sharing=True needs"):
        EDNN(TileNet(valid), 6, 8, halo_sharing=True)


def test_bf16_touches_only_the_subnet():
    from ednn_dask.nn.program import FieldProgram

    torch.manual_seed(3)
    f, c = 8, 4
    sub = ConvSubnet(3, f + 2 * c, [(4, 3, 2), (6, 3, 1)], dense=(8,), padding="valid")
    net = TileNet(sub, offset=-2.0, scale=0.0, focus_baseline=(f, c, 3)).eval()
    net.focus_weights.copy_(torch.tensor([-7.4, -3.1, 1.7]))
    fp32 = EDNN(FieldProgram(net.field_net(f), f, c), f, c, halo_sharing=True).eval()
    bf16 = EDNN(FieldProgram(net.field_net(f), f, c, bf16=True), f, c, halo_sharing=True).eval()
    x = torch.rand(2, 3, 40, 48) * 5
    with torch.no_grad():
        ref, low = fp32(x), bf16(x)
    # scale 0: only offset + baseline remain, which bf16 must leave exactly as in float32
    torch.testing.assert_close(low, ref, rtol=1e-12, atol=0)
    net.scale.fill_(1.0)
    with torch.no_grad():
        ref, low = fp32(x), bf16(x)
    assert not torch.equal(low, ref)  # the subnet did run in bf16
    torch.testing.assert_close(low, ref, rtol=0, atol=0.05 * float(ref.abs().max()))


def test_bf16_needs_halo_sharing(tmp_path):
    import numpy as np

    from ednn_dask.evaluate import EvaluationError, evaluate

    with pytest.raises(EvaluationError, match="bf16 needs halo sharing"):
        evaluate(np.ones((1, 64, 64), np.float32), "ising", bf16=True)
    with pytest.raises(EvaluationError, match="bf16 needs halo sharing"):
        evaluate(np.ones((3, 120, 120), np.float32), "hexagonal-sheet", bf16=True, halo_sharing=False)


@pytest.mark.parametrize("window", [8, 24, 40])
def test_windows_equal_one_pass(window):
    """Windows of the field (each with its own border) give the one-pass result; uneven last windows too."""
    torch.manual_seed(2)
    sub = ConvSubnet(2, 16, [(4, 3, 2), (6, 3, 1)], dense=(8,), padding="valid").double()
    net = TileNet(sub, offset=0.3, scale=2.0).eval()
    x = torch.randn(1, 2, 56, 40, dtype=torch.float64)
    whole = EDNN(net, 8, 4, halo_window=10**6).eval()
    windowed = EDNN(net, 8, 4, halo_window=window).eval()
    assert windowed.window_tiles == window // 8
    with torch.no_grad():
        a, b = whole(x, per_tile=True), windowed(x, per_tile=True)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_loaded_model_predict_chooses_halo_sharing():
    """In-memory prediction makes the evaluator's automatic choice: shared for VALID conv models, per tile otherwise."""
    from ednn_dask.models import get_model

    sheet = get_model("hexagonal-sheet")
    assert sheet.default_ednn().halo_sharing and not sheet.ednn.halo_sharing
    x = torch.rand(2, 3, 120, 120) * 6
    auto, per_tile = sheet.predict(x), sheet.predict(x, halo_sharing=False)
    torch.testing.assert_close(auto, per_tile, rtol=1e-6, atol=0)
    ising = get_model("ising")
    assert ising.default_ednn() is ising.ednn


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_channels_last_equals_nchw(dtype, tol):
    """The NHWC layout changes kernels, not arithmetic: same contributions to round-off, input left untouched."""
    from ednn_dask.nn.program import FieldProgram

    torch.manual_seed(3)
    sub = ConvSubnet(3, 24, [(4, 3, 2), (6, 3, 1)], dense=(8,), padding="valid").to(dtype)
    net = TileNet(sub, offset=-1.0, scale=0.7, focus_baseline=(8, 8, 3)).to(dtype).eval()
    net.focus_weights.normal_()
    x = torch.rand(2, 3, 40, 48, dtype=dtype)
    program = FieldProgram(net.field_net(8), 8, 8)
    nhwc_program = program.with_options(channels_last=True)
    assert nhwc_program.program.tile_net.subnet.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        nchw = EDNN(program, 8, 8, halo_window=16).eval()(x, per_tile=True)
        nhwc = EDNN(nhwc_program, 8, 8, halo_window=16).eval()(x, per_tile=True)
    assert x.is_contiguous()
    torch.testing.assert_close(nhwc, nchw, rtol=tol, atol=tol)
    assert not net.subnet.features[0].weight.is_contiguous(memory_format=torch.channels_last)  # a copy was converted
