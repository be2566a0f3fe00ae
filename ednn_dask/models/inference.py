"""How a model runs: decided once, from its card and the config, and handed on as a value.

:func:`resolve_mode` turns the user's wishes (``None`` = config, then the
model's own default) into a :class:`RunMode`; :func:`build_ednn` makes the
EDNN that runs in that mode. The evaluator resolves the mode on the client
and sends it to every worker, so all of them run the same kernels;
in-memory prediction uses the same two functions.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import config
from ..errors import EDNNError

__all__ = ["RunMode", "resolve_mode", "build_ednn"]


@dataclass(frozen=True)
class RunMode:
    """One way of running a model over fields.

    Attributes
    ----------
    halo_sharing : bool
        Run the conv stack once per window instead of once per tile (exact
        for VALID conv models whose stride divides the focus).
    window : int
        Halo window edge in pixels, a multiple of the focus (0 per tile).
    bf16 : bool
        bfloat16 autocast of the conv stack (halo sharing only).
    channels_last : bool
        NHWC memory layout of the conv stack (halo sharing only).
    tile_batch : int
        Tiles per call of the exported per-tile program.
    """

    halo_sharing: bool
    window: int = 0
    bf16: bool = False
    channels_last: bool = False
    tile_batch: int = 64

    def as_dict(self) -> dict:
        return {"halo_sharing": self.halo_sharing, "window": self.window, "bf16": self.bf16,
                "channels_last": self.channels_last, "tile_batch": self.tile_batch}


def resolve_mode(model, halo_sharing: bool | None = None, bf16: bool | None = None,
                 channels_last: bool | None = None, window: int | None = None) -> RunMode:
    """The :class:`RunMode` of ``model`` (a ``LoadedModel``, or the ``ModelCard`` of a file not yet loaded) for these wishes.

    ``halo_sharing=None`` is the model's own choice (its card's
    ``halo_sharing_default``, when the subnet allows it); ``True`` fails for
    a model that does not allow it; ``False`` runs per tile. ``bf16``
    (default off) needs halo sharing. ``channels_last`` defaults to
    ``ednn.predict.channels-last``, ``window`` (pixels) to
    ``ednn.predict.halo-window`` rounded down to a multiple of the focus.

    Raises
    ------
    EDNNError
        If the wishes contradict the model (halo sharing or bf16 where the model does not allow it).
    """
    loaded = getattr(model, "ednn", None)
    card = model if loaded is None else model.card
    f = card.focus
    tile_batch = int((loaded.tile_batch if loaded is not None else None) or config.get("predict.tile-batch"))
    if halo_sharing is None:
        halo_sharing = card.halo_sharing_default and card.halo_sharing_allowed
    elif halo_sharing and not card.halo_sharing_allowed:
        raise EDNNError(f"model {card.name!r} cannot run with halo sharing: {card.why_no_halo_sharing}")
    if bf16 and not halo_sharing:
        raise EDNNError(f"bf16 needs halo sharing, which model {card.name!r} does not allow")
    if not halo_sharing:
        return RunMode(False, tile_batch=tile_batch)
    win = int(config.get("predict.halo-window", window))
    return RunMode(True, max(1, win // f) * f, bool(bf16), bool(config.get("predict.channels-last", channels_last)),
                   tile_batch)


def build_ednn(model, mode: RunMode):
    """The EDNN that runs ``model`` in ``mode``, built once per model and mode."""
    cache = model.__dict__.setdefault("_by_mode", {})
    ednn = cache.get(mode)
    if ednn is None:
        if mode.halo_sharing:
            ednn = model.halo_shared(bf16=mode.bf16, window=mode.window, channels_last=mode.channels_last)
        elif mode.tile_batch == model.ednn.tile_batch:
            ednn = model.ednn  # the exported per-tile program as loaded
        else:
            from ..nn import EDNN

            card = model.card
            ednn = EDNN(model.ednn.tile_net, card.focus, card.context, ndim=card.ndim,
                        tile_batch=mode.tile_batch, halo_sharing=False).eval()
        cache[mode] = ednn
    return ednn
