"""Saving and loading models: the exported tile network plus its metadata.

A saved model is a single file:

* ``*.pt2`` — a ``torch.export`` archive (``torch.export.save``), or
* ``*.pt`` / ``*.ts`` — a TorchScript archive (``torch.jit.save``),

each carrying ``ednn.json`` as an extra file: focus, context, channels,
pixel spacing and units, label scaling, subnet spec, training description and
versions. The evaluator derives the halo (``c``) and the tiling from that
file alone; no Python class of ours is needed to run the network.

Loading reads the file once and works on those bytes only. It reads and
validates ``ednn.json`` straight from the zip archive, refuses files without
it, and checks every member of the archive against what :func:`save_model`
writes before torch sees the archive (:mod:`._safety`): no member that torch
would unpickle with the general unpickler, compile into code that runs on
load, or ``eval``/``exec`` gets through, so a model file cannot run code.
After loading, the network's graph is checked against the same list of ops
and its input tile shape against the metadata (:func:`_check_tile_shape`).
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
from . import _safety
from ..errors import EDNNError

__all__ = ["ModelFileError", "LoadedModel", "save_model", "load_model", "read_metadata", "update_metadata", "FORMAT"]

FORMAT = "ednn-dask-model"
FORMAT_VERSION = 1
_META_NAME = "ednn.json"
_REQUIRED = ("focus", "context", "ndim", "channels", "target")
_FORMATS = ("torch.export", "torchscript")

Source = Union[str, os.PathLike, bytes, io.BytesIO]


class ModelFileError(EDNNError, ValueError):
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


def _source_name(source: Source) -> str:
    return "<bytes>" if isinstance(source, (bytes, bytearray, io.BytesIO)) else str(source)


def _read_bytes(source: Source, name: str) -> bytes:
    """The whole file, read once: what is checked is what torch loads."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, io.BytesIO):
        return source.getvalue()
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {name}") from None
    except OSError as exc:
        raise ModelFileError(f"{name} is not a readable model archive ({exc})") from None


def read_metadata(source: Source) -> dict[str, Any]:
    """Read and validate the metadata of a model file without loading the network.

    Raises
    ------
    ModelFileError
        If the file is missing, not a model archive, or has no valid
        ``ednn.json`` (including values that contradict each other).
    """
    return _read_metadata(source, _source_name(source))


def _read_metadata(source: Source, name: str, tile_shape: bool = True) -> dict[str, Any]:
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
    _check_metadata_values(meta, name)
    if tile_shape:
        _check_metadata_tile(meta, name)
    return meta


def _check_metadata_values(meta: dict[str, Any], name: str) -> None:
    """Focus, context, ndim, channels are whole numbers; the format is one we write.

    The evaluator tiles fields with these numbers alone, so a wrong one gives
    a wrong total, not an error; refuse it here.
    """
    for key, low in (("focus", 1), ("context", 0), ("ndim", 1), ("channels", 1)):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ModelFileError(f"{name}: model metadata {key} must be an integer >= {low}, got {value!r}")
    if meta.get("exported_as") not in _FORMATS:  # it picks the loader: never guess
        raise ModelFileError(f"{name}: model metadata exported_as must be one of {', '.join(_FORMATS)}")


def _check_metadata_tile(meta: dict[str, Any], name: str) -> None:
    """``tile_shape``, where present, is the one focus, context, ndim and channels give."""
    expected = _meta_tile_shape(meta)
    if "tile_shape" in meta and meta["tile_shape"] != expected:
        raise ModelFileError(
            f"{name}: model metadata contradicts itself: tile_shape {meta['tile_shape']} but "
            f"focus {meta['focus']}, context {meta['context']}, {meta['channels']} channel(s) give {expected}"
        )


