"""Bundled models: small trained files shipped inside the package."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from .card import ModelCard
from .serialize import LoadedModel, ModelFileError, load_model, read_card

__all__ = ["bundled_models", "resolve_model", "get_model"]

_SUFFIXES = (".pt2", ".pt", ".ts")


def _bundled_dir() -> Path:
    return Path(str(resources.files("ednn_dask.models") / "bundled"))


def _bundled_files() -> list[Path]:
    return sorted(p for p in _bundled_dir().iterdir() if p.suffix in _SUFFIXES)


def bundled_models(cards: bool = False) -> dict[str, dict[str, Any]] | dict[str, ModelCard]:
    """Every bundled model, keyed by model name, in file-name order.

    By default the metadata of each (a dict, plus ``"path"``: the file, as
    ``ednn-dask models --json`` prints it); with ``cards=True`` its
    :class:`~ednn_dask.models.card.ModelCard` (whose ``source`` is the file).
    """
    found = [read_card(path) for path in _bundled_files()]
    if cards:
        return {card.name: card for card in found}
    return {card.name: {**card.metadata, "path": card.source} for card in found}


def resolve_model(model: str | os.PathLike) -> Path:
    """Turn a bundled model name or a path into an existing file path.

    Raises
    ------
    ModelFileError
        If ``model`` is neither an existing file nor a bundled model name.
    """
    path = Path(model)
    if path.is_file():
        return path
    for suffix in _SUFFIXES:
        candidate = _bundled_dir() / f"{model}{suffix}"
        if candidate.is_file():
            return candidate
    names = ", ".join(sorted(p.stem for p in _bundled_files())) or "none"
    raise ModelFileError(f"unknown model {str(model)!r}: no such file and no bundled model of that name (bundled: {names})")


def get_model(model: str | os.PathLike, **kwargs) -> LoadedModel:
    """Load a bundled model by name, or a model file by path."""
    return load_model(resolve_model(model), **kwargs)
