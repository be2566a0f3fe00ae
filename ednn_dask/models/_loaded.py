"""A model loaded from disk: the EDNN, its metadata and card, and the halo-shared variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import config
from ..nn import EDNN, TileNet
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
        """An EDNN that evaluates whole chunks with halo sharing: the file's field program, run window by window.

        ``bf16=True`` runs the program under bfloat16 autocast (the label
        scaling, baseline and the float64 total stay float32/float64).
        ``window`` is the halo window in focus pixels (``EDNN(halo_window=)``;
        default ``ednn.predict.halo-window``). ``channels_last`` runs the
        program in the NHWC memory layout (default ``ednn.predict.channels-last``).

        Possible when the file holds a field program (``program.kind
        "field"``), which :func:`~ednn_dask.models.save_model` exports for VALID
        conv subnets whose total stride divides the focus. Results equal
        per-tile evaluation up to float32 summation order.

        Raises
        ------
        ModelFileError
            If the model does not allow it.
        """
        from ..nn.program import FieldProgram

        card = self.card
        net = self.ednn.tile_net
        if not card.halo_sharing_allowed or not isinstance(net, FieldProgram):
            raise ModelFileError(f"model {self.name!r} cannot run with halo sharing: {card.why_no_halo_sharing}")
        net = net.with_options(bf16=bf16, channels_last=bool(config.get("predict.channels-last", channels_last)))
        return EDNN(net, card.focus, card.context, halo_sharing=True, halo_window=window).eval()

    def tile_net(self) -> TileNet:
        """A trainable :class:`~ednn_dask.nn.TileNet` with this file's weights (for fine-tuning and re-saving).

        Rebuilt from the ``subnet`` spec and loaded strictly with every
        tensor of the exported program (the file's field or per-tile program).

        Raises
        ------
        ModelFileError
            If the file has no subnet spec or its weights do not fit it.
        """
        from ..nn import TileNet, build_subnet

        card = self.card
        if not card.subnet:
            raise ModelFileError(f"model {self.name!r} has no subnet spec to rebuild its network from")
        baseline = (card.focus, card.context, card.channels) if card.has_focus_baseline else None
        net = TileNet(build_subnet(card.subnet), focus_baseline=baseline)
        if card.n_maps == 2:
            from ..nn.domain import FeatureDomain

            net.domain = FeatureDomain(int(card.subnet["dense"][-1]))
        program = self.ednn.tile_net
        program = getattr(program, "program", None) or getattr(program, "fn", program)
        state = {k.removeprefix("tile_net."): v for k, v in program.state_dict().items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise ModelFileError(f"model {self.name!r}: its weights do not fit its subnet spec ({first})") from None
        return net

    def default_ednn(self) -> EDNN:
        """The EDNN of the model's own run mode: halo-shared when it allows it (``halo_shared_ok``), else per tile.

        The same automatic choice as :func:`ednn_dask.evaluate.evaluate` (:func:`.inference.resolve_mode`).
        """
        from .inference import build_ednn, resolve_mode

        return build_ednn(self, resolve_mode(self))

    @torch.no_grad()
    def predict_maps(self, fields: torch.Tensor, batch_size: int = 256, halo_sharing: bool | None = None
                     ) -> torch.Tensor:
        """Per-tile maps ``(B, n_maps, *n)`` of ``(B, C, *spatial)`` fields: contributions, and ``d2`` where fitted.

        ``n_maps`` is 2 for a model whose file carries a domain (``card.domain``), else 1.
        """
        from .inference import build_ednn, resolve_mode

        fields = fields.to(torch.float32)
        ednn = build_ednn(self, resolve_mode(self, halo_sharing))
        return torch.cat([ednn.tile_maps(fields[i : i + batch_size]) for i in range(0, fields.shape[0], batch_size)])

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
