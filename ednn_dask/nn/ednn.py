"""The EDNN: tiles -> shared subnet -> per-tile contributions -> sum."""
from __future__ import annotations

import torch
from torch import nn

from .. import config
from ..tiles import extract_tiles, periodic_pad, check_tiling

__all__ = ["TileNet", "FieldNet", "EDNN", "slot_pattern"]


def slot_pattern(step: int, ndim: int) -> tuple[int, ...]:
    """Periods ``p_k`` of the per-tile batch slots: tiles ``g`` and ``g + p`` share a slot.

    ``prod(p) == step``: for 64 tiles in 2-D an 8 x 8 block of tiles fills a
    batch; when ``step`` is not an ``ndim``-th power the last axis takes it all.
    """
    side = round(step ** (1 / ndim))
    if side ** ndim == step:
        return (side,) * ndim
    return (1,) * (ndim - 1) + (step,)


class TileNet(nn.Module):
    """A subnet with the label scaling (and an optional linear baseline) applied per tile.

    ``contribution = scale * subnet(tile) + offset [+ w . focus_sums(tile)]``.
    Because every term acts on every tile, a field of ``n`` tiles gets ``n``
    offsets: the scaling keeps the prediction extensive (a min–max scaling of
    the *total* would not). This module is what gets exported and saved.

    The optional baseline is linear in the per-channel pixel sums of the
    tile's *focus* region. The focus regions partition the field, so summed
    over tiles it is exactly ``w . (pixel sums of the whole field)``: for
    per-species Gaussian channels that is a per-species energy times the
    number of atoms of each species (like the atomic reference energies of
    ML potentials). It removes the composition from what the network has to
    learn and stays exactly extensive.

    Parameters
    ----------
    subnet : torch.nn.Module
        Maps ``(N, C, *t)`` tiles to ``(N,)`` raw outputs.
    offset, scale : float
        Per-tile label offset and scale, in the units of the target.
    focus_baseline : (focus, context, channels), optional
        Enables the linear focus baseline for 2-D tiles; its weights start at 0.
    """

    def __init__(
        self,
        subnet: nn.Module,
        offset: float = 0.0,
        scale: float = 1.0,
        focus_baseline: tuple[int, int, int] | None = None,
    ):
        super().__init__()
        self.subnet = subnet
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.baseline = focus_baseline
        if focus_baseline is not None:
            self.register_buffer("focus_weights", torch.zeros(int(focus_baseline[2])))
        #: the training tiles' readout features (:class:`~ednn_dask.nn.domain.FeatureDomain`), once fitted
        self.domain: nn.Module | None = None

    @property
    def n_maps(self) -> int:
        """Values per tile: the contribution, and with a fitted :attr:`domain` the feature distance ``d2``."""
        return 1 if self.domain is None else 2

    def focus_sums(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` pixel sums of each tile's focus region."""
        f, c, _ = self.baseline
        return tiles[:, :, c : c + f, c : c + f].sum((2, 3))

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        out = self.subnet(tiles) * self.scale + self.offset
        if self.baseline is not None:
            out = out + self.focus_sums(tiles) @ self.focus_weights
        return out

    def supports_halo_sharing(self, focus: int) -> bool:
        """Whether the subnet can evaluate a whole padded field at once, exactly."""
        fn = getattr(self.subnet, "supports_halo_sharing", None)
        return bool(fn and fn(focus))

    def forward_shared(self, padded: torch.Tensor, focus: int) -> torch.Tensor:
        """``(B, n_y, n_x)`` contributions of a padded 2-D field (see ``ConvSubnet.forward_shared``).

        The subnet's output is cast to the dtype it has without autocast
        (that of the field and the label scaling) before it is scaled: under
        bfloat16 autocast only the subnet runs in bf16.
        """
        return self._shared_parts(padded, focus, distance=False)

    def forward_shared_maps(self, padded: torch.Tensor, focus: int) -> torch.Tensor:
        """``(B, n_maps, n_y, n_x)``: :meth:`forward_shared` and, with a :attr:`domain`, each tile's ``d2``."""
        if self.domain is None:
            return self.forward_shared(padded, focus)[:, None]
        return self._shared_parts(padded, focus, distance=True)

    def forward_maps(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N, n_maps)``: :meth:`forward` and, with a :attr:`domain`, each tile's ``d2``."""
        if self.domain is None:
            return self.forward(tiles)[:, None]
        z = self.subnet.tile_features(tiles)
        last = self.subnet.head[-1]
        out = (z @ last.weight[0] + last.bias[0]) * self.scale + self.offset
        if self.baseline is not None:
            out = out + self.focus_sums(tiles) @ self.focus_weights
        return torch.stack([out, self.domain(z)], 1)

    def _shared_parts(self, padded: torch.Tensor, focus: int, distance: bool) -> torch.Tensor:
        dtype = torch.float64 if torch.float64 in (padded.dtype, self.scale.dtype) else torch.float32
        if distance:
            feat = self.subnet.shared_features(padded, focus)
            raw, d2 = self.subnet.readout_shared(feat), self.domain(feat)
        else:
            raw = self.subnet.forward_shared(padded, focus)
        raw = torch.ops.aten._to_copy.default(raw, dtype=dtype)
        out = raw * self.scale + self.offset
        if self.baseline is not None:
            f, c, ch = self.baseline
            inner = padded[:, :, c : padded.shape[2] - c, c : padded.shape[3] - c]
            B, _, H, W = inner.shape
            sums = inner.reshape(B, ch, H // f, f, W // f, f).sum((3, 5))  # (B, C, ny, nx)
            # multiply and sum, not einsum/matmul: bfloat16 autocast leaves these in float32
            out = out + (sums * self.focus_weights[None, :, None, None]).sum(1)
        if distance:
            return torch.stack([out, torch.ops.aten._to_copy.default(d2, dtype=dtype)], 1)
        return out

    def field_net(self, focus: int) -> "FieldNet":
        """This network as a map of whole padded fields to per-tile contributions (what a model file exports)."""
        if not self.supports_halo_sharing(focus):
            raise ValueError(f"the subnet cannot evaluate whole fields exactly with focus {focus}")
        return FieldNet(self, focus)


class FieldNet(nn.Module):
    """``(B, C, n_y f + 2c, n_x f + 2c)`` padded fields -> ``(B, n_y, n_x)`` contributions of a :class:`TileNet`.

    The module :func:`~ednn_dask.models.save_model` exports (with dynamic
    batch and tile counts) for subnets that allow halo sharing.
    """

    def __init__(self, tile_net: TileNet, focus: int):
        super().__init__()
        self.tile_net = tile_net
        self.focus = int(focus)

    def forward(self, padded: torch.Tensor) -> torch.Tensor:
        """``(B, n_y, n_x)`` contributions, or ``(B, 2, n_y, n_x)`` with ``d2`` where the network has a domain."""
        if self.tile_net.domain is None:
            return self.tile_net.forward_shared(padded, self.focus)
        return self.tile_net.forward_shared_maps(padded, self.focus)


class EDNN(nn.Module):
    """Extensive deep neural network over periodic fields.

    Parameters
    ----------
    tile_net : torch.nn.Module
        Maps a batch of tiles ``(N, C, *t)`` to contributions ``(N,)`` in the
        target's units: a :class:`TileNet`, or a loaded model file's program
        (:class:`~ednn_dask.nn.program.FieldProgram` or the per-tile program).
        Halo sharing needs its ``forward_shared(padded, focus)``.

    In training mode (``train()``) the network runs in one pass over each
    field (halo sharing) or in plain batches of tiles; in evaluation mode
    (``eval()``) over fixed windows and fixed batch slots, so that a tile's
    contribution does not depend on how the field is chunked.
    focus, context : int
        Focus ``f`` and context ``c`` in pixels.
    ndim : int
        Number of spatial axes of the fields (2 for rasters, 3 for volumes).
    tile_batch : int or None
        Tiles per subnet call in per-tile mode; at inference every call
        gets exactly this many, and every tile sits at a batch slot fixed
        by its position in the whole field (see :meth:`_slotted_batches`).
        ``None`` takes ``ednn.predict.tile-batch`` from the config (64).
    halo_sharing : bool or None
        Evaluate the convolutions once per field instead of once per tile
        (exact; see :meth:`TileNet.forward_shared`). ``None`` turns it on
        whenever the subnet supports it for this focus.
    halo_window : int or None
        With halo sharing at inference, the conv stack runs over windows of
        at most this many focus pixels per edge (rounded down to a multiple
        of ``f``; each window carries its own ``c`` border), laid from the
        field's first tile. Every window of the same shape runs the same
        float32 kernels, so when chunk edges fall on window edges (the
        evaluator aligns them, see :func:`ednn_dask.evaluate.aligned_chunks`)
        a tile's contribution is bitwise the same whatever the chunking.
        ``None`` takes ``ednn.predict.halo-window`` (1000 px).
    """

    def __init__(
        self,
        tile_net: nn.Module,
        focus: int,
        context: int,
        ndim: int = 2,
        tile_batch: int | None = None,
        halo_sharing: bool | None = None,
        halo_window: int | None = None,
    ):
        super().__init__()
        check_tiling([focus] * ndim, focus, context)
        self.tile_net = tile_net
        self.focus, self.context, self.ndim = int(focus), int(context), int(ndim)
        self.tile_batch = config.get("predict.tile-batch", tile_batch)
        can_share = ndim == 2 and hasattr(tile_net, "forward_shared") and tile_net.supports_halo_sharing(self.focus)
        if halo_sharing and not can_share:
            raise ValueError("halo_sharing=True needs a 2-D VALID ConvSubnet with focus a multiple of its stride")
        self.halo_sharing = can_share if halo_sharing is None else bool(halo_sharing)
        #: halo window edge in focus pixels (``ednn.predict.halo-window`` when not given), fixed at construction
        self.halo_window = int(config.get("predict.halo-window", halo_window))

    @property
    def window_tiles(self) -> int:
        """Tiles per window edge in halo-shared inference (at least 1)."""
        return max(1, self.halo_window // self.focus)

    @property
    def tile_size(self) -> int:
        """Tile edge ``f + 2c`` in pixels."""
        return self.focus + 2 * self.context

    @property
    def n_maps(self) -> int:
        """Values the tile network gives per tile: 1 (the contribution) or 2 (and the feature distance ``d2``)."""
        return int(getattr(self.tile_net, "n_maps", 1))

    def contributions_from_padded(self, padded: torch.Tensor, tile_origin: tuple[int, ...] | None = None
                                  ) -> torch.Tensor:
        """Per-tile contributions ``(B, *n)`` of a field whose context border is present.

        The first map of :meth:`maps_from_padded` (see there).
        """
        return self.maps_from_padded(padded, tile_origin)[:, 0].contiguous()

    def maps_from_padded(self, padded: torch.Tensor, tile_origin: tuple[int, ...] | None = None) -> torch.Tensor:
        """Per-tile maps of a field whose context border is present: contributions, and ``d2`` where fitted.

        Parameters
        ----------
        padded : torch.Tensor
            ``(B, C, *(n_k f + 2c))``, e.g. a Dask block with its overlap.
        tile_origin : tuple of int, optional
            Index of the block's first tile in the whole field (per spatial
            axis; default all 0). Per-tile inference places each tile at a
            batch slot chosen from its index in the whole field, so a tile
            is computed the same way whichever block it arrives in.

        Returns
        -------
        torch.Tensor
            ``(B, n_maps, *n)``: map 0 holds one contribution per focus
            region; map 1, for a network with a fitted domain, each tile's
            feature distance ``d2`` (:class:`~ednn_dask.nn.domain.FeatureDomain`).
        """
        if self.halo_sharing:
            check_tiling([s - 2 * self.context for s in padded.shape[2:]], self.focus, self.context)
            if self.training:  # one pass over the whole field
                return self._shared_call(padded)
            return self._shared_windows(padded)
        tiles = extract_tiles(padded, self.focus, self.context, self.ndim)
        batch_grid = tiles.shape[: 1 + self.ndim]
        flat = tiles.reshape(-1, *tiles.shape[1 + self.ndim :])
        step = self.tile_batch or flat.shape[0]
        if self.training:
            out = torch.cat([self._tile_call(flat[i : i + step]) for i in range(0, flat.shape[0], step)])
        else:
            origin = tuple(tile_origin) if tile_origin is not None else (0,) * self.ndim
            # no fixed batch size (tile_batch 0 or None): one call over every tile, no slots to keep
            out = self._slotted_batches(flat, batch_grid, origin, step) if self.tile_batch else self._tile_call(flat)
        return out.reshape(*batch_grid, -1).movedim(-1, 1)

    def _tile_call(self, tiles: torch.Tensor) -> torch.Tensor:
        """``(N, n_maps)`` of a batch of tiles."""
        if self.n_maps == 1:
            return self.tile_net(tiles)[:, None]
        return self.tile_net.forward_maps(tiles)

    def _shared_call(self, padded: torch.Tensor) -> torch.Tensor:
        """``(B, n_maps, n_y, n_x)`` of one padded window."""
        if self.n_maps == 1:
            return self.tile_net.forward_shared(padded, self.focus)[:, None]
        return self.tile_net.forward_shared_maps(padded, self.focus)

    def _shared_windows(self, padded: torch.Tensor) -> torch.Tensor:
        """Halo-shared maps computed window by window (see ``halo_window``)."""
        f, c, w = self.focus, self.context, self.window_tiles
        ny, nx = ((s - 2 * c) // f for s in padded.shape[2:])
        out = padded.new_empty((padded.shape[0], self.n_maps, ny, nx))
        for y0 in range(0, ny, w):
            y1 = min(ny, y0 + w)
            for x0 in range(0, nx, w):
                x1 = min(nx, x0 + w)
                win = padded[:, :, y0 * f : y1 * f + 2 * c, x0 * f : x1 * f + 2 * c]
                out[:, :, y0:y1, x0:x1] = self._shared_call(win)
        return out

    def _slotted_batches(self, flat: torch.Tensor, batch_grid, origin: tuple[int, ...], step: int) -> torch.Tensor:
        """Run the tile network on batches of exactly ``step`` tiles, each tile at a slot fixed by its field index.

        Float32 kernels block a batch by position: the same tile can come
        out a few ulps apart at different positions of a batch, and which
        positions differ depends on the CPU (oneDNN picks its kernels by
        instruction set). So a tile's position is not left to the chunking:
        tile ``g`` (index in the whole field, ``origin`` + index in the block)
        goes to slot ``sum_k (g_k mod p_k) * stride_k`` of a ``step``-tile
        batch (:func:`slot_pattern`), the other slots hold zeros or other
        tiles of the block. Every call has the same shape and every tile the
        same slot in every chunking, the same arithmetic as halo sharing's
        aligned windows: in-memory, threaded and distributed tile maps are
        bitwise equal on any one machine.

        Blocks whose tile counts are multiples of ``p`` fill every slot; others
        run some zero tiles (a block of a single tile runs one batch).
        """
        n = flat.shape[0]
        pattern = slot_pattern(step, self.ndim)
        slot = torch.zeros(batch_grid, dtype=torch.long)
        stride = 1
        for k in range(self.ndim - 1, -1, -1):
            g = (torch.arange(batch_grid[1 + k]) + int(origin[k])) % pattern[k]
            shape = [1] * len(batch_grid)
            shape[1 + k] = -1
            slot = slot + (g * stride).reshape(shape)
            stride *= pattern[k]
        slot = slot.flatten()
        # rank of each tile among the tiles of its slot: tile i runs in batch rank[i]
        order = torch.argsort(slot, stable=True)
        counts = torch.bincount(slot, minlength=step)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(slot)
        rank[order] = torch.arange(n) - first[slot[order]]
        by_batch = torch.argsort(rank, stable=True)
        sizes = torch.bincount(rank).tolist()
        out = flat.new_empty((n, self.n_maps))
        start = 0
        for size in sizes:
            idx = by_batch[start : start + size]
            start += size
            batch = flat.new_zeros((step, *flat.shape[1:]))
            batch[slot[idx]] = flat[idx]
            out[idx] = self._tile_call(batch)[slot[idx]]
        return out

    def tile_contributions(self, x: torch.Tensor) -> torch.Tensor:
        """Per-tile contributions ``(B, *n)`` of periodic fields ``(B, C, *spatial)``."""
        return self.tile_maps(x)[:, 0].contiguous()

    def tile_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-tile maps ``(B, n_maps, *n)`` of periodic fields (see :meth:`maps_from_padded`)."""
        if x.dim() != self.ndim + 2:
            raise ValueError(
                f"expected a (batch, channels, {self.ndim} spatial) field, got shape {tuple(x.shape)}"
            )
        check_tiling(x.shape[2:], self.focus, self.context)
        return self.maps_from_padded(periodic_pad(x, self.context, self.ndim))

    def forward(self, x: torch.Tensor, per_tile: bool = False) -> torch.Tensor:
        """Predict the extensive quantity of each field in a batch.

        Parameters
        ----------
        x : torch.Tensor
            Fields ``(B, C, *spatial)``; each spatial size a multiple of ``f``.
        per_tile : bool
            Return the ``(B, *n)`` tile-contribution map instead of the sums.

        Returns
        -------
        torch.Tensor
            ``(B,)`` float64 totals, or ``(B, *n)`` contributions in the
            network's dtype. Totals are always reduced in float64: a float32
            sum of 16 384 tiles of a 128x128 Ising lattice alone is off by
            ~1e-2 J.
        """
        contrib = self.tile_contributions(x)
        if per_tile:
            return contrib
        return contrib.flatten(1).sum(1, dtype=torch.float64)
