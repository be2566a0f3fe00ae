"""Tiling against a plain numpy reference: loops and modulo indexing, no torch."""
import itertools

import numpy as np
import pytest
import torch

from ednn_dask.tiles import check_tiling, extract_tiles, n_tiles, periodic_pad, tile_field


def reference_tiles_2d(x: np.ndarray, f: int, c: int) -> np.ndarray:
    """Tile (i, j) = x[b, :, (i*f - c + a) % H, (j*f - c + d) % W] for a, d < f + 2c."""
    B, C, H, W = x.shape
    t = f + 2 * c
    out = np.empty((B, H // f, W // f, C, t, t), dtype=x.dtype)
    for i in range(H // f):
        for j in range(W // f):
            for a in range(t):
                for d in range(t):
                    out[:, i, j, :, a, d] = x[:, :, (i * f - c + a) % H, (j * f - c + d) % W]
    return out


def reference_tiles_3d(x: np.ndarray, f: int, c: int) -> np.ndarray:
    B, C, D, H, W = x.shape
    t = f + 2 * c
    out = np.empty((B, D // f, H // f, W // f, C, t, t, t), dtype=x.dtype)
    for i, j, k in itertools.product(range(D // f), range(H // f), range(W // f)):
        for a, b, d in itertools.product(range(t), repeat=3):
            out[:, i, j, k, :, a, b, d] = x[:, :, (i * f - c + a) % D, (j * f - c + b) % H, (k * f - c + d) % W]
    return out


@pytest.mark.parametrize(
    "shape,f,c",
    [
        ((2, 1, 8, 8), 1, 1),
        ((1, 2, 6, 9), 3, 2),  # uneven, non-square, multi-channel
        ((3, 1, 4, 10), 2, 0),  # no context
        ((1, 1, 4, 6), 2, 5),  # context wider than the field: wraps more than once
        ((2, 3, 5, 5), 5, 1),  # single tile
        ((1, 1, 12, 8), 4, 3),
    ],
)
def test_2d_tiles_match_numpy_reference(shape, f, c):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    got = tile_field(torch.from_numpy(x), f, c).numpy()
    np.testing.assert_array_equal(got, reference_tiles_2d(x, f, c))


@pytest.mark.parametrize("shape,f,c", [((1, 1, 4, 6, 2), 2, 1), ((2, 2, 3, 3, 6), 3, 2)])
def test_3d_tiles_match_numpy_reference(shape, f, c):
    x = np.random.default_rng(1).normal(size=shape)
    got = tile_field(torch.from_numpy(x), f, c, ndim=3).numpy()
    np.testing.assert_array_equal(got, reference_tiles_3d(x, f, c))


def test_focus_regions_partition_the_field():
    """The centres of all tiles, put back in place, reproduce the field exactly once."""
    x = torch.arange(2 * 12 * 18, dtype=torch.float64).reshape(1, 2, 12, 18)
    f, c = 3, 2
    tiles = tile_field(x, f, c)
    focus = tiles[..., c : c + f, c : c + f]  # (1, 4, 6, 2, 3, 3)
    rebuilt = focus.permute(0, 3, 1, 4, 2, 5).reshape(1, 2, 12, 18)
    assert torch.equal(rebuilt, x)


def test_periodic_pad_matches_numpy_wrap():
    x = np.random.default_rng(2).normal(size=(2, 1, 5, 7))
    for c in (0, 1, 4, 9):
        got = periodic_pad(torch.from_numpy(x), c).numpy()
        np.testing.assert_array_equal(got, np.pad(x, ((0, 0), (0, 0), (c, c), (c, c)), mode="wrap"))


def test_extract_tiles_on_prepadded_block_equals_tile_field():
    """The Dask path hands extract_tiles a block whose border comes from elsewhere."""
    x = torch.randn(1, 1, 8, 12)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (3, 3), (3, 3)), mode="wrap"))
    assert torch.equal(extract_tiles(padded, 4, 3), tile_field(x, 4, 3))


@pytest.mark.parametrize(
    "shape,f,c,match",
    [
        ((7, 8), 2, 1, r"7x8 is not a multiple of the focus f=2 \(offending size\(s\): 7\)"),
        ((9, 10), 3, 0, r"offending size\(s\): 10"),
        ((8, 8), 0, 1, "focus f must be an integer >= 1"),
        ((8, 8), 2, -1, "context c must be an integer >= 0"),
        ((0, 8), 2, 1, "empty"),
    ],
)
def test_bad_tilings_raise_clear_errors(shape, f, c, match):
    with pytest.raises(ValueError, match=match):
        check_tiling(shape, f, c)


def test_tile_field_rejects_wrong_rank():
    with pytest.raises(ValueError, match="expected a \\(batch, channels, 2 spatial\\)"):
        tile_field(torch.zeros(8, 8), 2, 1)


def test_n_tiles():
    assert n_tiles((128, 64), 64) == 2
    assert n_tiles((6, 6, 6), 3) == 8
