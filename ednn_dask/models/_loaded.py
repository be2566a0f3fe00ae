"""A model loaded from disk: the EDNN, its metadata and card, and the halo-shared variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import config
from ..nn import EDNN
from ._errors import ModelFileError
from .card import ModelCard

__all__ = ["LoadedModel"]


@dataclass
class LoadedModel:
    """A model loaded from disk: the EDNN and its metadata.

    Attributes
    ----------
    ednn : EDNN
        Runs the exported tile network over tiles of any field.
    metadata : dict
        Contents of ``ednn.json``.
    source : str
        Where it came from (path, bundled name or ``<bytes>``).
    """

    ednn: EDNN
    metadata: dict[str, Any]
    source: str

    @property
    def card(self) -> ModelCard:
        """The :class:`~ednn_dask.models.card.ModelCard` of :attr:`metadata` (which it reads, not a copy)."""
        return ModelCard(self.metadata, self.source)

    @property
    def name(self) -> str:
        return self.card.name

    def halo_shared(self, bf16: bool = False, window: int | None = None, channels_last: bool | None = None) -> EDNN:
        """An EDNN that evaluates whole chunks with halo sharing, rebuilt from the file.

        ``bf16=True`` runs the conv stack and head under bfloat16 autocast
        (label scaling, baseline and the float64 total are unaffected).
        ``window`` is the halo window in focus pixels (``EDNN(halo_window=)``;
        default ``ednn.predict.halo-window``). ``channels_last`` runs the
        conv stack in the NHWC memory layout (``TileNet.use_channels_last``;
        default ``ednn.predict.channels-last``).

        Possible when the metadata describes a VALID conv subnet whose total
        stride divides the focus: the subnet is rebuilt from its ``subnet``
        spec and loaded with the exported network's own weights (strictly:
        every tensor must match). Results equal per-tile evaluation up to
        float32 summation order.

        Raises
        ------
        ModelFileError
            If the model does not allow it.
        """
        from ..nn import TileNet, build_subnet

        card = self.card
        if not card.halo_sharing_allowed:
            raise ModelFileError(f"model {self.name!r} has no VALID conv subnet: halo sharing is not exact for it")
        baseline = (card.focus, card.context, card.channels) if card.has_focus_baseline else None
        net = TileNet(build_subnet(card.subnet), focus_baseline=baseline)
        source = self.ednn.tile_net
        source = getattr(source, "fn", source)
        net.load_state_dict(source.state_dict(), strict=True)
        net.autocast_dtype = torch.bfloat16 if bf16 else None
        net.use_channels_last(bool(config.get("predict.channels-last", channels_last)))
        if not net.supports_halo_sharing(card.focus):
            raise ModelFileError(f"model {self.name!r}: focus is not a multiple of the subnet's stride")
        return EDNN(net.eval(), card.focus, card.context, halo_sharing=True, halo_window=window).eval()

    def default_ednn(self) -> EDNN:
        """The EDNN of the model's own run mode: halo-shared when it allows it (``halo_shared_ok``), else per tile.

        The same automatic choice as :func:`ednn_dask.evaluate.evaluate` (:func:`.inference.resolve_mode`).
        """
        from .inference import build_ednn, resolve_mode

        return build_ednn(self, resolve_mode(self))

    @torch.no_grad()
    def predict(
        self, fields: torch.Tensor, per_tile: bool = False, batch_size: int = 256, halo_sharing: bool | None = None
    ) -> torch.Tensor:
        """Totals (float64) or per-tile maps of ``(B, C, *spatial)`` fields.

        ``halo_sharing=None`` uses halo sharing whenever the model allows it
        (:meth:`default_ednn`); ``False`` runs the exported per-tile program;
        ``True`` fails for a model that does not allow it.
        """
        from .inference import build_ednn, resolve_mode

        fields = fields.to(torch.float32)
        ednn = build_ednn(self, resolve_mode(self, halo_sharing))
        outs = [
            ednn(fields[i : i + batch_size], per_tile=per_tile).double()
            for i in range(0, fields.shape[0], batch_size)
        ]
        return torch.cat(outs)
