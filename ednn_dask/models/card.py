"""The model card: the one reader of a model file's ``ednn.json``.

Every module that needs to know something about a model (its tiling, what
input it takes, its pixel spacing, species, lattice, units, accuracy) asks a
:class:`ModelCard`; none walks the JSON itself. The card also owns the checks
that metadata must pass before a network is run with it
(:meth:`ModelCard.validate`, :meth:`ModelCard.check_program`). The keys are
written by the builders of :mod:`ednn_dask.models._schema`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from ._errors import ModelFileError
from ._schema import FIELD, FORMAT, FORMAT_VERSION, FORMATS, META_NAME, RASTER, REQUIRED, TILES

__all__ = ["ModelCard", "RasterSettings"]

#: whole-number tiling fields and their least allowed values
_WHOLE = (("focus", 1), ("context", 0), ("ndim", 1), ("channels", 1))


def _whole_number(key: str, doc: str) -> property:
    """A read-only card attribute: the whole number stored under ``key``."""
    return property(lambda card: int(card.metadata[key]), doc=doc)


@dataclass(frozen=True)
class RasterSettings:
    """How to draw a raster for a sheet model: pixel spacing (Å, ``(h_y, h_x)``), species and channel mode.

    ``channels`` is ``"species"`` (one channel per species, in ``species``
    order) or ``"z"`` (one Z-weighted channel for every species);
    ``lattice`` is the honeycomb the training cells sit on (structures are
    registered onto it), or ``None``.
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
        The contents of ``ednn.json`` (validated by :meth:`validate` when
        read from a file; the card reads the mapping it is given, not a copy).
    source : str
        Where the model came from, for messages and as a fallback name.
    """

    metadata: Mapping[str, Any]
    source: str = "<model>"

    @classmethod
    def of(cls, model: Any) -> ModelCard:
        """The card of a loaded model (``model.card``), of anything with ``metadata``, or of a metadata dict."""
        card = getattr(model, "card", None)
        if isinstance(card, cls):
            return card
        if isinstance(model, Mapping):
            return cls(model)
        return cls(model.metadata, str(getattr(model, "source", "<model>")))

    # ---- identity
    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or Path(self.source).stem)

    @property
    def description(self) -> str:
        return str(self.metadata.get("description", ""))

    @property
    def reference(self) -> str:
        """The reference method the labels came from (sheet models), or ``""``."""
        return str(self.metadata.get("reference", ""))

    # ---- the exported program
    @property
    def exported_as(self) -> str | None:
        """``"torch.export"`` or ``"torchscript"``: which loader reads the file."""
        return self.metadata.get("exported_as")

    @property
    def format_version(self) -> int:
        return int(self.metadata.get("format_version", 0))

    # ---- tiling
    focus = _whole_number("focus", "Focus edge ``f`` in pixels: each tile's contribution covers ``f^ndim`` pixels.")
    context = _whole_number("context", "Context (halo) ``c`` in pixels on every side of the focus.")
    ndim = _whole_number("ndim", "Spatial dimensions of the fields (2 for every bundled model).")
    channels = _whole_number("channels", "Input channels of each tile.")

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
    def _input(self) -> Mapping[str, Any]:
        return self.metadata.get("input", {})

    @property
    def input_kind(self) -> str | None:
        """``"raster"`` (sheet models: rasters of atoms), ``"ising-spins"``, or ``None`` when unstated."""
        return self._input.get("kind")

    @property
    def takes_atoms(self) -> bool:
        return self.input_kind == RASTER

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """``(h_y, h_x)`` in Å, or ``None`` for models without a pixel spacing."""
        value = self.metadata.get("pixel_spacing", {}).get("value")
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return (float(value), float(value))
        return (float(value[0]), float(value[-1]))

    @property
    def pixel_spacing_units(self) -> str:
        """``"Å"`` for sheet models, ``"lattice sites"`` for Ising, ``""`` when unstated."""
        return str(self.metadata.get("pixel_spacing", {}).get("units", ""))

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self._input.get("species", ()))

    @property
    def gamma(self) -> float | None:
        """Width (Å) of the Gaussians the rasters were drawn with (``input.gamma``), or ``None``."""
        value = self._input.get("gamma")
        return None if value is None else float(value)

    @property
    def lattice(self) -> Mapping[str, Any] | None:
        """The lattice the training cells sit on (``input.lattice``: kind, a, zigzag axis), or ``None``."""
        lat = self._input.get("lattice")
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
        return RasterSettings(self.pixel_spacing, self.species, self._input.get("channels", "species"), self.lattice)

    # ---- how it can run
    @property
    def subnet(self) -> Mapping[str, Any]:
        return self.metadata.get("subnet") or {}

    @property
    def program(self) -> Mapping[str, Any]:
        """What the exported program takes: ``kind`` ``"tiles"`` (per tile) or ``"field"`` (padded fields)."""
        program = self.metadata.get("program")
        return program if isinstance(program, Mapping) else {"kind": TILES}

    @property
    def n_maps(self) -> int:
        """Per-tile maps the program gives: 1 (contributions) or 2 (and feature distances, see :attr:`domain`)."""
        return len(self.program.get("outputs", ["contribution"])) if self.field_program else 1

    @property
    def domain(self) -> Mapping[str, Any] | None:
        """The domain of validity the file carries (feature statistics' threshold and calibration), or ``None``.

        Present only where the program gives feature distances (``n_maps`` 2).
        """
        domain = self.metadata.get("domain")
        return domain if isinstance(domain, Mapping) and self.n_maps == 2 else None

    @property
    def field_program(self) -> bool:
        """The exported program evaluates whole padded fields (halo sharing runs the file itself)."""
        return self.program.get("kind") == FIELD

    @property
    def halo_sharing_exact(self) -> bool:
        """The file declares a VALID conv subnet whose total stride divides the focus: halo sharing is exact."""
        from ..nn.subnets import halo_sharing_exact

        return self.ndim == 2 and halo_sharing_exact(self.subnet, self.focus)

    @property
    def halo_sharing_allowed(self) -> bool:
        """Halo sharing can run: the file holds the field program (which it only does where it is exact)."""
        return self.field_program and self.halo_sharing_exact

    @property
    def why_no_halo_sharing(self) -> str:
        """Why halo sharing cannot run, in words (``""`` where it can)."""
        if self.halo_sharing_allowed:
            return ""
        if self.halo_sharing_exact:
            return "its file holds only the per-tile program (re-save it with `ednn-dask upgrade-model`)"
        return "it has no VALID conv subnet whose stride divides the focus, so halo sharing would not be exact"

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

    def accuracy_of(self, test: str) -> Mapping[str, Any] | None:
        """Figures measured on one test: ``"test"`` (held out), ``"transfer"`` (Ising), ``"supercells"`` (sheets).

        ``None`` where the file records no such measurement.
        """
        figures = self.accuracy.get(test)
        return figures if isinstance(figures, Mapping) else None

    def accuracy_set(self, test: str) -> str:
        """What ``test`` was measured on, in words (``accuracy.<test>_set``; for supercells ``accuracy.supercells.set``)."""
        if f"{test}_set" in self.accuracy:
            return str(self.accuracy[f"{test}_set"])
        return str((self.accuracy_of(test) or {}).get("set", ""))

    @property
    def training(self) -> Mapping[str, Any]:
        return self.metadata.get("training", {})

    # ---- checks
    def validate(self, tile_shape: bool = True) -> ModelCard:
        """Refuse metadata a network cannot be run with; returns the card.

        The format is ours and not newer than this package, the required keys
        are there, focus, context, ndim and channels are whole numbers,
        ``exported_as`` names a loader, and (with ``tile_shape``) a stored
        ``tile_shape`` is the one those numbers give. The evaluator tiles
        fields with these numbers alone, so a wrong one would give a wrong
        total, not an error.

        Raises
        ------
        ModelFileError
            Naming :attr:`source` and the first value that fails.
        """
        meta, name = self.metadata, self.source
        if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
            raise ModelFileError(f"{name}: {META_NAME} is not {FORMAT} metadata")
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise ModelFileError(f"{name}: metadata lacks {', '.join(missing)}")
        if self.format_version > FORMAT_VERSION:
            raise ModelFileError(
                f"{name} uses model format {meta['format_version']}, newer than this ednn-dask "
                f"({FORMAT_VERSION}); upgrade ednn-dask"
            )
        for key, low in _WHOLE:
            value = meta[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ModelFileError(f"{name}: model metadata {key} must be an integer >= {low}, got {value!r}")
        if self.exported_as not in FORMATS:  # it picks the loader: never guess
            raise ModelFileError(f"{name}: model metadata exported_as must be one of {', '.join(FORMATS)}")
        self._check_program_kind()
        if tile_shape:
            self.check_tile_shape()
        return self

    def _check_program_kind(self) -> None:
        program, name = self.program, self.source
        if program.get("kind") not in (TILES, FIELD):
            raise ModelFileError(f"{name}: model metadata program.kind must be {TILES!r} or {FIELD!r}")
        if program["kind"] == FIELD:
            value = program.get("min_tiles")
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise ModelFileError(f"{name}: model metadata program.min_tiles must be an integer in 1..64")
            outputs = program.get("outputs", ["contribution"])
            if outputs not in (["contribution"], ["contribution", "feature_distance2"]):
                raise ModelFileError(f"{name}: model metadata program.outputs must be ['contribution'] or "
                                     "['contribution', 'feature_distance2']")
            if self.exported_as != "torch.export" or not self.halo_sharing_exact:
                raise ModelFileError(f"{name}: a field program needs torch.export and a VALID conv subnet "
                                     "whose stride divides the focus")

    def check_tile_shape(self) -> None:
        """``tile_shape``, where stored, is the one focus, context, ndim and channels give."""
        stored = self.metadata.get("tile_shape")
        if "tile_shape" in self.metadata and stored != self.tile_shape:
            raise ModelFileError(
                f"{self.source}: model metadata contradicts itself: tile_shape {stored} but "
                f"focus {self.focus}, context {self.context}, {self.channels} channel(s) give {self.tile_shape}"
            )

    def check_program(self, net: Any, program_shape: tuple | None) -> None:
        """The loaded program must take exactly the tiles this card describes.

        Compares the input shape the archive records (``(C, *t)``, or
        ``None`` where it records none) and makes one trial call on two zero
        tiles (cheap: one tile network call), which must give one value per tile.

        Raises
        ------
        ModelFileError
            Saying what the metadata promises and what the program takes.
        """
        import torch

        expected = tuple(self.tile_shape)
        says = (
            f"{self.source}: model metadata says focus {self.focus}, context {self.context}, "
            f"{self.channels} channel(s) (tile {self.tile} px)"
        )
        if program_shape is not None and tuple(program_shape) != expected:
            raise ModelFileError(f"{says} but the program takes {_describe_tiles(program_shape)}")
        try:
            with torch.no_grad():
                out = net(torch.zeros(2, *expected))
        except Exception as exc:  # a shape mismatch inside the network
            first = (str(exc).strip().splitlines() or [""])[0][:120]
            raise ModelFileError(f"{says} but the program fails on such tiles ({type(exc).__name__}: {first})") from None
        if tuple(out.shape) != (2,):
            raise ModelFileError(f"{says} but the program maps 2 such tiles to shape {list(out.shape)}, not [2]")
        if self.field_program:
            f, c = self.focus, self.context
            with torch.no_grad():
                out = net.forward_shared(torch.zeros(1, self.channels, 2 * f + 2 * c, 3 * f + 2 * c), f)
            if tuple(out.shape) != (1, 2, 3):
                raise ModelFileError(f"{says} but its field program maps a field of 2 x 3 tiles to "
                                     f"shape {list(out.shape)}, not [1, 2, 3]")


def _describe_tiles(shape: tuple) -> str:
    spatial = shape[1:]
    if len(set(spatial)) == 1:
        return f"{spatial[0]}-px tiles with {shape[0]} channel(s)"
    return f"tiles of shape {list(shape)}"
