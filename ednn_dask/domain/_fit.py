"""Fitting a model's domain on its training cells and calibrating its uncertainty on held-out cells."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..nn import EDNN, TileNet
from ..nn.domain import fit_feature_domain
from ..tiles import periodic_pad
from ._check import DomainSpec, assess, atom_scores

__all__ = ["fit_domain", "METHOD"]

METHOD = ("per-tile Mahalanobis distance d2 of the readout's input features from the training tiles'; "
          "displacement of the atoms from the lattice sites (as a temperature), bond-length fluctuations "
          "(as a temperature) and atomic environments")
#: most training tiles whose features are collected (about 300 MB of float32 for 128 features)
MAX_TILES = 600_000
#: quantile of the training cells' scores that bounds the domain
QUANTILE = 0.995
#: quantile of the training cells' bond temperatures that bounds the domain: the reading of one cell scatters
#: (±30 % for 60 atoms, ±5 % for 540), and cells at the top of the training range (test sets at its highest
#: temperature) should not be flagged for that scatter alone: with 0.995, 17 of 200 held-out porous cells
#: (50 of them at the training's top 1500 K) were, with 0.999 5
BOND_QUANTILE = 0.999


@torch.no_grad()
def _features(net: TileNet, fields: np.ndarray, focus: int, context: int, batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(fields), batch):
        z = net.subnet.shared_features(periodic_pad(torch.from_numpy(fields[i : i + batch]), context, 2), focus)
        out.append(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
    return torch.cat(out)


@torch.no_grad()
def _maps(net: TileNet, fields: np.ndarray, focus: int, context: int, batch: int = 64) -> np.ndarray:
    """``(N, 2, n_y, n_x)`` float64: contributions and ``d2``, as the exported program computes them."""
    model = EDNN(net, focus, context).eval()
    maps = [model.tile_maps(torch.from_numpy(fields[i : i + batch])) for i in range(0, len(fields), batch)]
    return torch.cat(maps).double().numpy()


def _cells(data: Mapping[str, np.ndarray]):
    for i in range(len(data["n_atoms"])):
        n = int(data["n_atoms"][i])
        yield data["positions"][i, :n, :2], data["numbers"][i, :n], data["cells"][i, :2]


def fit_domain(net: TileNet, focus: int, context: int, train: Mapping[str, np.ndarray],
               held: Mapping[str, np.ndarray], lattice: Mapping | None = None,
               stiffness: Mapping[str, float] | None = None, described: str = "") -> dict[str, Any]:
    """Fit ``net.domain`` on training cells, set the limits, calibrate the uncertainty; return the card's ``domain``.

    Parameters
    ----------
    net : TileNet
        A trained network with a VALID conv subnet; its :attr:`~TileNet.domain` is set.
    focus, context : int
    train, held : mapping
        Training and held-out cells as a dataset of ``ednn-dask dataset sheets``
        holds them: ``rasters``, ``positions``, ``numbers``, ``cells``, ``n_atoms``
        (and ``energies`` for ``held``).
    lattice : mapping, optional
        The model's lattice (atoms are registered onto it); with ``stiffness``
        (eV/Å² per species: the Einstein constants the training displacements
        were drawn with) the displacement temperature is a criterion.
    described : str
        What the training cells are, for the card.

    Returns
    -------
    dict
        The ``domain`` metadata: the limits of what averages over a cell
        (mean feature distances, displacement temperature) are the 99.5th
        percentile of the training cells'; those of extremes (one tile's
        feature distance, one atom's offset from its site) the largest
        training value; the 99.9th percentile of the training cells' bond temperature
        (:data:`BOND_QUANTILE`); the atomic environments seen; and the uncertainty
        scale with its held-out calibration.
    """
    net.eval()
    rasters = np.asarray(train["rasters"], dtype=np.float32)
    tiles_per_cell = int(np.prod([s // focus for s in rasters.shape[2:]]))
    keep = max(1, min(len(rasters), MAX_TILES // max(1, tiles_per_cell)))
    cells = np.random.default_rng(0).choice(len(rasters), keep, replace=False) if keep < len(rasters) else None
    fit_rasters = rasters if cells is None else rasters[np.sort(cells)]
    net.domain = fit_feature_domain(_features(net, fit_rasters, focus, context))
    flat = _maps(net, fit_rasters, focus, context)[:, 1].reshape(len(fit_rasters), -1)
    spec0 = DomainSpec(np.inf, np.inf, np.inf)
    scores = [assess(spec0, m).scores for m in flat]
    features = {"count": net.domain.features, "top_fraction": spec0.top_fraction, "window_tiles": spec0.window_tiles,
                "mean_d2_max": float(np.quantile([s["mean_d2"] for s in scores], QUANTILE)),
                "top_d2_max": float(np.quantile([s["top_d2"] for s in scores], QUANTILE)),
                "tile_d2_max": float(flat.max())}
    atoms: dict[str, Any] = {}
    if lattice is not None:
        spec_atoms = DomainSpec(np.inf, np.inf, np.inf, stiffness=dict(stiffness or {}), lattice=lattice)
        rows = [atom_scores(spec_atoms, xy, z, L) for xy, z, L in _cells(train)]
        atoms = {"environments": sorted(set().union(*(r["environments"] for r in rows))),
                 "bond_temperature_max": float(np.quantile([r["bond_temperature"] for r in rows], BOND_QUANTILE))}
        if stiffness:
            atoms.update(stiffness=dict(stiffness),
                         temperature_max=float(np.quantile([r["temperature"] for r in rows], QUANTILE)),
                         offset_max=float(max(r["max_offset"] for r in rows)))
    meta: dict[str, Any] = {"method": METHOD, "fitted_on": described or f"{len(rasters)} training cells",
                            "features": features, "atoms": atoms}
    meta["uncertainty"] = _calibrate(net, focus, context, held, meta, lattice)
    return meta


def _calibrate(net: TileNet, focus: int, context: int, held: Mapping[str, np.ndarray], meta: dict,
               lattice: Mapping | None) -> dict[str, Any]:
    """The uncertainty scales, fitted so that held-out in-domain errors have unit RMS z-score.

    ``sigma = s sqrt(sum d2)`` for rasters; where the atoms are known,
    ``sigma = s_T sqrt(sum d2 T / 1000 K)`` with ``T`` the bond temperature:
    the errors of MD cells grow with their temperature (the RMS z-score of
    the first form runs from 0.5 at 300 K to 1.7 at 2000 K on the bundled
    model's held-out cells), and this form is the maximum-likelihood one of
    ``sum d2 (T + T0)`` over ``T0 >= 0`` on them (``T0 = 0``). The calibration
    figures are those of the form ``predict`` uses.
    """
    from ..models.card import ModelCard

    rasters = np.asarray(held["rasters"], dtype=np.float32)
    maps = _maps(net, rasters, focus, context).reshape(len(rasters), 2, -1)
    d2 = maps[:, 1]
    err = maps[:, 0].sum(1) - np.asarray(held["energies"], dtype=np.float64)
    card = ModelCard({"domain": meta, "program": {"kind": "field", "outputs": ["contribution", "feature_distance2"]},
                      "input": {"lattice": dict(lattice)} if lattice is not None else {}})
    spec = DomainSpec.from_card(card)
    verdicts = [assess(spec, m, xy, z, L) for m, (xy, z, L) in zip(d2, _cells(held))]
    flagged = np.array([v.out_of_domain for v in verdicts])
    ok = ~flagged
    total = d2.sum(1)
    s = float(np.sqrt(np.mean(err[ok] ** 2 / total[ok]))) if ok.any() else 0.0
    out: dict[str, Any] = {"sigma_per_sqrt_d2": s}
    sigma = s * np.sqrt(total)
    T = np.array([v.scores.get("bond_temperature", np.nan) for v in verdicts])
    if ok.any() and np.isfinite(T[ok]).all():
        floor = float(np.quantile(T[ok], 0.01))
        var = total * np.maximum(T, floor) / 1000.0
        s_T = float(np.sqrt(np.mean(err[ok] ** 2 / var[ok])))
        out["thermal"] = {"sigma_per_sqrt_d2_kilokelvin": s_T, "temperature_floor": floor}
        sigma = s_T * np.sqrt(var)
    z = np.abs(err[ok]) / sigma[ok]
    per_atom = np.abs(err) / np.asarray(held["n_atoms"]) * 1e3
    out["calibration"] = {
        "held_out": int(len(err)), "flagged": int(flagged.sum()),
        "flagged_below_1_mev_per_atom": float(np.mean(flagged[per_atom < 1])) if (per_atom < 1).any() else 0.0,
        "within_1_sigma": float(np.mean(z <= 1)), "within_2_sigma": float(np.mean(z <= 2)),
        "within_3_sigma": float(np.mean(z <= 3)),
        "median_sigma_mev_per_atom": float(np.median(sigma / np.asarray(held["n_atoms"]) * 1e3)),
    }
    return out
