"""The keys of a model file's ``ednn.json``, written in one place.

The builders here write every key the package stores; :class:`~ednn_dask.models.card.ModelCard`
reads them. Training code (``sheet_metadata``, ``ising_metadata``) assembles
the description of a model from these builders, and :func:`~ednn_dask.models.save_model`
adds what it knows from the network (:func:`export_fields`, :func:`label_scaling`).
"""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "META_NAME",
    "REQUIRED",
    "FORMATS",
    "RASTER",
    "ISING_SPINS",
    "model_metadata",
    "raster_input",
    "ising_input",
    "pixel_spacing",
    "target",
    "training",
    "export_fields",
    "label_scaling",
    "field_program",
    "TILES",
    "FIELD",
]

FORMAT = "ednn-dask-model"
FORMAT_VERSION = 2
#: the archive member that holds the metadata (``extra/ednn.json``)
META_NAME = "ednn.json"
#: keys without which a file is not a model (``save_model`` fills the first four from the network)
REQUIRED = ("focus", "context", "ndim", "channels", "target")
#: values of ``exported_as``: they pick the loader
FORMATS = ("torch.export", "torchscript")
#: values of ``input.kind``
RASTER = "raster"
ISING_SPINS = "ising-spins"
#: values of ``program.kind``: what the exported program takes. ``tiles``: ``(N, C, *t)`` tiles -> ``(N,)``
#: (format 1 files hold only this); ``field``: padded 2-D fields ``(B, C, n_y f + 2c, n_x f + 2c)`` ->
#: ``(B, n_y, n_x)`` contributions (halo sharing), one field per call, of at least ``min_tiles`` tiles per axis
TILES = "tiles"
FIELD = "field"

_RASTER_FORMULA = (
    "V_s(x, y) = sum over atoms of species s of Z exp(-r^2 / (2 gamma^2)), periodic; "
    "pixel (i, j) at (x, y) = (j h_x, i h_y)"
)


def model_metadata(
    name: str,
    description: str,
    channels: int,
    input: Mapping[str, Any],
    target: Mapping[str, Any],
    pixel_spacing: Mapping[str, Any],
    training: Mapping[str, Any],
    accuracy: Mapping[str, Any] | None = None,
    reference: str | None = None,
    halo_shared_ok: bool | None = None,
) -> dict[str, Any]:
    """What a trained model says about itself, before :func:`~ednn_dask.models.save_model` adds the export fields.

    ``reference``, ``halo_shared_ok`` (halo sharing is the model's default)
    and ``accuracy`` are stored only when given.
    """
    meta: dict[str, Any] = {
        "name": name,
        "description": description,
        "channels": channels,
        "input": dict(input),
        "target": dict(target),
        "pixel_spacing": dict(pixel_spacing),
        "training": dict(training),
    }
    if reference is not None:
        meta["reference"] = reference
    if halo_shared_ok is not None:
        meta["halo_shared_ok"] = bool(halo_shared_ok)
    if accuracy is not None:
        meta["accuracy"] = accuracy
    return meta


def raster_input(
    species: Sequence[str], channels: str, gamma: float, lattice: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``input`` of a sheet model: rasters of atoms, one channel per species (or ``"z"``: one Z-weighted channel).

    ``lattice`` is the honeycomb the training cells were registered onto;
    structures are registered onto it before prediction too.
    """
    out: dict[str, Any] = {
        "kind": RASTER,
        "species": list(species),
        "channels": channels,
        "gamma": gamma,
        "raster": _RASTER_FORMULA,
    }
    if lattice:
        out["lattice"] = dict(lattice)
    return out


def ising_input() -> dict[str, Any]:
    """``input`` of an Ising model: a lattice of ±1 spins."""
    return {"kind": ISING_SPINS, "values": [-1, 1], "layout": "(N, L, M) array of +-1 spins"}


def pixel_spacing(value: float | Sequence[float], units: str, axes: Sequence[str] | None = None) -> dict[str, Any]:
    """``pixel_spacing``: one value, or one per axis (``axes``, e.g. ``["y", "x"]``)."""
    out: dict[str, Any] = {"value": value if isinstance(value, (int, float)) else list(value)}
    if axes is not None:
        out["axes"] = list(axes)
    out["units"] = units
    return out


def target(name: str, units: str) -> dict[str, str]:
    """``target``: what the model predicts the total of, and its units."""
    return {"name": name, "units": units}


def training(data: str, config: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """``training``: the data (in words), the training settings, and anything else worth keeping (``symmetries``)."""
    return {"data": data, "config": dict(config), **extra}


def export_fields(fmt: str, focus: int, context: int, ndim: int, channels: int, versions: Mapping[str, str]) -> dict:
    """What :func:`~ednn_dask.models.save_model` records about the exported program (it adds ``tile_shape``).

    ``versions`` gives ``ednn_dask_version`` and ``torch_version``.
    """
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_as": fmt,
        "focus": focus,
        "context": context,
        "ndim": ndim,
        "channels": channels,
        "ednn_dask_version": versions["ednn_dask_version"],
        "torch_version": versions["torch_version"],
    }


def label_scaling(offset: float, scale: float, focus_weights: Sequence[float] | None = None) -> dict[str, Any]:
    """``label_scaling``: the per-tile affine map (and focus baseline) the exported network applies itself."""
    out: dict[str, Any] = {
        "offset": float(offset),
        "scale": float(scale),
        "per": "tile",
        "applied": "inside the exported network: contribution = scale * subnet(tile) + offset",
    }
    if focus_weights is not None:
        out["focus_baseline"] = {
            "weights": list(focus_weights),
            "applied": "inside the exported network: + weights . (per-channel pixel sums of the tile's focus)",
        }
    return out


#: names of the per-tile maps a field program gives, in order
OUTPUTS = ("contribution", "feature_distance2")


def field_program(min_tiles: int, n_maps: int = 1) -> dict[str, Any]:
    """``program`` of a file whose exported program maps whole padded fields to per-tile maps.

    ``n_maps`` 1: contributions ``(1, n_y, n_x)``; 2: ``(1, 2, n_y, n_x)``,
    contributions and feature distances (see ``domain``).
    """
    return {
        "kind": FIELD,
        "min_tiles": int(min_tiles),
        "outputs": list(OUTPUTS[:n_maps]),
        "takes": "one (1, C, n_y f + 2c, n_x f + 2c) field with its periodic border -> its per-tile outputs "
                 + ("(1, n_y, n_x)" if n_maps == 1 else f"({n_maps}, n_y, n_x) stacked as (1, {n_maps}, n_y, n_x)"),
    }
