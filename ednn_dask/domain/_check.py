"""Whether a structure or a region of a sheet lies in a model's domain, and how uncertain its energy is.

The card's ``domain`` (written by :func:`~ednn_dask.domain.fit_domain`) holds
what training looked like; :class:`DomainSpec` reads it, :func:`assess`
judges one structure from its per-tile feature distances ``d2`` (the model
file's second output) and, where there are atoms, from where they sit and
what they are bonded to; :func:`tile_flags` judges every tile of a sheet.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._atoms import bond_temperature, environments, site_offsets

__all__ = ["DomainSpec", "Verdict", "assess", "atom_scores", "tile_flags", "tile_sigma", "KB_EV"]

#: Boltzmann constant, eV/K
KB_EV = 8.617333262e-5


@dataclass(frozen=True)
class DomainSpec:
    """The limits of a model's domain, as fitted on its training cells (card ``domain``; keys in :func:`from_card`)."""

    mean_d2_max: float
    top_d2_max: float
    tile_d2_max: float
    top_fraction: float = 0.1
    window_tiles: int = 15
    sigma_per_sqrt_d2: float = 0.0
    temperature_max: float | None = None
    offset_max: float | None = None
    stiffness: Mapping[str, float] = field(default_factory=dict)
    environments: frozenset[str] = frozenset()
    lattice: Mapping | None = None
    bond_temperature_max: float | None = None
    sigma_thermal: float = 0.0
    temperature_floor: float = 0.0

    @classmethod
    def from_card(cls, card) -> DomainSpec | None:
        """The spec of a :class:`~ednn_dask.models.ModelCard`, or ``None`` where the model has no domain."""
        d = card.domain
        if d is None:
            return None
        f, atoms = d["features"], d.get("atoms") or {}
        thermal = d.get("uncertainty", {}).get("thermal") or {}
        return cls(float(f["mean_d2_max"]), float(f["top_d2_max"]), float(f["tile_d2_max"]),
                   float(f.get("top_fraction", 0.1)), int(f.get("window_tiles", 15)),
                   float(d.get("uncertainty", {}).get("sigma_per_sqrt_d2", 0.0)),
                   atoms.get("temperature_max"), atoms.get("offset_max"), dict(atoms.get("stiffness", {})),
                   frozenset(atoms.get("environments", ())), card.lattice, atoms.get("bond_temperature_max"),
                   float(thermal.get("sigma_per_sqrt_d2_kilokelvin", 0.0)), float(thermal.get("temperature_floor", 0.0)))


@dataclass
class Verdict:
    """What the domain check says about one structure.

    Attributes
    ----------
    out_of_domain : bool
    reasons : list of str
        Why, in words (empty when in the domain).
    sigma : float
        Uncertainty of the total (model units), calibrated on held-out
        training-like cells: ``sigma_thermal * sqrt(sum d2 * T / 1000 K)``
        with ``T`` the bond temperature (at least ``temperature_floor``) where
        the atoms are known and the model has that calibration, else
        ``sigma_per_sqrt_d2 * sqrt(sum d2)``; out of the domain it is a lower
        bound at best.
    scores : dict
        The measured values behind the verdict.
    """

    out_of_domain: bool
    reasons: list[str]
    sigma: float
    scores: dict


def _feature_scores(spec: DomainSpec, d2: np.ndarray) -> dict:
    flat = np.sort(np.asarray(d2, dtype=np.float64).ravel())
    top = flat[int((1 - spec.top_fraction) * flat.size):] if flat.size else flat
    return {"mean_d2": float(flat.mean()), "top_d2": float(top.mean()), "max_d2": float(flat.max())}


def atom_scores(spec: DomainSpec, xy: np.ndarray, numbers: np.ndarray, lengths_xy: Sequence[float]) -> dict:
    """Temperature of the displacements from the lattice sites, the largest displacement, the temperature
    of the bond-length fluctuations, the atomic environments (counts) and those the training cells never had.

    ``xy`` are the atoms as the user gave them: they are registered onto the
    model's lattice here, as the rasterizer does.
    """
    from ase.data import chemical_symbols

    from ..raster._register import registration

    out: dict = {}
    if spec.lattice is not None:
        xy = registration(xy, numbers, dict(spec.lattice), lengths_xy=lengths_xy).apply(xy, lengths_xy)
    if spec.lattice is not None and spec.stiffness:
        off = site_offsets(xy, float(spec.lattice["a"]), spec.lattice.get("origin", (0.0, 0.0)))
        off = off - off.mean(0)  # what the registration leaves of a uniform shift
        d2 = (off * off).sum(1)
        k = np.array([spec.stiffness.get(chemical_symbols[int(z)], np.nan) for z in numbers])
        # the median over atoms, robust to the few atoms that relax far from their sites at edges and
        # vacancies: k d^2 / (2 k_B) of in-plane thermal motion is T chi2_2 / 2, whose median is T ln 2
        e = (k * d2)[np.isfinite(k)] / (2 * KB_EV)
        out["temperature"] = float(np.median(e) / np.log(2.0)) if e.size else 0.0
        out["max_offset"] = float(np.sqrt(d2.max())) if d2.size else 0.0
    out["bond_temperature"] = bond_temperature(xy, numbers, lengths_xy)
    out["environments"] = environments(xy, numbers, lengths_xy)
    if spec.environments:
        out["unseen_environments"] = sorted(set(out["environments"]) - spec.environments)
    return out


