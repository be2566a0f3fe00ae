"""Focus/context decomposition of periodic fields: where tiles are cut.

This is the only implementation of the tile math in the package. Training,
in-memory prediction and the Dask path all call :func:`extract_tiles`; the
in-memory paths obtain the context border from :func:`periodic_pad`, the Dask
path from ``map_overlap(boundary="periodic")`` which supplies the same pixels.

Layout conventions
------------------
A field has shape ``(batch, channels, *spatial)`` with one to three spatial
axes (e.g. ``(B, C, H, W)`` or ``(B, C, D, H, W)``). A tile has edge
``f + 2c`` pixels: a focus of ``f`` pixels plus ``c`` pixels of context on
each side. Tile ``(i, j)`` of a 2-D field covers the padded rows
``i*f : i*f + f + 2c`` (paper, ESI eqn for X_{b,i,j,d}).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import InputError

__all__ = [
    "check_tiling",
    "periodic_pad",
    "extract_tiles",
    "tile_field",
    "n_tiles",
]


def check_tiling(spatial_shape: Sequence[int], focus: int, context: int) -> tuple[int, ...]:
    """Validate a tiling and return the number of tiles along each axis.

    Parameters
    ----------
    spatial_shape : sequence of int
        Sizes of the spatial axes of the (unpadded) field, in pixels.
    focus : int
        Focus edge ``f`` in pixels, ``f >= 1``.
    context : int
        Context width ``c`` in pixels, ``c >= 0``.

    Returns
    -------
    tuple of int
        Tiles per axis, ``size // f`` for each spatial axis.

    Raises
    ------
    InputError
        (a ``ValueError``) If ``f < 1``, ``c < 0``, a size is not positive, or a size is not a
        multiple of ``f``; the message names the offending sizes.
    """
    if int(focus) != focus or focus < 1:
        raise InputError(f"focus f must be an integer >= 1, got {focus!r}")
    if int(context) != context or context < 0:
        raise InputError(f"context c must be an integer >= 0, got {context!r}")
    shape = tuple(int(s) for s in spatial_shape)
    if not 1 <= len(shape) <= 3:
        raise InputError(f"fields must have 1 to 3 spatial axes, got spatial shape {shape}")
    if any(s <= 0 for s in shape):
        raise InputError(f"field has an empty spatial axis: spatial shape {shape}")
    bad = [s for s in shape if s % focus]
    if bad:
        raise InputError(
            f"field size {'x'.join(map(str, shape))} is not a multiple of the focus f={focus} "
            f"(offending size(s): {', '.join(map(str, bad))})"
        )
    return tuple(s // focus for s in shape)


def n_tiles(spatial_shape: Sequence[int], focus: int) -> int:
    """Number of tiles of a field, the product of :func:`check_tiling` over axes."""
    out = 1
    for n in check_tiling(spatial_shape, focus, 0):
        out *= n
    return out


def periodic_pad(x: torch.Tensor, context: int, ndim: int = 2) -> torch.Tensor:
    """Pad the last ``ndim`` axes of ``x`` periodically by ``context`` pixels.

    Unlike ``torch.nn.functional.pad(mode="circular")`` this works for any
    ``context``, including ``context`` larger than the field (the field then
    wraps several times), which happens for small cells with a wide context.

    Parameters
    ----------
    x : torch.Tensor
        Field of shape ``(..., *spatial)``.
    context : int
        Pad width ``c`` in pixels on every side.
    ndim : int
        Number of trailing spatial axes to pad.

    Returns
    -------
    torch.Tensor
        Shape ``(..., *(s + 2c for s in spatial))``.
    """
    if context == 0:
        return x
    spatial = x.shape[x.dim() - ndim :]
    if context <= min(spatial) and x.dim() == ndim + 2:
        # fast path: one circular pad (valid while the border wraps at most once)
        return torch.nn.functional.pad(x, (context,) * (2 * ndim), mode="circular")
    for axis in range(x.dim() - ndim, x.dim()):
        size = x.shape[axis]
        idx = torch.arange(-context, size + context, device=x.device) % size
        x = x.index_select(axis, idx)
    return x


def extract_tiles(padded: torch.Tensor, focus: int, context: int, ndim: int = 2) -> torch.Tensor:
    """Cut tiles out of an already padded field.

    Parameters
    ----------
    padded : torch.Tensor
        Shape ``(B, C, *(n_k * f + 2c))``: a field whose context border is
        already present, from :func:`periodic_pad` or from a Dask overlap.
    focus, context : int
        Focus ``f`` and context ``c`` in pixels.
    ndim : int
        Number of spatial axes (1, 2 or 3).

    Returns
    -------
    torch.Tensor
        Shape ``(B, *n, C, *(f + 2c,) * ndim)`` where ``n`` is the tile grid,
        i.e. ``(B, nH, nW, C, t, t)`` in 2-D. It is a strided view when
        possible; callers reshape it to ``(-1, C, t, t)`` for the subnet.
    """
    if padded.dim() != ndim + 2:
        raise ValueError(
            f"expected a (batch, channels, {ndim} spatial) tensor, got shape {tuple(padded.shape)}"
        )
    inner = [s - 2 * context for s in padded.shape[2:]]
    check_tiling(inner, focus, context)
    t = focus + 2 * context
    out = padded
    for axis in range(2, 2 + ndim):
        out = out.unfold(axis, t, focus)
    # unfold appends window axes at the end: (B, C, *n, *t) -> (B, *n, C, *t)
    perm = [0, *range(2, 2 + ndim), 1, *range(2 + ndim, 2 + 2 * ndim)]
    return out.permute(perm)


def tile_field(x: torch.Tensor, focus: int, context: int, ndim: int = 2) -> torch.Tensor:
    """Periodically pad a field and cut it into tiles.

    Equivalent to ``extract_tiles(periodic_pad(x, c), f, c)``; see
    :func:`extract_tiles` for the output layout.
    """
    if x.dim() != ndim + 2:
        raise ValueError(
            f"expected a (batch, channels, {ndim} spatial) tensor, got shape {tuple(x.shape)}"
        )
    check_tiling(x.shape[2:], focus, context)
    return extract_tiles(periodic_pad(x, context, ndim), focus, context, ndim)
