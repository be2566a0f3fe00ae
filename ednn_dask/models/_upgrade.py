"""Re-saving a model file of an older format with the current one (the same weights, the same numbers)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..nn import EDNN
from ._archive import Source
from ._errors import ModelFileError
from ._load import load_model
from ._save import save_model

__all__ = ["upgrade_model"]

#: keys :func:`save_model` writes from the network; the upgraded file gets them afresh
_FROM_NETWORK = ("format", "format_version", "exported_as", "tile_shape", "program", "label_scaling", "subnet",
                 "ednn_dask_version", "torch_version")


def upgrade_model(source: Source, dest: str | os.PathLike, tiles: int = 64, seed: int = 0) -> Path:
    """Write ``source``'s network and metadata to ``dest`` in the current model format.

    For VALID conv models this adds the field program (halo sharing runs
    the file itself). The network is rebuilt once from the file's
    ``subnet`` spec and loaded with every one of its tensors; before
    anything is written, ``tiles`` random tiles are evaluated by the old
    program and by the rebuilt network, which must agree to float32
    round-off, and the written file is checked again the same way.

    Raises
    ------
    ModelFileError
        If the file cannot be rebuilt (no subnet spec, weights that do not
        fit it) or the numbers differ; ``dest`` is then not written (or removed).
    """
    old = load_model(source)
    card = old.card
    net = old.tile_net().eval()
    probe = torch.rand(tiles, *card.tile_shape, generator=torch.Generator().manual_seed(seed)) * 4
    with torch.no_grad():
        want = old.ednn.tile_net(probe)
        _check_close(net(probe), want, old.name, "the rebuilt network")
    meta = {k: v for k, v in old.metadata.items() if k not in _FROM_NETWORK}
    path = save_model(EDNN(net, card.focus, card.context, ndim=card.ndim), dest, meta)
    try:
        with torch.no_grad():
            _check_close(load_model(path).ednn.tile_net(probe), want, old.name, "the upgraded file")
    except ModelFileError:
        path.unlink(missing_ok=True)
        raise
    return path


def _check_close(got: torch.Tensor, want: torch.Tensor, name: str, what: str) -> None:
    scale = float(want.abs().max()) or 1.0
    worst = float((got - want).abs().max())
    if not worst <= 1e-5 * scale:
        raise ModelFileError(f"model {name!r}: {what} differs from the file's program by {worst:.3g} on random tiles")