def assess(spec: DomainSpec, d2: np.ndarray, xy: np.ndarray | None = None, numbers: np.ndarray | None = None,
           lengths_xy: Sequence[float] | None = None) -> Verdict:
    """The verdict on one structure from its ``d2`` tile map and, when given, its atoms (Å, in its cell)."""
    scores = _feature_scores(spec, d2)
    reasons = []
    if scores["mean_d2"] > spec.mean_d2_max:
        reasons.append(f"its tiles are unlike the training tiles (mean feature distance {scores['mean_d2']:.3g}, "
                       f"training up to {spec.mean_d2_max:.3g})")
    elif scores["top_d2"] > spec.top_d2_max:
        reasons.append(f"part of it is unlike the training tiles (feature distance of its "
                       f"{spec.top_fraction:.0%} most unusual tiles {scores['top_d2']:.3g}, training up to "
                       f"{spec.top_d2_max:.3g})")
    elif scores["max_d2"] > spec.tile_d2_max:
        reasons.append(f"one of its tiles is unlike any training tile (feature distance {scores['max_d2']:.3g}, "
                       f"training tiles up to {spec.tile_d2_max:.3g})")
    if xy is not None:
        scores.update(atom_scores(spec, xy, numbers, lengths_xy))
        t, off = scores.get("temperature"), scores.get("max_offset")
        if t is not None and spec.temperature_max is not None and t > spec.temperature_max:
            reasons.append(f"its atoms are displaced from the lattice sites as at {t:.0f} K (training up to "
                           f"{spec.temperature_max:.0f} K): strained or hotter than the training cells")
        elif off is not None and spec.offset_max is not None and off > spec.offset_max:
            reasons.append(f"an atom sits {off:.2f} Å from its lattice site (training up to {spec.offset_max:.2f} Å)")
        tb = scores.get("bond_temperature")
        if tb is not None and spec.bond_temperature_max is not None and tb > spec.bond_temperature_max:
            reasons.append(f"its bonds stretch and compress as at {tb:.0f} K (training up to "
                           f"{spec.bond_temperature_max:.0f} K): hotter or more disordered than the training cells")
        if scores.get("unseen_environments"):
            envs = scores["unseen_environments"]
            reasons.append(f"it has atomic environments the training cells never had ({', '.join(envs[:4])}"
                           f"{', ...' if len(envs) > 4 else ''}; X:YZ is an X atom bonded to Y and Z)")
    total = float(np.asarray(d2, dtype=np.float64).sum())
    if spec.sigma_thermal and "bond_temperature" in scores:
        T = max(scores["bond_temperature"], spec.temperature_floor)
        sigma = spec.sigma_thermal * float(np.sqrt(total * T / 1000.0))
    else:
        sigma = spec.sigma_per_sqrt_d2 * float(np.sqrt(total))
    return Verdict(bool(reasons), reasons, sigma, scores)


def tile_sigma(spec: DomainSpec, d2: np.ndarray) -> np.ndarray:
    """Per-tile uncertainty (model units): ``sigma_per_sqrt_d2 * sqrt(d2)``; a region's is their root sum of squares."""
    return spec.sigma_per_sqrt_d2 * np.sqrt(np.maximum(np.asarray(d2, dtype=np.float64), 0.0))


def tile_flags(spec: DomainSpec, d2: np.ndarray, periodic: bool = True) -> np.ndarray:
    """``bool`` map: tiles out of the domain, alone (``d2 > tile_d2_max``) or with their neighbourhood.

    A tile is also out when the mean ``d2`` of the ``window_tiles`` x
    ``window_tiles`` tiles around it (about a training cell) exceeds
    ``mean_d2_max``: the structure-level criterion applied locally, so that
    a strained or unusual region of a micrometre sheet is found where it is.
    """
    from scipy.ndimage import uniform_filter

    d2 = np.asarray(d2, dtype=np.float64)
    w = max(1, min(spec.window_tiles, *d2.shape))
    local = uniform_filter(d2, size=w, mode="wrap" if periodic else "nearest")
    return (d2 > spec.tile_d2_max) | (local > spec.mean_d2_max)
