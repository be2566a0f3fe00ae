"""Giving a model file its domain: fitted on a training dataset, calibrated on a held-out one, saved anew."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from ._fit import fit_domain

__all__ = ["add_domain", "fit_for_card"]


def fit_for_card(net, card, train_path: str | os.PathLike, held_path: str | os.PathLike) -> dict:
    """:func:`fit_domain` of ``net`` (a TileNet) on two ``ednn-dask dataset sheets`` datasets, for ``card``'s model."""
    from ..data.sheets import open_dataset
    from ..systems.sheets import EINSTEIN_K

    if not card.halo_sharing_exact:
        raise InputError(f"model {card.name!r}: a domain needs a VALID conv subnet (per-tile feature maps)")
    train = open_dataset(train_path, card.species, atoms=True)
    held = open_dataset(held_path, card.species, atoms=True)
    described = (f"{len(train['energies'])} cells of {Path(train_path).name} ({train['attrs'].get('kind')}, "
                 f"seed {train['attrs'].get('seed')}); calibrated on {len(held['energies'])} held-out cells of "
                 f"{Path(held_path).name} (seed {held['attrs'].get('seed')})")
    return fit_domain(net, card.focus, card.context, train, held, card.lattice, EINSTEIN_K, described)


def add_domain(model, train_path, held_path, out) -> Path:
    """Write ``model`` (a loaded sheet model) to ``out`` with a domain fitted on ``train_path`` and ``held_path``.

    The contributions of the new file are checked against the old one's on
    the held-out cells (float32 round-off) before it is kept.
    """
    from ..data.sheets import open_dataset
    from ..models import load_model, save_model
    from ..models._upgrade import _FROM_NETWORK
    from ..nn import EDNN

    card = model.card
    net = model.tile_net().eval()
    meta = {k: v for k, v in model.metadata.items() if k not in _FROM_NETWORK}
    meta["domain"] = fit_for_card(net, card, train_path, held_path)
    path = save_model(EDNN(net, card.focus, card.context), out, meta)
    probe = torch.from_numpy(open_dataset(held_path, card.species)["rasters"][:16])
    new = load_model(path)
    with torch.no_grad():
        a, b = model.predict(probe, per_tile=True), new.predict(probe, per_tile=True)
    if not torch.allclose(a, b, rtol=0, atol=1e-5 * float(a.abs().max())):
        Path(path).unlink(missing_ok=True)
        raise InputError(f"model {card.name!r}: the file with a domain gives other contributions; nothing written")
    return path
