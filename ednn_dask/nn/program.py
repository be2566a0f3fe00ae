"""A model file's field program, run as a tile network: one field per call, shape padding, bf16 and layout."""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

__all__ = ["FieldProgram"]


class FieldProgram(nn.Module):
    """Runs a program mapping one padded field ``(1, C, n_y f + 2c, n_x f + 2c)`` to ``(1, n_y, n_x)`` contributions.

    It serves an :class:`~ednn_dask.nn.EDNN` both ways: :meth:`forward_shared`
    evaluates whole windows (halo sharing), one field per call, and
    :meth:`forward` a batch of tiles, each as a field of one tile. The program takes fields of at least ``min_tiles`` tiles per
    axis; smaller ones are padded with zeros and the extra outputs dropped.
    A VALID conv network computes each tile from its own pixels only, so the
    padding changes no value, and the padded shape is a function of the
    input shape alone (every window of one shape runs the same kernels).
    One field per call because oneDNN splits a batch of several fields
    between threads differently for different thread counts: a batch of one
    keeps small windows bitwise equal on 1 and on 2 threads.

    Parameters
    ----------
    program : torch.nn.Module
        The field map (a loaded ``torch.export`` program's module, or a
        :class:`~ednn_dask.nn.ednn.FieldNet`). Never trained or moved: it is
        held outside the registered children.
    focus, context : int
        Tiling of the program, in pixels.
    min_tiles : int
        Fewest tiles per axis the program accepts.
    n_maps : int
        1: the program gives ``(1, n_y, n_x)`` contributions; 2: ``(1, 2, n_y, n_x)``,
        contributions and each tile's feature distance ``d2``.
    bf16 : bool
        Run the program under CPU bfloat16 autocast (the program itself
        casts the subnet's output back before the label scaling).
    channels_last : bool
        Run in the NHWC memory layout (a copy of the program with its
        weights in that layout): other oneDNN kernels, same arithmetic.
    """

    def __init__(self, program: nn.Module, focus: int, context: int, min_tiles: int = 1,
                 bf16: bool = False, channels_last: bool = False, n_maps: int = 1):
        super().__init__()
        if channels_last:
            with warnings.catch_warnings():  # torch's own deprecation notices from copying its tree specs
                warnings.simplefilter("ignore", FutureWarning)
                program = copy.deepcopy(program)
            program.to(memory_format=torch.channels_last)
        object.__setattr__(self, "program", program)
        self.focus, self.context, self.min_tiles = int(focus), int(context), int(min_tiles)
        self.bf16, self.channels_last = bool(bf16), bool(channels_last)
        self.n_maps = int(n_maps)

    def with_options(self, bf16: bool = False, channels_last: bool = False) -> FieldProgram:
        """The same program run with other precision or layout options."""
        return FieldProgram(self.program, self.focus, self.context, self.min_tiles, bf16, channels_last, self.n_maps)

    def supports_halo_sharing(self, focus: int) -> bool:
        return int(focus) == self.focus

    def forward_shared(self, padded: torch.Tensor, focus: int) -> torch.Tensor:
        """``(B, n_y, n_x)`` contributions of padded 2-D fields with ``n_k f + 2c`` pixels per axis."""
        return self.forward_shared_maps(padded, focus)[:, 0]

    def forward_shared_maps(self, padded: torch.Tensor, focus: int) -> torch.Tensor:
        """``(B, n_maps, n_y, n_x)``: contributions, and ``d2`` where the program gives it."""
        if int(focus) != self.focus:
            raise ValueError(f"this program evaluates focus {self.focus}, not {focus}")
        return torch.cat([self._one(padded[b : b + 1]) for b in range(padded.shape[0])])

    def _one(self, field: torch.Tensor) -> torch.Tensor:
        f, c = self.focus, self.context
        _, _, H, W = field.shape
        ny, nx = (H - 2 * c) // f, (W - 2 * c) // f
        need_y, need_x = max(ny, self.min_tiles), max(nx, self.min_tiles)
        x = field
        if (need_y, need_x) != (ny, nx):
            x = field.new_zeros((1, field.shape[1], need_y * f + 2 * c, need_x * f + 2 * c))
            x[:, :, :H, :W] = field
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = self.program(x)
        else:
            out = self.program(x)
        if self.n_maps == 1:
            out = out[:, None]
        return out[:, :, :ny, :nx]

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N,)`` contributions of ``(N, C, f + 2c, f + 2c)`` tiles (see :meth:`forward_maps`)."""
        return self.forward_maps(tiles)[:, 0]

    def forward_maps(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N, n_maps)`` of ``(N, C, f + 2c, f + 2c)`` tiles, each run alone as a field of one tile.

        One call per tile, each of the same shape: a tile's value does not
        depend on the other tiles of the batch, nor on the number of threads
        (a large field, e.g. all tiles laid out as one mosaic, would be split
        between threads differently for different thread counts).
        """
        return torch.cat([self._one(tiles[i : i + 1])[0, :, 0, 0][None] for i in range(tiles.shape[0])])
