"""Exporting a trained EDNN's tile network to a model file with its metadata."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..nn import EDNN
from ._archive import quiet_jit, replaced
from ._errors import ModelFileError
from ._metadata import dump_json
from ._schema import META_NAME, export_fields, field_program, label_scaling
from .card import ModelCard

__all__ = ["save_model"]


def format_of(path: str | os.PathLike) -> str:
    """The archive format a model file's extension chooses."""
    suffix = Path(path).suffix.lower()
    if suffix == ".pt2":
        return "torch.export"
    if suffix in (".pt", ".ts"):
        return "torchscript"
    raise ModelFileError(f"unknown model file extension {suffix!r}: use .pt2 (torch.export) or .pt/.ts (TorchScript)")


def save_model(model: EDNN, path: str | os.PathLike, metadata: dict[str, Any], example_batch: int = 4) -> Path:
    """Export ``model.tile_net`` and write it with its metadata.

    Parameters
    ----------
    model : EDNN
        Trained model; its ``tile_net`` (subnet + per-tile label scaling) is
        exported with a dynamic batch dimension.
    path : path
        Destination; the extension chooses the format (``.pt2`` or ``.pt``).
    metadata : dict
        Extra JSON-serialisable metadata (target, pixel spacing, training
        description, metrics, ...; see :mod:`ednn_dask.models._schema`).
        Focus, context, ndim, tile shape, label scaling, subnet and versions
        are filled in from ``model``; ``channels`` (default 1) is taken from here.
    example_batch : int
        Batch size of the example input used for tracing.

    Returns
    -------
    pathlib.Path
        The written file (written to a temporary name, then renamed).

    Raises
    ------
    ModelFileError
        If the metadata would not pass :meth:`ModelCard.validate` on loading;
        nothing is written then.
    """
    path = Path(path)
    fmt = format_of(path)
    net = model.tile_net.eval()
    channels = int(metadata.get("channels", 1))
    meta = {**metadata, **_network_fields(model, net, fmt, channels)}
    field = fmt == "torch.export" and model.ndim == 2 and _field_ready(net, model.focus)
    if field:
        meta["program"] = field_program(_FIELD_MIN, getattr(net, "n_maps", 1))
    ModelCard(meta, str(path)).validate()
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) as tmp:
        if field:
            _export_field(net, model.focus, model.context, channels, tmp, dump_json(meta))
        else:
            example = torch.zeros(example_batch, channels, *[model.tile_size] * model.ndim)
            _export(net, fmt, example, tmp, dump_json(meta))
    return path


#: the field program is exported for one field of at least 2 x 2 tiles: size-1 axes would specialise
#: the export (torch guards on them); smaller fields are padded up (``FieldProgram``)
_FIELD_MIN = 2


def _field_ready(net: torch.nn.Module, focus: int) -> bool:
    return hasattr(net, "field_net") and net.supports_halo_sharing(focus)


def _export_field(net, focus: int, context: int, channels: int, dest: Path, blob: str) -> None:
    """Export ``net.field_net(focus)`` over one padded field with dynamic tile counts."""
    n = _FIELD_MIN
    ny, nx = (torch.export.Dim(name, min=n) for name in ("ny", "nx"))
    # distinct example sizes, so that no two axes are taken to be equal
    example = torch.zeros(1, channels, (n + 1) * focus + 2 * context, (n + 2) * focus + 2 * context)
    dynamic = {"padded": {0: torch.export.Dim.STATIC, 2: focus * ny + 2 * context, 3: focus * nx + 2 * context}}
    with torch.no_grad():
        program = torch.export.export(net.field_net(focus).eval(), (example,), dynamic_shapes=dynamic,
                                      prefer_deferred_runtime_asserts_over_guards=True)
    program.example_inputs = None  # zeros: nothing worth storing
    torch.export.save(program, dest, extra_files={META_NAME: blob})


def _network_fields(model: EDNN, net: torch.nn.Module, fmt: str, channels: int) -> dict[str, Any]:
    """The metadata the network itself gives: tiling, versions, label scaling and subnet spec."""
    versions = {"ednn_dask_version": __version__, "torch_version": torch.__version__.split("+")[0]}
    fields = export_fields(fmt, model.focus, model.context, model.ndim, channels, versions)
    fields["tile_shape"] = ModelCard(fields).tile_shape
    if hasattr(net, "offset"):
        weights = net.focus_weights.tolist() if getattr(net, "baseline", None) is not None else None
        fields["label_scaling"] = label_scaling(float(net.offset), float(net.scale), weights)
    if hasattr(getattr(net, "subnet", None), "spec"):
        fields["subnet"] = net.subnet.spec
    return fields


def _export(net: torch.nn.Module, fmt: str, example: torch.Tensor, dest: Path, blob: str) -> None:
    """Write ``net`` traced on ``example`` to ``dest``, with ``blob`` as ``extra/ednn.json``."""
    with torch.no_grad():
        if fmt == "torch.export":
            dynamic = {"tiles": {0: torch.export.Dim.DYNAMIC}}
            program = torch.export.export(net, (example,), dynamic_shapes=dynamic)
            torch.export.save(program, dest, extra_files={META_NAME: blob})
        else:
            with quiet_jit():
                scripted = torch.jit.trace(net, example)
                torch.jit.save(scripted, str(dest), _extra_files={META_NAME: blob})
