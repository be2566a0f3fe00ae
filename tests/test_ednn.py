"""The EDNN module: tiles -> shared subnet -> sum; extensivity; subnets."""
import numpy as np
import pytest
import torch

from ednn_dask.nn import EDNN, ConvSubnet, DenseSubnet, TileNet
from ednn_dask.tiles import tile_field
from ednn_dask.train.ising import spins_to_fields


def test_forward_is_sum_of_subnet_on_each_tile():
    torch.manual_seed(0)
    sub = DenseSubnet((2, 7, 7), hidden=(16,))
    model = EDNN(TileNet(sub, offset=0.3, scale=2.0), focus=3, context=2)
    x = torch.randn(2, 2, 6, 9)
    tiles = tile_field(x, 3, 2)
    expected = torch.zeros(2, 2, 3)
    for b in range(2):
        for i in range(2):
            for j in range(3):
                expected[b, i, j] = 2.0 * sub(tiles[b, i, j][None])[0] + 0.3
    torch.testing.assert_close(model(x, per_tile=True), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(x), expected.flatten(1).double().sum(1), rtol=1e-5, atol=1e-6)


@pytest.mark.crosspath
def test_tile_batching_does_not_change_result():
    torch.manual_seed(1)
    x = torch.randn(3, 1, 12, 12)
    full = EDNN(TileNet(DenseSubnet((1, 6, 6), (8,))), 2, 2)
    batched = EDNN(full.tile_net, 2, 2, tile_batch=7)
    torch.testing.assert_close(full(x), batched(x))


@pytest.mark.crosspath
@pytest.mark.parametrize("ndim,grid,step", [(2, (5, 7), 64), (2, (9, 3), 7), (1, (70,), 64), (3, (3, 2, 5), 8)])
def test_per_tile_slots_follow_the_tile_index_in_the_field(ndim, grid, step):
    """A tile runs at batch slot sum_k (g_k mod p_k) stride_k of its index g in the whole field, whatever the block."""
    from ednn_dask.nn.ednn import slot_pattern

    seen = []

    class Record(torch.nn.Module):
        def forward(self, tiles):  # tiles carry their own id in pixel 0; returns 1000 * slot + id
            assert tiles.shape[0] == step
            seen.append(tiles.shape[0])
            return 1000.0 * torch.arange(step, dtype=torch.float32) + tiles.flatten(1)[:, 0]

    origin = (3, 1, 2)[:ndim]
    p = slot_pattern(step, ndim)
    model = EDNN(Record(), focus=1, context=0, ndim=ndim, tile_batch=step).eval()
    n = int(np.prod(grid))
    ids = torch.arange(1, 2 * n + 1, dtype=torch.float32).reshape(2, 1, *grid)  # two fields in one batch
    with torch.no_grad():
        out = model.contributions_from_padded(ids, tile_origin=origin)
    got_slot = torch.div(out, 1000, rounding_mode="floor")
    assert torch.equal(out - 1000 * got_slot, ids[:, 0])  # every tile came back to its own place
    index = np.indices(grid)
    want = np.zeros(grid, int)
    stride = 1
    for k in range(ndim - 1, -1, -1):
        want += ((index[k] + origin[k]) % p[k]) * stride
        stride *= p[k]
    assert np.array_equal(got_slot[0].numpy(), want) and np.array_equal(got_slot[1].numpy(), want)
    assert len(seen) == max(np.bincount(want.ravel())) * 2  # batches: the fullest slot, for both fields


def test_no_fixed_tile_batch_runs_one_call():
    calls = []

    class Count(torch.nn.Module):
        def forward(self, tiles):
            calls.append(tiles.shape[0])
            return tiles.flatten(1).sum(1)

    model = EDNN(Count(), focus=1, context=0, tile_batch=0).eval()
    with torch.no_grad():
        out = model(torch.ones(3, 1, 8, 10), per_tile=True)
    assert calls == [240] and out.shape == (3, 8, 10)


def test_3d_ednn_runs_with_dense_subnet():
    model = EDNN(TileNet(DenseSubnet((1, 4, 4, 4), (8,))), focus=2, context=1, ndim=3)
    out = model(torch.randn(2, 1, 4, 6, 2), per_tile=True)
    assert out.shape == (2, 2, 3, 1)


def test_trained_model_is_extensive(trained_ising, small_ising):
    """E(field tiled 2x3) == 6 E(field): the label scaling acts per tile."""
    model = trained_ising
    assert abs(float(model.tile_net.offset)) > 0.1  # scaling was fitted, not left at identity
    spins = small_ising.spins[:16]
    big = np.tile(spins, (1, 2, 3))
    with torch.no_grad():
        e1 = model(spins_to_fields(spins)).double()
        e6 = model(spins_to_fields(big)).double()
    torch.testing.assert_close(e6, 6 * e1, rtol=1e-5, atol=1e-4)


def test_label_scaling_of_totals_would_break_extensivity(trained_ising, small_ising):
    """Control: a min-max scaling of totals (the anti-pattern) is not extensive."""
    spins = small_ising.spins[:4]
    with torch.no_grad():
        e1 = trained_ising(spins_to_fields(spins)).double()
        e6 = trained_ising(spins_to_fields(np.tile(spins, (1, 2, 3)))).double()
    lo, hi = small_ising.energies.min(), small_ising.energies.max()
    rescale = lambda e: (e - lo) / (hi - lo)  # noqa: E731
    assert not torch.allclose(rescale(e6), 6 * rescale(e1), rtol=1e-3)


def test_paper_ising_subnet_shape():
    sub = DenseSubnet.paper_ising(1, 1)
    widths = [m.out_features for m in sub.net if isinstance(m, torch.nn.Linear)]
    assert widths == [32 * 9, 64, 64, 1]
    assert sub.net[0].in_features == 9


def test_paper_cnn_has_13_convs_and_2_dense():
    net = ConvSubnet.paper(1, 128)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    dense = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 13 and [d.out_features for d in dense] == [1024, 1]
    assert [c.stride[0] for c in convs].count(2) == 3
    assert net.feature_shape == (32, 16, 16)  # SAME: 128 / 8
    assert net(torch.randn(2, 1, 128, 128)).shape == (2,)


def test_valid_cnn_depends_only_on_its_tile_and_shrinks():
    net = ConvSubnet(1, 20, layers=[(4, 3, 2), (4, 3, 1)], dense=(8,), padding="valid")
    assert net.feature_shape == (4, 7, 7)
    assert net.total_stride == 2
    with pytest.raises(ValueError, match="shrinks a 128-pixel tile to nothing"):
        ConvSubnet.paper_valid(1, 128)
    assert ConvSubnet.paper_valid(1, 152)(torch.randn(1, 1, 152, 152)).shape == (1,)


def test_same_padding_matches_tensorflow_output_size():
    for size in (127, 128, 129):
        net = ConvSubnet(1, size, layers=[(2, 3, 2), (2, 4, 1)], dense=(4,), padding="same")
        assert net.feature_shape == (2, -(-size // 2), -(-size // 2))
        net(torch.randn(1, 1, size, size))
