"""What an evaluation gives back: the total and, for a model with a domain, how far it can be trusted."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EvaluationResult"]


@dataclass
class EvaluationResult:
    """Outcome of :func:`~ednn_dask.evaluate.evaluate`.

    Attributes
    ----------
    total : float
        Sum of all tile contributions (float64), in the model's units.
    per_atom : float or None
        ``total / n_atoms`` when the raster records its atom count.
    tiles, pixels : int
        Tiles and pixels evaluated.
    seconds : float
        Wall time of the computation.
    model : str
    out : str or None
        Zarr store with the tile-contribution map, if written.
    uncertainty : float or None
        For a model with a domain (``card.domain``): uncertainty (1 sigma) of
        ``total`` in the model's units, the root sum of squares of the per-tile
        uncertainties (:func:`ednn_dask.domain.tile_sigma`); out of the domain
        a lower bound at best. ``None`` for models without a domain.
    out_of_domain_tiles : int or None
        Tiles outside the model's domain (:func:`ednn_dask.domain.tile_flags`).
    out_of_domain_box : dict or None
        Where they are: the smallest box holding every such tile, as tile index
        ranges ``tiles_y``, ``tiles_x`` (start, stop; end-exclusive) and in Å from
        the raster origin, ``y``, ``x`` (tile edges). On the periodic sheet a
        range may cross the edge: then its start is larger than its stop.
        ``None`` when no tile is out.
    """

    total: float
    per_atom: float | None
    tiles: int
    pixels: int
    seconds: float
    model: str
    units: str = ""
    n_atoms: int | None = None
    out: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    uncertainty: float | None = None
    out_of_domain_tiles: int | None = None
    out_of_domain_box: dict[str, list] | None = None

    @property
    def out_of_domain_fraction(self) -> float | None:
        """Fraction of the tiles outside the model's domain (``None`` without a domain)."""
        if self.out_of_domain_tiles is None:
            return None
        return self.out_of_domain_tiles / self.tiles if self.tiles else 0.0

    def _where(self) -> str:
        """The out-of-domain box in words (Å), or ``""``."""
        box = self.out_of_domain_box
        if not box:
            return ""
        parts = []
        for axis in ("y", "x"):
            a, b = box[axis]
            parts.append(f"{axis} {a:.1f} to {b:.1f} Å" + (" (across the periodic edge)" if a > b else ""))
        return ", ".join(parts)

    @property
    def domain_warning(self) -> str | None:
        """One line on the tiles outside the model's domain, or ``None``."""
        n = self.out_of_domain_tiles
        if not n:
            return None
        stored = f" (map: out_of_domain in {self.out})" if self.out else ""
        return (f"{100 * self.out_of_domain_fraction:.3g} % of the tiles ({n:,} of {self.tiles:,}) are outside the "
                f"domain of model {self.model!r}, within {self._where()}{stored}; their contributions are "
                "extrapolations, not to be trusted")

    def as_json(self) -> dict[str, Any]:
        out = {
            "total": self.total,
            "per_atom": self.per_atom,
            "tiles": self.tiles,
            "pixels": self.pixels,
            "seconds": self.seconds,
            "model": self.model,
        }
        if self.uncertainty is not None:
            out.update(uncertainty=self.uncertainty,
                       uncertainty_per_atom=self.uncertainty / self.n_atoms if self.n_atoms else None,
                       out_of_domain=bool(self.out_of_domain_tiles), out_of_domain_fraction=self.out_of_domain_fraction,
                       out_of_domain_tiles=self.out_of_domain_tiles, out_of_domain_box=self.out_of_domain_box)
        return out
