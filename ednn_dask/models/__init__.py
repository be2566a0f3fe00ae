"""Saved models: export, metadata, loading and the bundled models."""
from .registry import bundled_models, get_model, resolve_model
from .serialize import LoadedModel, ModelFileError, load_model, read_metadata, save_model, update_metadata

__all__ = [
    "LoadedModel",
    "ModelFileError",
    "bundled_models",
    "get_model",
    "load_model",
    "read_metadata",
    "resolve_model",
    "save_model",
    "update_metadata",
]
