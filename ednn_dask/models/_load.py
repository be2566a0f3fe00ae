"""Loading a model file: the archive checked, the network loaded, the metadata checked against the program."""
from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator

import torch

from ..nn import EDNN
from ..nn.program import FieldProgram
from . import _safety
from ._archive import Source, quiet_jit, read_bytes, read_meta_json, source_name, weights_only_env
from ._errors import ModelFileError
from ._loaded import LoadedModel
from .card import ModelCard

__all__ = ["load_model"]


def load_model(source: Source, tile_batch: int | None = None) -> LoadedModel:
    """Load a model file written by :func:`~ednn_dask.models.save_model`.

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
    name = source_name(source)
    data = read_bytes(source, name)
    # the program's shape is compared first (below): it names the mistake better than tile_shape does
    card = ModelCard(read_meta_json(data, name), name).validate(tile_shape=False)
    with _refusals(name):
        records = _safety.check_archive(data, card.exported_as)
        net, program_shape = _load_network(data, card.exported_as, records)
    if card.field_program:
        program = card.program
        net = FieldProgram(net.fn, card.focus, card.context, program["min_tiles"], n_maps=card.n_maps)
        program_shape = _field_input_shape(program_shape)
    card.check_program(net, program_shape)
    card.check_tile_shape()
    ednn = EDNN(net, card.focus, card.context, ndim=card.ndim, tile_batch=tile_batch, halo_sharing=False).eval()
    return LoadedModel(ednn=ednn, metadata=card.metadata, source=name)


@contextlib.contextmanager
def _refusals(name: str) -> Iterator[None]:
    """What checking or loading the archive raises, as one :class:`ModelFileError` naming the file."""
    try:
        yield
    except _safety.UnsafeArchive as exc:
        raise ModelFileError(f"{name}: refusing to load: {exc}") from None
    except _safety.BrokenArchive as exc:
        raise ModelFileError(f"{name}: could not load the network ({exc})") from None
    except Exception as exc:  # corrupt archives raise many different types
        raise ModelFileError(f"{name}: could not load the network ({type(exc).__name__}: {exc})") from None


def _load_network(data: bytes, fmt: str, records: _safety.Records) -> tuple[torch.nn.Module, tuple | None]:
    """Load a checked archive; check its graph; return it and its input tile shape.

    The shape is ``(C, *t)`` without the batch axis, or ``None`` where the
    archive does not record it (then the trial call of
    :meth:`ModelCard.check_program` decides alone).
    """
    if fmt == "torch.export":
        with weights_only_env():
            program = torch.export.load(io.BytesIO(data))
        _safety.check_program_ops(program)  # before module(): nothing of the graph has run
        return _InferenceOnly(program.module()), _program_tile_shape(program)
    with quiet_jit():
        net = torch.jit.load(io.BytesIO(data), map_location="cpu")
    _safety.check_script_ops(net)
    shape = _safety.traced_input_shape(records)
    return net, (shape[1:] if shape else None)


def _program_tile_shape(program) -> tuple | None:
    """``(C, *t)`` of the exported program's one user input (from its placeholder)."""
    users = set(program.graph_signature.user_inputs)
    shapes = [getattr(n.meta.get("val"), "shape", None) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in users]
    if len(shapes) != 1 or shapes[0] is None:
        return None
    return tuple(int(d) if isinstance(d, int) else str(d) for d in shapes[0][1:])


def _field_input_shape(shape: tuple | None) -> tuple | None:
    """The tile shape ``(C, t, t)`` a field program's recorded input stands for.

    Its spatial sizes are shape expressions ``f*s + 2c`` (``8*s3 + 48``): one
    tile is ``f + 2c`` pixels. ``None`` where they are not of that form
    (then the trial calls of :meth:`ModelCard.check_program` decide alone).
    """
    if shape is None:
        return None
    tiles = []
    for size in shape[1:]:
        m = re.fullmatch(r"(\d+)\*[a-z]+\d+ \+ (\d+)", str(size))
        if m is None:
            return None
        tiles.append(int(m.group(1)) + int(m.group(2)))
    return (shape[0], *tiles)


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
