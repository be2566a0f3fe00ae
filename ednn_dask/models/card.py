"""The model card: the one reader of a model file's ``ednn.json``.

Every module that needs to know something about a model (its tiling, what
input it takes, its pixel spacing, species, lattice, units, accuracy) asks a
:class:`ModelCard`; none walks the JSON itself. The card is built from the
metadata dict that :func:`ednn_dask.models.read_metadata` has validated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["ModelCard", "RasterSettings"]


@dataclass(frozen=True)
class RasterSettings:
    """How to draw a raster for a sheet model: pixel spacing (Å, ``(h_y, h_x)``), species and channel mode.

    ``channels`` is ``"species"`` (one channel per species, in ``species``
    order) or ``"total"`` (one channel summing every species); ``lattice`` is
    the honeycomb the training cells sit on (structures are registered onto
    it), or ``None``.
    """

    spacing: tuple[float, float]
    species: tuple[str, ...]
    channels: str = "species"
    lattice: Mapping[str, Any] | None = None

    @property
    def n_channels(self) -> int:
        return len(self.species) if self.channels == "species" else 1


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about itself (``ednn.json``), with typed accessors.

    Parameters
    ----------
    metadata : dict
        The validated contents of ``ednn.json``.
    source : str
        Where the model came from, for messages and as a fallback name.
    """

    metadata: Mapping[str, Any]
    source: str = "<model>"

    # ---- identity
    @property
    def name(self) -> str:
        from pathlib import Path

        return str(self.metadata.get("name") or Path(self.source).stem)

    @property
    def description(self) -> str:
        return str(self.metadata.get("description", ""))

    # ---- tiling
    @property
    def focus(self) -> int:
        return int(self.metadata["focus"])

    @property
    def context(self) -> int:
        return int(self.metadata["context"])

    @property
    def ndim(self) -> int:
        return int(self.metadata["ndim"])

    @property
    def channels(self) -> int:
        return int(self.metadata["channels"])

    @property
    def tile(self) -> int:
        """Tile edge ``f + 2c`` in pixels."""
        return self.focus + 2 * self.context

    @property
    def tile_shape(self) -> list[int]:
        """``[channels, f + 2c, ...]``: the tiles the exported program takes."""
        return [self.channels, *[self.tile] * self.ndim]

    # ---- target
    @property
    def target_name(self) -> str:
        return str(self.metadata.get("target", {}).get("name", ""))

    @property
    def units(self) -> str:
        """Units of the predicted total (``eV``, ``J``, ...)."""
        return str(self.metadata.get("target", {}).get("units", ""))

    # ---- input
    @property
    def input_kind(self) -> str | None:
        """``"raster"`` (sheet models: rasters of atoms), ``"ising-spins"``, or ``None`` when unstated."""
        return self.metadata.get("input", {}).get("kind")

    @property
    def takes_atoms(self) -> bool:
        return self.input_kind == "raster"

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """``(h_y, h_x)`` in Å, or ``None`` for models without a physical pixel (Ising)."""
        value = self.metadata.get("pixel_spacing", {}).get("value")
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return (float(value), float(value))
        return (float(value[0]), float(value[-1]))

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("input", {}).get("species", ()))

    @property
    def lattice(self) -> Mapping[str, Any] | None:
        """The lattice the training cells sit on (``input.lattice``: kind, a, zigzag axis), or ``None``."""
        lat = self.metadata.get("input", {}).get("lattice")
        return dict(lat) if lat else None

    def raster_settings(self) -> RasterSettings:
        """How to rasterize structures for this model.

        Raises
        ------
        ValueError
            If the model does not take rasters of atoms.
        """
        if not self.takes_atoms or self.pixel_spacing is None:
            raise ValueError(f"model {self.name!r} does not take rasters of atoms")
        inp = self.metadata.get("input", {})
        return RasterSettings(self.pixel_spacing, self.species, inp.get("channels", "species"), self.lattice)

    # ---- how it can run
    @property
    def subnet(self) -> Mapping[str, Any]:
        return self.metadata.get("subnet") or {}

    @property
    def halo_sharing_allowed(self) -> bool:
        """The file declares a VALID conv subnet, so halo sharing is exact for it."""
        return self.subnet.get("type") == "conv" and self.subnet.get("padding") == "valid"

    @property
    def halo_sharing_default(self) -> bool:
        """Halo sharing is the model's own default (``halo_shared_ok``)."""
        return bool(self.metadata.get("halo_shared_ok")) and self.halo_sharing_allowed

    @property
    def label_scaling(self) -> Mapping[str, Any]:
        return self.metadata.get("label_scaling", {})

    @property
    def has_focus_baseline(self) -> bool:
        return "focus_baseline" in self.label_scaling

    # ---- what it was trained on and how good it is
    @property
    def accuracy(self) -> Mapping[str, Any]:
        return self.metadata.get("accuracy", {})

    @property
    def training(self) -> Mapping[str, Any]:
        return self.metadata.get("training", {})
