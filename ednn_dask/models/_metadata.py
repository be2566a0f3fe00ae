"""Reading, validating and updating the metadata of a saved model without loading its network."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import _json
from ._archive import Source, read_meta_json, replace_meta_json, source_name
from .card import ModelCard

__all__ = ["read_card", "read_metadata", "update_metadata", "dump_json"]


def read_card(source: Source, tile_shape: bool = True) -> ModelCard:
    """The validated :class:`~ednn_dask.models.card.ModelCard` of a model file.

    ``tile_shape=False`` leaves the stored tile shape unchecked (the loader
    checks it after comparing the metadata with the program itself).

    Raises
    ------
    ModelFileError
        If the file is missing, not a model archive, or has no valid
        ``ednn.json`` (including values that contradict each other).
    """
    name = source_name(source)
    return ModelCard(read_meta_json(source, name), name).validate(tile_shape)


def read_metadata(source: Source) -> dict[str, Any]:
    """Read and validate the metadata of a model file without loading the network.

    Raises
    ------
    ModelFileError
        As :func:`read_card`.
    """
    return read_card(source).metadata


def dump_json(meta: dict[str, Any]) -> str:
    """``ednn.json`` as written: strict JSON (NaN becomes ``null``), sorted keys."""
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
    replace_meta_json(path, dump_json(meta).encode("utf-8"))
    return meta
