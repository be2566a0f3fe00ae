"""Saving and loading models: the exported tile network plus its metadata.

A saved model is a single file:

* ``*.pt2`` — a ``torch.export`` archive (``torch.export.save``), or
* ``*.pt`` / ``*.ts`` — a TorchScript archive (``torch.jit.save``),

each carrying ``ednn.json`` as an extra file: focus, context, channels,
pixel spacing and units, label scaling, subnet spec, training description and
versions. The evaluator derives the halo (``c``) and the tiling from that
file alone; no Python class of ours is needed to run the network.

Loading reads and validates ``ednn.json`` straight from the zip archive
before touching the network, refuses files without it, and never runs the
general pickle unpickler: TorchScript archives are read by TorchScript's own
restricted loader and ``torch.export`` archives with
``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set, so weight blobs go through torch's
weights-only unpickler.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch

from .. import __version__, _json, config
from ..nn import EDNN

__all__ = ["ModelFileError", "LoadedModel", "save_model", "load_model", "read_metadata", "update_metadata", "FORMAT"]

FORMAT = "ednn-dask-model"
FORMAT_VERSION = 1
_META_NAME = "ednn.json"
_REQUIRED = ("focus", "context", "ndim", "channels", "target")

Source = Union[str, os.PathLike, bytes, io.BytesIO]


class ModelFileError(ValueError):
    """A model file is missing, unreadable or lacks valid EDNN metadata."""


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".pt2":
        return "torch.export"
    if suffix in (".pt", ".ts"):
        return "torchscript"
    raise ModelFileError(f"unknown model file extension {suffix!r}: use .pt2 (torch.export) or .pt/.ts (TorchScript)")


@contextlib.contextmanager
def _quiet_jit():
    # torch 2.13 deprecates torch.jit; the warning is noise for our users
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.*")
        yield


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
        description, metrics, ...). Focus, context, ndim, channels, tile
        shape, label scaling and versions are filled in from ``model``.
    example_batch : int
        Batch size of the example input used for tracing.

    Returns
    -------
    pathlib.Path
        The written file (written to a temporary name, then renamed).
    """
    path = Path(path)
    fmt = _format_of(str(path))
    net = model.tile_net.eval()
    channels = int(metadata.get("channels", 1))
    tile = [model.tile_size] * model.ndim
    meta = dict(metadata)
    meta.update(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exported_as": fmt,
            "focus": model.focus,
            "context": model.context,
            "ndim": model.ndim,
            "channels": channels,
            "tile_shape": [channels, *tile],
            "ednn_dask_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
        }
    )
    if hasattr(net, "offset"):
        meta["label_scaling"] = {
            "offset": float(net.offset),
            "scale": float(net.scale),
            "per": "tile",
            "applied": "inside the exported network: contribution = scale * subnet(tile) + offset",
        }
        if getattr(net, "baseline", None) is not None:
            meta["label_scaling"]["focus_baseline"] = {
                "weights": net.focus_weights.tolist(),
                "applied": "inside the exported network: + weights . (per-channel pixel sums of the tile's focus)",
            }
    if hasattr(getattr(net, "subnet", None), "spec"):
        meta["subnet"] = net.subnet.spec
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ModelFileError(f"metadata lacks required keys: {', '.join(missing)}")
    blob = _dump_json(meta)
    example = torch.zeros(example_batch, channels, *tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")  # same suffix: torch.export checks it
    with torch.no_grad():
        if fmt == "torch.export":
            program = torch.export.export(
                net, (example,), dynamic_shapes={"tiles": {0: torch.export.Dim.DYNAMIC}}
            )
            torch.export.save(program, tmp, extra_files={_META_NAME: blob})
        else:
            with _quiet_jit():
                scripted = torch.jit.trace(net, example)
                torch.jit.save(scripted, str(tmp), _extra_files={_META_NAME: blob})
    os.replace(tmp, path)
    return path


def _dump_json(meta: dict) -> str:
    return _json.dumps(meta, indent=1, sort_keys=True)


def update_metadata(path: str | os.PathLike, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the metadata of a saved model file, in place.

    Used to record accuracy measured after saving. The archive is rewritten
    to a temporary file and renamed, so a crash leaves the old file intact.

    Returns
    -------
    dict
        The new metadata.
    """
    path = Path(path)
    meta = read_metadata(path)
    meta.update(changes)
    blob = _dump_json(meta).encode("utf-8")
    tmp = path.with_name(f".tmp-{path.name}")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = blob if item.filename.rsplit("/", 1)[-1] == _META_NAME else src.read(item)
            dst.writestr(item, data)
    os.replace(tmp, path)
    return meta


def _open_zip(source: Source) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray)):
        return zipfile.ZipFile(io.BytesIO(source))
    if isinstance(source, io.BytesIO):
        source.seek(0)
        return zipfile.ZipFile(source)
    return zipfile.ZipFile(source)


def read_metadata(source: Source) -> dict[str, Any]:
    """Read and validate the metadata of a model file without loading the network.

    Raises
    ------
    ModelFileError
        If the file is missing, not a model archive, or has no valid
        ``ednn.json``.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray, io.BytesIO)) else str(source)
    try:
        with _open_zip(source) as zf:
            entries = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == _META_NAME]
            if not entries:
                raise ModelFileError(
                    f"{name} has no EDNN metadata ({_META_NAME}); refusing to load a model "
                    "whose focus, context and scaling are unknown"
                )
            meta = json.loads(zf.read(entries[0]).decode("utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {name}") from None
    except (zipfile.BadZipFile, IsADirectoryError, PermissionError, OSError) as exc:
        raise ModelFileError(f"{name} is not a readable model archive ({exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{name}: {_META_NAME} is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{name}: {_META_NAME} is not {FORMAT} metadata")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise ModelFileError(f"{name}: metadata lacks {', '.join(missing)}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{name} uses model format {meta['format_version']}, newer than this ednn-dask "
            f"({FORMAT_VERSION}); upgrade ednn-dask"
        )
    return meta


@dataclass
class LoadedModel:
    """A model loaded from disk: the EDNN and its metadata.

    Attributes
    ----------
    ednn : EDNN
        Runs the exported tile network over tiles of any field.
    metadata : dict
        Contents of ``ednn.json``.
    source : str
        Where it came from (path, bundled name or ``<bytes>``).
    """

    ednn: EDNN
    metadata: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", Path(self.source).stem))

    def halo_shared(self, bf16: bool = False, window: int | None = None, channels_last: bool | None = None) -> EDNN:
        """An EDNN that evaluates whole chunks with halo sharing, rebuilt from the file.

        ``bf16=True`` runs the conv stack and head under bfloat16 autocast
        (label scaling, baseline and the float64 total are unaffected).
        ``window`` is the halo window in focus pixels (``EDNN(halo_window=)``;
        default ``ednn.predict.halo-window``). ``channels_last`` runs the
        conv stack in the NHWC memory layout (``TileNet.use_channels_last``;
        default ``ednn.predict.channels-last``).

        Possible when the metadata describes a VALID conv subnet whose total
        stride divides the focus: the subnet is rebuilt from its ``subnet``
        spec and loaded with the exported network's own weights (strictly:
        every tensor must match). Results equal per-tile evaluation up to
        float32 summation order.

        Raises
        ------
        ModelFileError
            If the model does not allow it.
        """
        from ..nn import TileNet, build_subnet

        meta = self.metadata
        spec = meta.get("subnet") or {}
        if spec.get("type") != "conv" or spec.get("padding") != "valid":
            raise ModelFileError(f"model {self.name!r} has no VALID conv subnet: halo sharing is not exact for it")
        scaling = meta.get("label_scaling", {})
        baseline = (meta["focus"], meta["context"], meta["channels"]) if "focus_baseline" in scaling else None
        net = TileNet(build_subnet(spec), focus_baseline=baseline)
        source = self.ednn.tile_net
        source = getattr(source, "fn", source)
        net.load_state_dict(source.state_dict(), strict=True)
        net.autocast_dtype = torch.bfloat16 if bf16 else None
        net.use_channels_last(bool(config.get("predict.channels-last", channels_last)))
        if not net.supports_halo_sharing(meta["focus"]):
            raise ModelFileError(f"model {self.name!r}: focus is not a multiple of the subnet's stride")
        return EDNN(net.eval(), meta["focus"], meta["context"], halo_sharing=True, halo_window=window).eval()

    def default_ednn(self) -> EDNN:
        """The halo-shared EDNN when the model allows it (``halo_shared_ok``), else the per-tile one.

        The same automatic choice as :func:`ednn_dask.evaluate.evaluate`; built once per loaded model.
        """
        shared = self.__dict__.get("_default")
        if shared is None:
            shared = self.ednn
            if self.metadata.get("halo_shared_ok"):
                try:
                    shared = self.halo_shared()
                except ModelFileError:
                    pass
            self.__dict__["_default"] = shared
        return shared

    @torch.no_grad()
    def predict(
        self, fields: torch.Tensor, per_tile: bool = False, batch_size: int = 256, halo_sharing: bool | None = None
    ) -> torch.Tensor:
        """Totals (float64) or per-tile maps of ``(B, C, *spatial)`` fields.

        ``halo_sharing=None`` uses halo sharing whenever the model allows it
        (:meth:`default_ednn`); ``False`` runs the exported per-tile program.
        """
        fields = fields.to(torch.float32)
        ednn = self.ednn if halo_sharing is False else self.halo_shared() if halo_sharing else self.default_ednn()
        outs = [
            ednn(fields[i : i + batch_size], per_tile=per_tile).double()
            for i in range(0, fields.shape[0], batch_size)
        ]
        return torch.cat(outs)


def load_model(source: Source, tile_batch: int | None = None) -> LoadedModel:
    """Load a model file written by :func:`save_model`.

    Parameters
    ----------
    source : path, bytes or BytesIO
        The model file, or its bytes (workers receive models as bytes because
        compiled modules are not picklable).
    tile_batch : int or None
        Maximum number of tiles per network call (bounds memory).

    Returns
    -------
    LoadedModel
    """
    meta = read_metadata(source)
    name = "<bytes>" if isinstance(source, (bytes, bytearray, io.BytesIO)) else str(source)
    data = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray)) else source
    if isinstance(data, io.BytesIO):
        data.seek(0)
    try:
        if meta.get("exported_as") == "torch.export":
            with _weights_only_env():
                program = torch.export.load(data)
            net = _InferenceOnly(program.module())
        else:
            with _quiet_jit():
                net = torch.jit.load(data if isinstance(data, io.BytesIO) else str(data), map_location="cpu")
    except Exception as exc:  # corrupt archives raise many different types
        raise ModelFileError(f"{name}: could not load the network ({type(exc).__name__}: {exc})") from None
    ednn = EDNN(net, meta["focus"], meta["context"], ndim=meta["ndim"], tile_batch=tile_batch)
    return LoadedModel(ednn=ednn, metadata=meta, source=name)


class _InferenceOnly(torch.nn.Module):
    """Holds an exported program's module without registering it.

    Exported modules refuse ``train()``/``eval()``; keeping the module out of
    the registered children lets the surrounding EDNN switch modes freely.
    """

    def __init__(self, fn):
        super().__init__()
        object.__setattr__(self, "fn", fn)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return self.fn(tiles)


@contextlib.contextmanager
def _weights_only_env():
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old
