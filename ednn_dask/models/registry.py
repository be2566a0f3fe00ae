"""Bundled models: small trained files shipped inside the package."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from .serialize import ModelFileError, load_model, read_metadata, LoadedModel

__all__ = ["bundled_models", "resolve_model", "get_model"]

_SUFFIXES = (".pt2", ".pt", ".ts")


def _bundled_dir() -> Path:
    return Path(str(resources.files("ednn_dask.models") / "bundled"))


def bundled_models() -> dict[str, dict[str, Any]]:
    """Metadata of every bundled model, keyed by model name."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(_bundled_dir().iterdir()):
        if path.suffix in _SUFFIXES:
            meta = read_metadata(path)
            out[str(meta.get("name", path.stem))] = {**meta, "path": str(path)}
    return out


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
    names = ", ".join(sorted(p.stem for p in _bundled_dir().iterdir() if p.suffix in _SUFFIXES)) or "none"
    raise ModelFileError(f"unknown model {str(model)!r}: no such file and no bundled model of that name (bundled: {names})")


def get_model(model: str | os.PathLike, **kwargs) -> LoadedModel:
    """Load a bundled model by name, or a model file by path."""
    return load_model(resolve_model(model), **kwargs)