def _meta_tile_shape(meta: dict[str, Any]) -> list[int]:
    """``[channels, f + 2c, ...]``: the tile the metadata promises the program takes."""
    return [meta["channels"], *[meta["focus"] + 2 * meta["context"]] * meta["ndim"]]


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

    @property
    def card(self):
        """The model card (:class:`ednn_dask.models.card.ModelCard`) of this model's metadata."""
        from .card import ModelCard

        return ModelCard(self.metadata, self.source)

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

    Raises
    ------
    ModelFileError
        If the file is missing or corrupt, holds anything our own model files
        do not (``refusing to load: ...``), or its metadata contradicts
        itself or the program's input tile shape.
    """
    name = _source_name(source)
    data = _read_bytes(source, name)
    meta = _read_metadata(data, name, tile_shape=False)  # the program's shape is checked first, below
    fmt = meta["exported_as"]
    try:
        records = _safety.check_archive(data, fmt)
    except _safety.UnsafeArchive as exc:
        raise ModelFileError(f"{name}: refusing to load: {exc}") from None
    except _safety.BrokenArchive as exc:
        raise ModelFileError(f"{name}: could not load the network ({exc})") from None
    net, program_shape = _load_network(data, fmt, records, name)
    _check_tile_shape(net, meta, program_shape, name)
    _check_metadata_tile(meta, name)
    ednn = EDNN(net, meta["focus"], meta["context"], ndim=meta["ndim"], tile_batch=tile_batch)
    return LoadedModel(ednn=ednn, metadata=meta, source=name)


def _load_network(
    data: bytes, fmt: str, records: "_safety.Records", name: str
) -> tuple[torch.nn.Module, tuple | None]:
    """Load a checked archive; check its graph; return it and its input tile shape.

    The shape is ``(C, *t)`` without the batch axis, or ``None`` where the
    archive does not record it (then the trial call of
    :func:`_check_tile_shape` decides alone).
    """
    try:
        if fmt == "torch.export":
            with _weights_only_env():
                program = torch.export.load(io.BytesIO(data))
            _safety.check_program_ops(program)  # before module(): nothing of the graph has run
            net, shape = _InferenceOnly(program.module()), _program_tile_shape(program)
        else:
            with _quiet_jit():
                net = torch.jit.load(io.BytesIO(data), map_location="cpu")
            _safety.check_script_ops(net)
            shape = _safety.traced_input_shape(records)
            shape = shape[1:] if shape else None
    except _safety.UnsafeArchive as exc:
        raise ModelFileError(f"{name}: refusing to load: {exc}") from None
    except Exception as exc:  # corrupt archives raise many different types
        raise ModelFileError(f"{name}: could not load the network ({type(exc).__name__}: {exc})") from None
    return net, shape


def _program_tile_shape(program) -> tuple | None:
    """``(C, *t)`` of the exported program's one user input (from its placeholder)."""
    users = set(program.graph_signature.user_inputs)
    shapes = [getattr(n.meta.get("val"), "shape", None) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in users]
    if len(shapes) != 1 or shapes[0] is None:
        return None
    return tuple(int(d) if isinstance(d, int) else str(d) for d in shapes[0][1:])


def _check_tile_shape(net: torch.nn.Module, meta: dict[str, Any], program_shape: tuple | None, name: str) -> None:
    """The program must take exactly the tiles the metadata describes.

    Compares the recorded input shape and makes one trial call on two zero
    tiles (cheap: one tile network call), which must give one value per tile.
    """
    expected = tuple(_meta_tile_shape(meta))
    says = (
        f"model metadata says focus {meta['focus']}, context {meta['context']}, "
        f"{meta['channels']} channel(s) (tile {meta['focus'] + 2 * meta['context']} px)"
    )
    if program_shape is not None and tuple(program_shape) != expected:
        raise ModelFileError(f"{name}: {says} but the program takes {_describe_tiles(program_shape)}")
    try:
        with torch.no_grad():
            out = net(torch.zeros(2, *expected))
        ok = tuple(out.shape) == (2,)
    except Exception as exc:  # a shape mismatch inside the network
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise ModelFileError(
            f"{name}: {says} but the program fails on such tiles ({type(exc).__name__}: {first})"
        ) from None
    if not ok:
        raise ModelFileError(f"{name}: {says} but the program maps 2 such tiles to shape {list(out.shape)}, not [2]")


def _describe_tiles(shape: tuple) -> str:
    spatial = shape[1:]
    if len(set(spatial)) == 1:
        return f"{spatial[0]}-px tiles with {shape[0]} channel(s)"
    return f"tiles of shape {list(shape)}"


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
